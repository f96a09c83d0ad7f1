// Every example program runs to its end, as a child process, and says what
// it should. `npm test` builds them first (examples/dist).
import { it } from "@effect/vitest"
import { beforeAll, describe, expect } from "vitest"
import * as path from "node:path"
import { packageDir, requireBuilt, run } from "./helpers/child.js"

const example = (name: string) => path.join(packageDir, "..", "..", "examples", "dist", `${name}.js`)
const names = ["first-program", "event-loop", "agenda-demo", "real-platform"]

beforeAll(() => requireBuilt(...names.map(example)))

describe("examples", () => {
  it("all run to their end and report as documented", async () => {
    const [first, loop, demo, real] = await Promise.all([
      run(example("first-program"), []),
      run(example("event-loop"), []),
      run(example("agenda-demo"), ["--seconds", "1", "--rate", "400"]),
      run(example("real-platform"), [])
    ])
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toContain("answered")
    expect(first.stdout).toMatch(/submitted: 2,[\s\S]*completed: 2,/)

    expect(loop.code, loop.stderr).toBe(0)
    // The default logger's line for the SIGHUP handler's log (Effect 4 writes `INFO (#n): reloading`).
    expect(loop.stdout).toMatch(/\bINFO\b.*\breloading$/m)
    expect(loop.stdout).toContain("quit command Q 1 tasklet(s) completed")

    expect(demo.code, demo.stderr).toBe(0)
    expect(demo.stdout).toContain("GC barrier: all 4 workers parked, collector ran")
    expect(demo.stdout).toMatch(/accounting: submitted (\d+) = completed \1 \+ failed 0 \+ interrupted 0 \+ dropped 0 \+ obsolete 0: balanced/)

    expect(real.code, real.stderr).toBe(0)
    expect(real.stdout).toMatch(/^(linux-native|node-portable): 3 ticks, stopped by quit \(command Q\), signals \{"SIGUSR2":1\}\n$/)
  }, 60_000)
})
