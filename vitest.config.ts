import { defineConfig } from "vitest/config"
import projects from "./vitest.workspace.js"

export default defineConfig({
  test: {
    // Once per run, before any project: prints the Node and effect versions.
    globalSetup: ["./vitest.globalSetup.ts"],
    projects
  }
})
