/**
 * The daemon's runtime directory: the command FIFO `rps.cmd`, the reply FIFO
 * `rps.out` and the pid file `rps.pid`, which is the lock.
 *
 * A daemon takes the lock by creating `rps.pid` exclusively. If the file is
 * there already, the recorded pid decides: a live process means another
 * daemon owns the directory (refused, with `AlreadyRunning`); a dead one (or
 * a file that holds no pid) means a crashed run, whose pid file and FIFOs
 * are removed before the lock is taken again. The FIFOs are made with
 * `mkfifo(1)` (Node has no `mkfifo`). Closing the scope removes all three.
 *
 * The directory is trusted only when it is ours (see {@link check}): a real
 * directory, not a symbolic link, owned by the effective uid, with no group
 * or other bits, under parents nobody else can write. Anything else is
 * refused with reason `Untrusted`, before anything in it is touched; a
 * directory someone else made is never chmod-ed or cleaned. The FIFOs are
 * trusted only when they pass {@link openFifo}.
 *
 * @since 0.1.0
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Trust from "./internal/trust.js"

/**
 * The paths of a runtime directory.
 *
 * @since 0.1.0
 * @category models
 */
export interface Files {
  readonly dir: string
  /** The command FIFO: command bytes and JSON-RPC requests. */
  readonly cmd: string
  /** The reply FIFO: JSON-RPC responses, one per line. */
  readonly out: string
  /** The pid file, holding the daemon's pid. */
  readonly pid: string
}

/**
 * The paths inside `dir`.
 *
 * @example
 * ```ts
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * RuntimeDir.files("/run/user/1000/refpersys").cmd // "/run/user/1000/refpersys/rps.cmd"
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const files = (dir: string): Files => {
  const absolute = path.resolve(dir)
  return {
    dir: absolute,
    cmd: path.join(absolute, "rps.cmd"),
    out: path.join(absolute, "rps.out"),
    pid: path.join(absolute, "rps.pid")
  }
}

/**
 * The default directory: `$XDG_RUNTIME_DIR/refpersys` when that variable is
 * set, else `<tmpdir>/refpersys-<uid>`.
 *
 * @example
 * ```ts
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * console.log(RuntimeDir.defaultDir())
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultDir = (): string => {
  const xdg = process.env.XDG_RUNTIME_DIR
  if (xdg !== undefined && xdg.length > 0) return path.join(xdg, "refpersys")
  const uid = typeof process.getuid === "function" ? process.getuid() : os.userInfo().username
  return path.join(os.tmpdir(), `refpersys-${uid}`)
}

/**
 * Why the runtime directory could not be used.
 *
 * - `AlreadyRunning`: a live process holds the lock (its pid is in `pid`).
 * - `NotAFifo`: `rps.cmd` or `rps.out` exists and is not a FIFO.
 * - `Untrusted`: the directory, one of its parents or one of its files is
 *   not ours (another owner, group or other bits, a symbolic link, a FIFO
 *   we did not make); `detail` says what and how to fix it. The programs
 *   exit with {@link untrustedExitCode} then.
 * - `System`: the operating system refused (see `detail`).
 *
 * @since 0.1.0
 * @category errors
 */
export class RuntimeDirError extends Data.TaggedError("RuntimeDirError")<{
  readonly reason: "AlreadyRunning" | "NotAFifo" | "Untrusted" | "System"
  readonly path: string
  readonly detail: string
  readonly pid?: number
  /** The errno name (`ENOENT`, `ENXIO`, ...), for `System`. */
  readonly code?: string
}> {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

/**
 * The exit code of `rps-daemon` and `rps-ctl` when they refuse an untrusted
 * runtime directory or FIFO: 77, `EX_NOPERM` of `sysexits.h`.
 *
 * @since 0.1.0
 * @category constants
 */
export const untrustedExitCode = 77

const untrusted = (where: string, problem: string): RuntimeDirError =>
  new RuntimeDirError({ reason: "Untrusted", path: where, detail: `refused, untrusted: ${problem}` })

/**
 * A crashed run's leftovers that {@link acquire} removed.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stale {
  /** The pid recorded by the crashed run, if the file held one. */
  readonly pid: number | null
  readonly removed: ReadonlyArray<string>
}

