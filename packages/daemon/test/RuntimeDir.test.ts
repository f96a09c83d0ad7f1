import { it } from "@effect/vitest"
import { afterAll, describe, expect } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Exit, Scope } from "effect"
import * as Daemon from "../src/Daemon.js"
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

const NOBODY = 65534

/** Gives `where` to user nobody; only root can, and without it the trust tests would prove nothing, so they fail. */
const giveToNobody = (where: string) => {
  if (process.geteuid?.() !== 0) throw new Error("this test gives files to user nobody: run it as root")
  fs.lchownSync(where, NOBODY, NOBODY)
}

const mkfifo = (where: string, mode: string) => {
  const made = spawnSync("mkfifo", ["-m", mode, where], { encoding: "utf8" })
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`)
}

describe("RuntimeDir", () => {
  it("a refusal exits 77 (sysexits EX_NOPERM), listed among the daemon's exit codes", () => {
    expect(RuntimeDir.untrustedExitCode).toBe(77)
    expect(Daemon.ExitCode.Untrusted).toBe(RuntimeDir.untrustedExitCode)
    expect(new Set(Object.values(Daemon.ExitCode)).size).toBe(Object.keys(Daemon.ExitCode).length)
  })

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
      const acquired = yield* RuntimeDir.acquire(dir).pipe(Scope.provide(scope))
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

  it.effect("check: missing, ours, and each untrusted layout named with what to do", () =>
    Effect.gen(function*() {
      const base = tempDir()
      expect(yield* RuntimeDir.check(path.join(base, "none"))).toBe("missing")
      expect(yield* RuntimeDir.check(base)).toBe("ok")
      const refused = (dir: string) => Effect.flip(RuntimeDir.check(dir))

      const link = path.join(base, "link")
      fs.symlinkSync(tempDir(), link)
      const linked = yield* refused(link)
      expect(linked.reason).toBe("Untrusted")
      expect(linked.message).toContain("symbolic link")

      const open = path.join(base, "open")
      fs.mkdirSync(open, { mode: 0o700 })
      fs.chmodSync(open, 0o750)
      expect((yield* refused(open)).message).toContain("mode 0750")

      const theirs = path.join(base, "theirs")
      fs.mkdirSync(theirs, { mode: 0o700 })
      giveToNobody(theirs)
      const foreign = yield* refused(theirs)
      expect(foreign.reason).toBe("Untrusted")
      expect(foreign.message).toContain(`owned by uid ${NOBODY}`)
      expect(foreign.message).toContain("--runtime-dir")

      const unsafeParent = tempDir()
      fs.chmodSync(unsafeParent, 0o777)
      fs.mkdirSync(path.join(unsafeParent, "run"), { mode: 0o700 })
      expect((yield* refused(path.join(unsafeParent, "run"))).message).toContain("no sticky bit")
    }))

  it.effect("acquire refuses a directory of another user before touching anything in it", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      // What a crashed run leaves, which acquire would clean up in a directory of its own.
      mkfifo(f.cmd, "600")
      fs.writeFileSync(f.pid, `${deadPid()}\n`)
      giveToNobody(f.dir)
      const error = yield* Effect.flip(Effect.scoped(RuntimeDir.acquire(f.dir)))
      expect(error.reason).toBe("Untrusted")
      expect(fs.readdirSync(f.dir).sort()).toEqual(["rps.cmd", "rps.pid"])
    }))

  it.effect("acquire refuses a FIFO of ours with another mode, and leaves it in place", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      mkfifo(f.out, "644")
      const error = yield* Effect.flip(Effect.scoped(RuntimeDir.acquire(f.dir)))
      expect(error.reason).toBe("Untrusted")
      expect(error.path).toBe(f.out)
      expect(error.message).toContain("mode is 0644")
      expect(isFifo(f.out)).toBe(true)
      expect(fs.existsSync(f.pid)).toBe(false)
    }))

  it.effect("a symbolic link rps.pid is never followed: not read, not written through, replaced", () =>
    Effect.gen(function*() {
      const f = RuntimeDir.files(tempDir())
      // A link to a file naming a live pid would have passed for a running daemon.
      const target = path.join(tempDir(), "elsewhere")
      fs.writeFileSync(target, `${process.ppid}\n`)
      fs.symlinkSync(target, f.pid)
      expect(RuntimeDir.readPid(f)).toBeUndefined()
      const scope = yield* Scope.make()
      yield* RuntimeDir.acquire(f.dir).pipe(Scope.provide(scope))
      const pidFile = fs.lstatSync(f.pid)
      expect(pidFile.isFile()).toBe(true)
      expect(pidFile.mode & 0o777).toBe(0o600)
      expect(RuntimeDir.readPid(f)).toBe(process.pid)
      expect(fs.readFileSync(target, "utf8")).toBe(`${process.ppid}\n`)
      yield* Scope.close(scope, Exit.void)
    }))

  it("readPid reads only a regular file of ours, and never blocks on a FIFO", () => {
    const f = RuntimeDir.files(tempDir())
    mkfifo(f.pid, "600")
    expect(RuntimeDir.readPid(f)).toBeUndefined()
    fs.rmSync(f.pid)
    fs.writeFileSync(f.pid, "1234\n")
    expect(RuntimeDir.readPid(f)).toBe(1234)
    giveToNobody(f.pid)
    expect(RuntimeDir.readPid(f)).toBeUndefined()
  })

  it.effect("openFifo checks the opened fd: a FIFO of ours with mode 0600 only", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const flags = fs.constants.O_RDWR | fs.constants.O_NONBLOCK
      const good = path.join(dir, "good")
      mkfifo(good, "600")
      const fd = yield* RuntimeDir.openFifo(good, flags)
      expect(fs.fstatSync(fd).isFIFO()).toBe(true)
      fs.closeSync(fd)

      const refusal = (where: string) => Effect.flip(RuntimeDir.openFifo(where, flags))
      const wide = path.join(dir, "wide")
      mkfifo(wide, "666")
      expect((yield* refusal(wide)).message).toContain("mode is 0666")
      const theirs = path.join(dir, "theirs")
      mkfifo(theirs, "600")
      giveToNobody(theirs)
      expect((yield* refusal(theirs)).message).toContain(`owned by uid ${NOBODY}`)
      const plain = path.join(dir, "plain")
      fs.writeFileSync(plain, "data")
      expect((yield* refusal(plain)).message).toContain("a regular file, not a FIFO")
      const link = path.join(dir, "link")
      fs.symlinkSync(good, link)
      const linked = yield* refusal(link)
      expect([linked.reason, linked.message.includes("symbolic link")]).toEqual(["Untrusted", true])
      const missing = yield* refusal(path.join(dir, "none"))
      expect([missing.reason, missing.code]).toEqual(["System", "ENOENT"])
    }))
})
