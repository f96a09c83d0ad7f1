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
 * @since 0.1.0
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

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
 * - `System`: the operating system refused (see `detail`).
 *
 * @since 0.1.0
 * @category errors
 */
export class RuntimeDirError extends Data.TaggedError("RuntimeDirError")<{
  readonly reason: "AlreadyRunning" | "NotAFifo" | "System"
  readonly path: string
  readonly detail: string
  readonly pid?: number
}> {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

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
export const readPid = (paths: Files): number | undefined => {
  let text: string
  try {
    text = fs.readFileSync(paths.pid, "utf8")
  } catch {
    return undefined
  }
  const pid = Number(text.trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

const systemError = (where: string, error: unknown): RuntimeDirError =>
  new RuntimeDirError({
    reason: "System",
    path: where,
    detail: error instanceof Error ? error.message : String(error)
  })

const kindOf = (where: string): "missing" | "fifo" | "other" => {
  try {
    return fs.lstatSync(where).isFIFO() ? "fifo" : "other"
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "missing"
    throw error
  }
}

const mkfifo = (where: string): Effect.Effect<void, RuntimeDirError> =>
  Effect.async<void, RuntimeDirError>((resume) => {
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
 * Makes sure `where` is a FIFO: creates it if missing, fails with `NotAFifo`
 * if something else is there. Succeeds with `true` when it created one.
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
    let kind: "missing" | "fifo" | "other"
    try {
      kind = kindOf(where)
    } catch (error) {
      return Effect.fail(systemError(where, error))
    }
    if (kind === "fifo") return Effect.succeed(false)
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

/** Creates the pid file exclusively; `false` when it exists already. */
const tryLock = (paths: Files): boolean => {
  try {
    fs.writeFileSync(paths.pid, `${process.pid}\n`, { flag: "wx", mode: 0o644 })
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
    throw error
  }
}

const lock = (paths: Files): Effect.Effect<Stale | undefined, RuntimeDirError> =>
  Effect.try({
    try: () => {
      fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
      if (tryLock(paths)) return { ok: true as const, stale: undefined }
      const pid = readPid(paths)
      if (pid !== undefined && pid !== process.pid && isAlive(pid)) return { ok: false as const, pid }
      // A crashed run: its pid is gone (or the file is garbage). Clear its
      // leftovers and take the lock; if another daemon wins the race for
      // it meanwhile, refuse as if it had been there first.
      const removed: Array<string> = []
      fs.rmSync(paths.pid, { force: true })
      removed.push(paths.pid)
      if (removeIfFifo(paths.cmd)) removed.push(paths.cmd)
      if (removeIfFifo(paths.out)) removed.push(paths.out)
      if (tryLock(paths)) return { ok: true as const, stale: { pid: pid ?? null, removed } }
      return { ok: false as const, pid: readPid(paths) }
    },
    catch: (error) => systemError(paths.dir, error)
  }).pipe(Effect.flatMap((result) =>
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

const release = (paths: Files): Effect.Effect<void> =>
  Effect.sync(() => {
    removeIfFifo(paths.cmd)
    removeIfFifo(paths.out)
    // Only our own lock: never remove the pid file of a daemon that took
    // the directory over.
    if (readPid(paths) === process.pid) fs.rmSync(paths.pid, { force: true })
  })

/**
 * Takes the runtime directory for the scope: creates it (mode 0700) if
 * needed, takes the lock, cleans up after a crashed run, and makes both
 * FIFOs. Closing the scope removes the FIFOs and the pid file.
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
    return { files: paths, stale }
  })
}