/**
 * What {@link acquire} got: the paths, and what it cleaned up.
 *
 * @since 0.1.0
 * @category models
 */
export interface Acquired {
  readonly files: Files
  readonly stale: Stale | undefined
}

/**
 * Whether a process with this pid exists (a process of another user counts).
 *
 * @example
 * ```ts
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * RuntimeDir.isAlive(process.pid) // true
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * The pid recorded in a pid file, or `undefined` when the file is missing or
 * holds no pid.
 *
 * @example
 * ```ts
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * const pid = RuntimeDir.readPid(RuntimeDir.files(RuntimeDir.defaultDir()))
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const readPid = (paths: Files): number | undefined => Trust.readPidFile(paths.pid)

const systemError = (where: string, error: unknown): RuntimeDirError =>
  new RuntimeDirError({
    reason: "System",
    path: where,
    detail: error instanceof Error ? error.message : String(error)
  })

const codeOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

/** The directory's problem, or `"missing"`; throws the system's other errors. */
const dirStatus = (dir: string): string | "missing" | undefined => {
  let stats: fs.Stats
  try {
    stats = fs.lstatSync(dir)
  } catch (error) {
    if (codeOf(error) === "ENOENT") return "missing"
    throw error
  }
  return Trust.dirProblem(dir, stats) ?? Trust.ancestorsProblem(dir)
}

/**
 * Checks that `dir` is a runtime directory we can trust, without creating or
 * changing anything: a directory (not a symbolic link) owned by the
 * effective uid with no group or other bits, whose parents (symbolic links
 * resolved) belong to us or root and are writable by nobody else unless
 * sticky. Succeeds with `"missing"` when there is no such path; fails with
 * reason `Untrusted`, saying what is wrong and what to do, otherwise.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * const verdict = RuntimeDir.check("/tmp/rps-example").pipe(
 *   Effect.map((found) => found === "missing" ? "no such directory" : "ours")
 * )
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const check = (dir: string): Effect.Effect<"ok" | "missing", RuntimeDirError> =>
  Effect.suspend(() => {
    const absolute = path.resolve(dir)
    let status: string | undefined
    try {
      status = dirStatus(absolute)
    } catch (error) {
      return Effect.fail(systemError(absolute, error))
    }
    if (status === undefined) return Effect.succeed("ok" as const)
    if (status === "missing") return Effect.succeed("missing" as const)
    return Effect.fail(untrusted(absolute, status))
  })

/**
 * Makes the directory (mode 0700; missing parents too) unless it exists,
 * then checks it as {@link check} does. A directory that appears between the
 * `lstat` and the `mkdir` (`EEXIST`) is checked like any other.
 */
const ensureDir = (dir: string): Effect.Effect<void, RuntimeDirError> =>
  Effect.flatMap(check(dir), (found) => {
    if (found === "ok") return Effect.void
    try {
      // The parents first, from the nearest one that exists: nothing is made
      // under a parent others can write (they could swap it right after).
      const existing = Trust.nearestExisting(path.dirname(dir))
      const above = Trust.ancestorsProblem(path.join(existing, "_"))
      if (above !== undefined) return Effect.fail(untrusted(dir, above))
      fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 })
      fs.mkdirSync(dir, { mode: 0o700 })
    } catch (error) {
      if (codeOf(error) !== "EEXIST") return Effect.fail(systemError(dir, error))
    }
    return Effect.flatMap(check(dir), (again) =>
      again === "ok" ? Effect.void : Effect.fail(systemError(dir, new Error("the directory vanished right after it was made"))))
  })

