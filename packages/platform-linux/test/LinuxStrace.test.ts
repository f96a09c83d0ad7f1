import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as LinuxPlatform from "../src/LinuxPlatform.js"

const probe = path.join(__dirname, "fixtures", "strace-probe.mjs")
const strace = spawnSync("strace", ["-V"], { encoding: "utf8" })
const haveStrace = strace.status === 0

describe("LinuxPlatform under strace", () => {
  it("the native layer makes the kernel calls of the original runtime", () => {
    if (!LinuxPlatform.isAvailable || !haveStrace) {
      const reason = !LinuxPlatform.isAvailable
        ? `the native addon is not loaded (${LinuxPlatform.loadError})`
        : "strace is not installed"
      console.log(`strace check not run: ${reason}`)
      // The only acceptable reasons to pass without tracing:
      expect(process.env.REFPERSYS_REQUIRE_NATIVE === "1" && !LinuxPlatform.isAvailable).toBe(false)
      return
    }
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "rps-strace-")), "trace")
    const run = spawnSync("strace", [
      "-f",
      "-o",
      out,
      "-e",
      "trace=signalfd4,timerfd_create,timerfd_settime,pipe2,epoll_wait,epoll_pwait,poll,ppoll",
      process.execPath,
      probe
    ], { encoding: "utf8", timeout: 60_000 })
    expect(run.stdout).toContain("probe done")
    expect(run.status).toBe(0)
    const trace = fs.readFileSync(out, "utf8")
    const calls = new Set(Array.from(trace.matchAll(/^\d+\s+(\w+)\(/gm), (m) => m[1]))
    for (const call of ["signalfd4", "timerfd_settime", "pipe2"]) expect(calls, call).toContain(call)
    // The poll call: libuv's epoll wait on Node's loop, where the uv_poll handles live.
    expect(calls.has("epoll_pwait") || calls.has("epoll_wait")).toBe(true)
  }, 60_000)
})
