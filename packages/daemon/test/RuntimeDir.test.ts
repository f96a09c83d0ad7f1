import { afterAll, describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import * as RuntimeDir from "../src/RuntimeDir.js"
import { removeTempDirs, tempDir as makeTempDir } from "./helpers/child.js"

afterAll(removeTempDirs)

const tempDir = () => makeTempDir("rps-runtime-dir-")

/** The pid of a process that has ended. */
const deadPid = (): number => {
  const child = spawnSync(process.execPath, ["-e", "0"])
  return child.pid!
}

const isFifo = (p: string) => fs.lstatSync(p).isFIFO()

describe("RuntimeDir", () => {
  it("files names the FIFOs and the pid file inside the absolute directory", () => {
    const f = RuntimeDir.files("some/dir")
    expect(f.dir).toBe(path.resolve("some/dir"))
    expect([f.cmd, f.out, f.pid].map((p) => path.basename(p))).toEqual(["rps.cmd", "rps.out", "rps.pid"])
  })

  it("defaultDir follows XDG_RUNTIME_DIR, else the temp dir", () => {
    const saved = process.env.XDG_RUNTIME_DIR
    try {
      process.env.XDG_RUNTIME_DIR = "/run/user/4242"
      expect(RuntimeDir.defaultDir()).toBe("/run/user/4242/refpersys")
      delete process.env.XDG_RUNTIME_DIR
      expect(RuntimeDir.defaultDir().startsWith(path.join(os.tmpdir(), "refpersys-"))).toBe(true)
    } finally {
      if (saved === undefined) delete process.env.XDG_RUNTIME_DIR
      else process.env.XDG_RUNTIME_DIR = saved
    }
  })

  it("isAlive and readPid", () => {
    expect(RuntimeDir.isAlive(process.pid)).toBe(true)
    expect(RuntimeDir.isAlive(deadPid())).toBe(false)
    const f = RuntimeDir.files(tempDir())
    expect(RuntimeDir.readPid(f)).toBeUndefined()
    fs.writeFileSync(f.pid, "garbage\n")
    expect(RuntimeDir.readPid(f)).toBeUndefined()
    fs.writeFileSync(f.pid, "1234\n")
    expect(RuntimeDir.readPid(f)).toBe(1234)
  })

  it.effect("acquire makes the directory, the lock and both FIFOs; closing the scope removes them", () =>
    Effect.gen(function*() {
      const dir = path.join(tempDir(), "nested", "run")
      const scope = yield* Scope.make()
      const acquired = yield* RuntimeDir.acquire(dir).pipe(Scope.extend(scope))
      expect(acquired.stale).toBeUndefined()
      expect(isFifo(acquired.files.cmd) && isFifo(acquired.files.out)).toBe(true)
      expect(RuntimeDir.readPid(acquired.files)).toBe(process.pid)
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700)
      yield* Scope.close(scope, Exit.void)
      expect(fs.readdirSync(dir)).toEqual([])
    }))

  it.effect("cleans up after a crashed run whose pid is dead", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      spawnSync("mkfifo", [f.cmd, f.out])
      const pid = deadPid()
      fs.writeFileSync(f.pid, `${pid}\n`)
      const acquired = yield* Effect.scoped(RuntimeDir.acquire(f.dir))
      expect(acquired.stale).toEqual({ pid, removed: [f.pid, f.cmd, f.out] })
    }))

  it.effect("refuses a directory whose daemon is alive, and leaves its files alone", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      spawnSync("mkfifo", [f.cmd])
      fs.writeFileSync(f.pid, `${process.ppid}\n`)
      const error = yield* Effect.flip(Effect.scoped(RuntimeDir.acquire(f.dir)))
      expect(error.reason).toBe("AlreadyRunning")
      expect(error.pid).toBe(process.ppid)
      expect(error.message).toContain(`pid ${process.ppid}`)
      expect(error.message).toContain("--runtime-dir")
      expect(RuntimeDir.readPid(f)).toBe(process.ppid)
      expect(isFifo(f.cmd)).toBe(true)
    }))

  it.effect("ensureFifo creates a missing FIFO, keeps one, and refuses another kind of file", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const fifo = path.join(dir, "f")
      expect(yield* RuntimeDir.ensureFifo(fifo)).toBe(true)
      expect(yield* RuntimeDir.ensureFifo(fifo)).toBe(false)
      const file = path.join(dir, "plain")
      fs.writeFileSync(file, "")
      const error = yield* Effect.flip(RuntimeDir.ensureFifo(file))
      expect(error.reason).toBe("NotAFifo")
      expect(error.message).toContain("not a FIFO")
    }))

  it.effect("acquire fails with NotAFifo, and releases the lock, when rps.cmd is a regular file", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      fs.writeFileSync(f.cmd, "oops")
      const error = yield* Effect.flip(Effect.scoped(RuntimeDir.acquire(f.dir)))
      expect(error.reason).toBe("NotAFifo")
      expect(fs.existsSync(f.pid)).toBe(false)
    }))
})