/**
 * Opens a FIFO of the runtime directory and checks it on the opened fd:
 * `O_NOFOLLOW` is added to `flags` (a symbolic link is refused, never
 * followed), then `fstat` must show a FIFO owned by the effective uid with
 * mode 0600, as {@link ensureFifo} makes it. Checking the fd, not the path
 * before the open, leaves no gap between the check and the use. Fails with
 * reason `Untrusted` (the fd closed) when the file is not such a FIFO, and
 * with `System` (whose `code` is the errno name) when the open fails.
 *
 * @example
 * ```ts
 * import * as fs from "node:fs"
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * const fd = RuntimeDir.openFifo("/tmp/rps-example/rps.cmd", fs.constants.O_RDWR | fs.constants.O_NONBLOCK)
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const openFifo = (where: string, flags: number): Effect.Effect<number, RuntimeDirError> =>
  Effect.suspend(() => {
    let opened: Trust.Opened
    try {
      opened = Trust.openFifo(where, flags)
    } catch (error) {
      const code = codeOf(error)
      return Effect.fail(
        new RuntimeDirError({
          reason: "System",
          path: where,
          detail: error instanceof Error ? error.message : String(error),
          ...(code === undefined ? {} : { code })
        })
      )
    }
    return "fd" in opened ? Effect.succeed(opened.fd) : Effect.fail(untrusted(where, opened.problem))
  })

const verifyFifo = (where: string): Effect.Effect<void, RuntimeDirError> =>
  Effect.flatMap(openFifo(where, fs.constants.O_RDWR | fs.constants.O_NONBLOCK), (fd) => Effect.sync(() => fs.closeSync(fd)))

const kindOf = (where: string): "missing" | "fifo" | "link" | "other" => {
  try {
    const stats = fs.lstatSync(where)
    return stats.isFIFO() ? "fifo" : stats.isSymbolicLink() ? "link" : "other"
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing"
    throw error
  }
}

const mkfifo = (where: string): Effect.Effect<void, RuntimeDirError> =>
  Effect.callback<void, RuntimeDirError>((resume) => {
    execFile("mkfifo", ["-m", "600", where], (error, _stdout, stderr) => {
      if (error === null) return resume(Effect.void)
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT"
      resume(Effect.fail(
        new RuntimeDirError({
          reason: "System",
          path: where,
          detail: missing
            ? "cannot create the FIFO: the mkfifo command (GNU coreutils) is not installed"
            : `mkfifo failed: ${stderr.trim() || error.message}`
        })
      ))
    })
  })

/**
 * Makes sure `where` is a FIFO: creates it (mode 0600, whatever the umask)
 * if missing, fails with `NotAFifo` if another kind of file is there and
 * with `Untrusted` for a symbolic link. Succeeds with `true` when it created
 * one. Who made an existing FIFO is checked when it is opened
 * ({@link openFifo}).
 *
 * @example
 * ```ts
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * const created = RuntimeDir.ensureFifo("/tmp/example.fifo")
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const ensureFifo = (where: string): Effect.Effect<boolean, RuntimeDirError> =>
  Effect.suspend(() => {
    let kind: "missing" | "fifo" | "link" | "other"
    try {
      kind = kindOf(where)
    } catch (error) {
      return Effect.fail(systemError(where, error))
    }
    if (kind === "fifo") return Effect.succeed(false)
    if (kind === "link") {
      return Effect.fail(untrusted(where, "it is a symbolic link, which is never followed; remove it, then start the daemon again"))
    }
    if (kind === "other") {
      return Effect.fail(
        new RuntimeDirError({
          reason: "NotAFifo",
          path: where,
          detail: "exists and is not a FIFO; remove it, or choose another --runtime-dir"
        })
      )
    }
    return Effect.as(mkfifo(where), true)
  })

const removeIfFifo = (where: string): boolean => {
  try {
    if (kindOf(where) !== "fifo") return false
    fs.unlinkSync(where)
    return true
  } catch {
    return false
  }
}

/** Creates the pid file exclusively (never through a link); `false` when it exists already. */
const tryLock = (paths: Files): boolean => Trust.createPidFile(paths.pid, process.pid)

