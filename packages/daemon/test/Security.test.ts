// Hostile runtime directories and FIFOs, end to end: another user (nobody,
// through setpriv) prepares the layout, then the built daemon or client runs
// on it. We run as root, who passes every permission check, so the attack is
// shown by ownership and modes (what the programs must refuse), and the
// proof that nothing was touched is a snapshot of the files before and after.
import { it } from "@effect/vitest"
import { afterAll, afterEach, beforeAll, describe, expect } from "vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as RuntimeDir from "../src/RuntimeDir.js"
import { ctlBin, daemonBin, type Exited, killAll, removeTempDirs, requireBuilt, start, tempDir } from "./helpers/child.js"

const NOBODY = 65534
const UNTRUSTED = RuntimeDir.untrustedExitCode

beforeAll(() => {
  requireBuilt(daemonBin, ctlBin)
  // Files of another user can only be made by root; without it these tests
  // would prove nothing, so they fail instead of passing.
  if (process.geteuid?.() !== 0) throw new Error("these tests make files as user nobody: run them as root")
})
afterEach(killAll)
afterAll(removeTempDirs)

/** Runs a command as nobody (uid and gid 65534, no groups); fails loudly when setpriv is missing or the command fails. */
const asNobody = (...command: Array<string>) => {
  const result = spawnSync("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...command], {
    encoding: "utf8"
  })
  if (result.error !== undefined) throw new Error(`setpriv could not run (${result.error.message}): install util-linux`)
  if (result.status !== 0) throw new Error(`setpriv ${command.join(" ")} failed (${result.status}): ${result.stderr}`)
}

/** A directory like /tmp: root's, mode 1777, so that nobody can make files in it and nobody else can remove them. */
const sharedTmp = () => {
  const dir = tempDir("rps-shared-tmp-")
  fs.chmodSync(dir, 0o1777)
  return dir
}

/** A FIFO made by nobody, moved into `dir` (which nobody cannot write) under `name`. */
const foreignFifo = (dir: string, name: string, mode = "600") => {
  const shared = sharedTmp()
  asNobody("mkfifo", "-m", mode, path.join(shared, name))
  fs.renameSync(path.join(shared, name), path.join(dir, name))
}

/** Everything `lstat` says about a path and, for a directory, each entry (links not followed). */
const snapshot = (where: string): string => {
  const describe = (p: string) => {
    const s = fs.lstatSync(p)
    const content = s.isFile() ? fs.readFileSync(p, "hex") : s.isSymbolicLink() ? fs.readlinkSync(p) : ""
    return `${path.basename(p)} mode=${s.mode.toString(8)} uid=${s.uid} ino=${s.ino} size=${s.size} mtime=${s.mtimeMs} ${content}`
  }
  const top = fs.lstatSync(where)
  const entries = top.isDirectory() ? fs.readdirSync(where).sort().map((e) => describe(path.join(where, e))) : []
  return [describe(where), ...entries].join("\n")
}

/**
 * Runs the daemon or the client to its end, bounded: a daemon that accepts
 * stops by itself after 5 s (`--duration`), so a failing test ends too.
 */
const runBounded = async (
  script: string,
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv = {}
): Promise<Exited & { readonly stdout: string; readonly stderr: string }> => {
  const child = start(script, args, { env })
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`still running after 60 s\nstdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`))
    }, 60_000)
  })
  try {
    const exit = await Promise.race([child.exited, bound])
    return { ...exit, stdout: child.stdout(), stderr: child.stderr() }
  } finally {
    clearTimeout(timer)
  }
}

const daemonArgs = ["--json", "--rate", "0", "--duration", "5"]

const runDaemon = (dir: string | undefined, env: NodeJS.ProcessEnv = {}) =>
  runBounded(daemonBin, [...daemonArgs, ...(dir === undefined ? [] : ["--runtime-dir", dir])], env)

const runCtl = (dir: string) => runBounded(ctlBin, ["stats", "--runtime-dir", dir, "--timeout", "2"])

const expectRefused = (
  result: { readonly code: number | null; readonly stdout: string; readonly stderr: string },
  ...says: Array<string>
) => {
  expect(result.stdout).not.toContain('"event":"ready"')
  for (const text of ["refused, untrusted", ...says]) expect(result.stderr).toContain(text)
  expect(result.code).toBe(UNTRUSTED)
}

/** Bytes waiting in a non-blocking FIFO (0 when none: EAGAIN, or end of file when no writer). */
const readAvailable = (fd: number): number => {
  try {
    return fs.readSync(fd, Buffer.alloc(64 * 1024))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EAGAIN") return 0
    throw error
  }
}

