import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"

// Runs once per `vitest run` at the root (npm test): says which Node and which
// effect the tests run on, so a log shows it without guessing. npm scripts run
// the project's own Node (node_modules/.bin/node, the `node` devDependency).
const floor = [22, 19]

const versionOf = (pkg: string, from: string) => {
  try {
    const file = createRequire(path.join(__dirname, from, "package.json")).resolve(`${pkg}/package.json`)
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { version: string }).version
  } catch (error) {
    return `unknown (${error instanceof Error ? error.message : String(error)})`
  }
}

export default function setup() {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  const supported = major > floor[0]! || (major === floor[0] && minor >= floor[1]!)
  console.log(
    `refpersys-effect tests: Node ${process.version} (${process.execPath}), ` +
      `effect ${versionOf("effect", "packages/core")}, vitest ${versionOf("vitest", ".")}`
  )
  if (!supported) {
    console.warn(
      `warning: Node ${process.version} is below the supported floor ${floor.join(".")}; ` +
        "run the tests with npm test, which uses the project's Node (node_modules/.bin/node)"
    )
  }
}