const lock = (paths: Files): Effect.Effect<Stale | undefined, RuntimeDirError> =>
  Effect.andThen(ensureDir(paths.dir), Effect.try({
    try: () => {
      if (tryLock(paths)) return { ok: true as const, stale: undefined }
      const pid = readPid(paths)
      if (pid !== undefined && pid !== process.pid && isAlive(pid)) return { ok: false as const, pid }
      // A crashed run: its pid is gone (or the file is garbage). Clear its
      // leftovers and take the lock; if another daemon wins the race for
      // it meanwhile, refuse as if it had been there first. (The directory
      // is ours, checked before: whatever is in it, we or root put there;
      // unlinking a link removes the link, not its target.)
      const removed: Array<string> = []
      fs.rmSync(paths.pid, { force: true })
      removed.push(paths.pid)
      if (removeIfFifo(paths.cmd)) removed.push(paths.cmd)
      if (removeIfFifo(paths.out)) removed.push(paths.out)
      if (tryLock(paths)) return { ok: true as const, stale: { pid: pid ?? null, removed } }
      return { ok: false as const, pid: readPid(paths) }
    },
    catch: (error) => systemError(paths.dir, error)
  })).pipe(Effect.flatMap((result) =>
    result.ok ? Effect.succeed(result.stale) : Effect.fail(
      new RuntimeDirError({
        reason: "AlreadyRunning",
        path: paths.dir,
        detail: `a daemon${result.pid === undefined ? "" : ` (pid ${result.pid})`} is already running with this ` +
          `runtime directory; stop it (npm run ctl -- quit --runtime-dir ${paths.dir}) or pass another --runtime-dir`,
        ...(result.pid === undefined ? {} : { pid: result.pid })
      })
    )
  ))

/** Whether `where` is, without following a link, a FIFO as we make them (ours, 0600). */
const isOurFifo = (where: string): boolean => {
  try {
    const stats = fs.lstatSync(where)
    return stats.isFIFO() && Trust.fifoProblem(stats) === undefined
  } catch {
    return false
  }
}

const release = (paths: Files): Effect.Effect<void> =>
  Effect.sync(() => {
    // A FIFO that was refused stays where it is, for its owner to see.
    if (isOurFifo(paths.cmd)) removeIfFifo(paths.cmd)
    if (isOurFifo(paths.out)) removeIfFifo(paths.out)
    // Only our own lock: never remove the pid file of a daemon that took
    // the directory over.
    if (readPid(paths) === process.pid) fs.rmSync(paths.pid, { force: true })
  })

/**
 * Takes the runtime directory for the scope: creates it (mode 0700) if
 * needed, takes the lock, cleans up after a crashed run, and makes both
 * FIFOs. Closing the scope removes the FIFOs and the pid file.
 *
 * A directory that is not ours (see {@link check}) is refused with reason
 * `Untrusted` before anything in it is created, read or removed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RuntimeDir } from "@refpersys/daemon"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const { files, stale } = yield* RuntimeDir.acquire("/tmp/rps-example")
 *   if (stale !== undefined) console.log("cleaned up after pid", stale.pid)
 *   console.log("commands go to", files.cmd)
 * }))
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const acquire = (dir: string): Effect.Effect<Acquired, RuntimeDirError, Scope.Scope> => {
  const paths = files(dir)
  return Effect.gen(function*() {
    const stale = yield* Effect.acquireRelease(lock(paths), () => release(paths))
    yield* ensureFifo(paths.cmd)
    yield* ensureFifo(paths.out)
    // Refused here already, before the caller builds on them; whoever opens
    // them checks the fds again (see `openFifo`).
    yield* verifyFifo(paths.cmd)
    yield* verifyFifo(paths.out)
    return { files: paths, stale }
  })
}
