import * as path from "node:path"
import type { UserConfig } from "vitest/config"

// Tests import sibling packages from source, so `vitest` works without a build.
const alias = (pkg: string) => ({
  [`@refpersys/${pkg}`]: path.join(__dirname, "packages", pkg, "src", "index.ts")
})

const config: UserConfig = {
  esbuild: { target: "es2022" },
  resolve: {
    alias: { ...alias("core"), ...alias("testkit"), ...alias("platform-linux"), ...alias("threads") }
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    sequence: { concurrent: false }
  }
}

export default config