const deadPid = () => spawnSync(process.execPath, ["-e", "0"]).pid!

describe("rps-daemon refuses a runtime directory that is not its own", () => {
  const defaults: Array<[string, (shared: string) => { readonly dir: string; readonly env: NodeJS.ProcessEnv }]> = [
    ["<tmpdir>/refpersys-<uid>", (shared) => ({
      dir: path.join(shared, `refpersys-${process.getuid!()}`),
      env: { TMPDIR: shared, XDG_RUNTIME_DIR: "" }
    })],
    ["$XDG_RUNTIME_DIR/refpersys", (shared) => ({ dir: path.join(shared, "refpersys"), env: { XDG_RUNTIME_DIR: shared } })]
  ]

  it.each(defaults)("the default %s made by another user with mode 0777 and FIFOs 0666: refused, untouched", async (_, where) => {
    const { dir, env } = where(sharedTmp())
    asNobody("mkdir", "-m", "0777", dir)
    asNobody("mkfifo", "-m", "0666", path.join(dir, "rps.cmd"), path.join(dir, "rps.out"))
    // The attack's precondition: nobody owns all of it, and anyone may use it.
    for (const p of [dir, path.join(dir, "rps.cmd")]) expect(fs.lstatSync(p).uid).toBe(NOBODY)
    expect(fs.lstatSync(dir).mode & 0o777).toBe(0o777)
    const before = snapshot(dir)
    const result = await runDaemon(undefined, env)
    expectRefused(result, dir, `owned by uid ${NOBODY}`, "--runtime-dir")
    expect(snapshot(dir)).toBe(before)
  })

  it("a directory of another user is refused even with mode 0700", async () => {
    const dir = path.join(sharedTmp(), "theirs")
    asNobody("mkdir", "-m", "0700", dir)
    const before = snapshot(dir)
    expectRefused(await runDaemon(dir), `owned by uid ${NOBODY}`)
    expect(snapshot(dir)).toBe(before)
  })

  it("our own directory with group or other bits is refused, not chmod-ed", async () => {
    const dir = path.join(tempDir(), "open")
    fs.mkdirSync(dir)
    fs.chmodSync(dir, 0o755)
    const before = snapshot(dir)
    expectRefused(await runDaemon(dir), "mode 0755", "chmod 700")
    expect(snapshot(dir)).toBe(before)
  })

  it("a symbolic link planted by another user is not followed: refused, the target untouched", async () => {
    // The target: a directory of ours holding what a crashed run would leave
    // (the daemon would clean that up, had it followed the link).
    const target = tempDir()
    fs.writeFileSync(path.join(target, "rps.pid"), `${deadPid()}\n`)
    fs.writeFileSync(path.join(target, "keep"), "precious\n")
    const shared = sharedTmp()
    const link = path.join(shared, `refpersys-${process.getuid!()}`)
    asNobody("ln", "-s", target, link)
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true)
    const before = snapshot(target)
    const result = await runDaemon(undefined, { TMPDIR: shared, XDG_RUNTIME_DIR: "" })
    expectRefused(result, "symbolic link", target)
    expect(snapshot(target)).toBe(before)
    expect(fs.readlinkSync(link)).toBe(target)
  })

  it("a parent that others can write, without the sticky bit, is refused before anything is made", async () => {
    const parent = tempDir()
    fs.chmodSync(parent, 0o777)
    const result = await runDaemon(path.join(parent, "run"))
    expectRefused(result, `its parent ${parent}`, "no sticky bit")
    expect(fs.readdirSync(parent)).toEqual([])
  })

  it("no parent is made under a directory that others can write", async () => {
    const parent = tempDir()
    fs.chmodSync(parent, 0o777)
    expectRefused(await runDaemon(path.join(parent, "a", "b", "run")), `its parent ${parent}`)
    expect(fs.readdirSync(parent)).toEqual([])
  })

  it("a FIFO of ours with mode 0666 is refused, and left in place", async () => {
    const dir = tempDir()
    const cmd = path.join(dir, "rps.cmd")
    expect(spawnSync("mkfifo", ["-m", "666", cmd]).status).toBe(0)
    const before = snapshot(cmd)
    expectRefused(await runDaemon(dir), cmd, "mode is 0666")
    expect(snapshot(cmd)).toBe(before)
    expect(fs.readdirSync(dir)).toEqual(["rps.cmd"])
  })

  it("a FIFO that another user made is refused, even with mode 0600, and left in place", async () => {
    const dir = tempDir()
    foreignFifo(dir, "rps.out")
    const out = path.join(dir, "rps.out")
    expect(fs.lstatSync(out).uid).toBe(NOBODY)
    const before = snapshot(out)
    expectRefused(await runDaemon(dir), out, `owned by uid ${NOBODY}`)
    expect(snapshot(out)).toBe(before)
    expect(fs.readdirSync(dir)).toEqual(["rps.out"])
  })

  it("a fresh directory is made 0700 with FIFOs and pid file 0600, even under umask 000, and serves", async () => {
    const dir = path.join(tempDir(), "fresh", "run")
    // The child inherits the umask: 000 would leave every created file open to all, unless modes are set exactly.
    const umask = process.umask(0)
    let daemon: ReturnType<typeof start>
    try {
      daemon = start(daemonBin, ["--json", "--rate", "0", "--runtime-dir", dir])
    } finally {
      process.umask(umask)
    }
    await daemon.waitFor("the ready line", (line) => (line?.event === "ready" ? line : undefined), 30_000)
    const mode = (p: string) => fs.lstatSync(p).mode & 0o7777
    expect(mode(dir)).toBe(0o700)
    expect(fs.lstatSync(dir).uid).toBe(process.geteuid!())
    for (const name of ["rps.cmd", "rps.out"]) {
      expect(fs.lstatSync(path.join(dir, name)).isFIFO()).toBe(true)
      expect(mode(path.join(dir, name))).toBe(0o600)
    }
    expect(mode(path.join(dir, "rps.pid"))).toBe(0o600)
    const stats = await runBounded(ctlBin, ["stats", "--runtime-dir", dir, "--timeout", "15"])
    expect(stats.stderr).toBe("")
    expect(stats.code).toBe(0)
    const quit = await runBounded(ctlBin, ["quit", "--runtime-dir", dir, "--timeout", "15"])
    expect(quit.code).toBe(0)
    expect((await daemon.exited).code).toBe(0)
    expect(fs.readdirSync(dir)).toEqual([])
  })
})

describe("rps-ctl refuses what is not the daemon's FIFO", () => {
  /** A runtime directory of ours with a proper reply FIFO, and `rps.cmd` left to the test. */
  const withReplyFifo = () => {
    const dir = tempDir()
    expect(spawnSync("mkfifo", ["-m", "600", path.join(dir, "rps.out")]).status).toBe(0)
    return dir
  }

  it("a symbolic link rps.cmd: refused, the target's bytes unchanged", async () => {
    const dir = withReplyFifo()
    const target = path.join(tempDir(), "important.txt")
    fs.writeFileSync(target, "precious data\n")
    fs.symlinkSync(target, path.join(dir, "rps.cmd"))
    const before = snapshot(target)
    expectRefused(await runCtl(dir), path.join(dir, "rps.cmd"), "symbolic link")
    expect(fs.readFileSync(target, "utf8")).toBe("precious data\n")
    expect(snapshot(target)).toBe(before)
  })

  it("a regular file rps.cmd: refused, its bytes unchanged", async () => {
    const dir = withReplyFifo()
    const cmd = path.join(dir, "rps.cmd")
    fs.writeFileSync(cmd, "precious data\n")
    const before = snapshot(cmd)
    expectRefused(await runCtl(dir), cmd, "a regular file, not a FIFO")
    expect(snapshot(cmd)).toBe(before)
  })

  it("a FIFO rps.cmd of another user, with a reader: refused, nothing written to it", async () => {
    const dir = withReplyFifo()
    foreignFifo(dir, "rps.cmd", "666")
    const cmd = path.join(dir, "rps.cmd")
    // The other user's reader, waiting for requests.
    const reader = fs.openSync(cmd, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
    try {
      expectRefused(await runCtl(dir), cmd, `owned by uid ${NOBODY}`)
      expect(readAvailable(reader)).toBe(0)
    } finally {
      fs.closeSync(reader)
    }
  })

  it("a symbolic link rps.out is refused too", async () => {
    const dir = tempDir()
    const elsewhere = path.join(tempDir(), "fifo")
    expect(spawnSync("mkfifo", ["-m", "600", elsewhere]).status).toBe(0)
    fs.symlinkSync(elsewhere, path.join(dir, "rps.out"))
    expectRefused(await runCtl(dir), path.join(dir, "rps.out"), "symbolic link")
  })

  it("a runtime directory of another user is refused before any FIFO is opened", async () => {
    const dir = path.join(sharedTmp(), "theirs")
    asNobody("mkdir", "-m", "0777", dir)
    asNobody("mkfifo", "-m", "0666", path.join(dir, "rps.cmd"), path.join(dir, "rps.out"))
    const before = snapshot(dir)
    expectRefused(await runCtl(dir), `owned by uid ${NOBODY}`)
    expect(snapshot(dir)).toBe(before)
  })
})
