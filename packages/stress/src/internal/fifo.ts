/**
 * Real FIFOs (named pipes) for the scenarios: Node has no pipe(2), but
 * `mkfifo` gives pipes whose ends `fs` can open, each with its own fd.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface Fifo {
  readonly path: string
  /** Opens an end; non-blocking unless said otherwise. The caller closes it (see `closeQuietly`). */
  readonly open: (end: "read" | "write") => number
}

let counter = 0

/**
 * `n` FIFOs in a fresh directory (one `mkfifo` for all), removed with the
 * scope. A FIFO can be opened again once all its ends are closed, and its
 * buffer is gone by then, so rounds of a scenario reuse them.
 */
export const makeMany = (n: number): Effect.Effect<ReadonlyArray<Fifo>, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "refpersys-stress-"))
      const files = Array.from({ length: n }, () => path.join(dir, `fifo-${counter++}`))
      const made = spawnSync("mkfifo", files)
      if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr?.toString() ?? String(made.error)}`)
      const fifos = files.map((file): Fifo => ({
        path: file,
        open: (end) =>
          fs.openSync(file, (end === "read" ? fs.constants.O_RDONLY : fs.constants.O_WRONLY) | fs.constants.O_NONBLOCK)
      }))
      return { dir, fifos }
    }),
    ({ dir }) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(Effect.map(({ fifos }) => fifos), Effect.orDie)

/** One FIFO (see {@link makeMany}). */
export const make: Effect.Effect<Fifo, never, Scope.Scope> = Effect.map(makeMany(1), (fifos) => fifos[0])

/** An fd this process owns: closed once, by `close` or with the scope. */
export interface OwnedFd {
  readonly fd: number
  readonly closed: boolean
  /** Closes the fd unless already closed (never closes a number reused by someone else). */
  readonly close: () => void
}

export const own = (open: () => number): Effect.Effect<OwnedFd, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const fd = open()
      let closed = false
      return {
        fd,
        get closed() {
          return closed
        },
        close: () => {
          if (closed) return
          closed = true
          fs.closeSync(fd)
        }
      }
    }),
    (owned) => Effect.sync(() => owned.close())
  )

/**
 * Reads what is available now from a non-blocking fd: the bytes, `"eof"`
 * when the writers are gone, or an empty buffer when nothing is there.
 */
export const readAvailable = (fd: number, max = 65_536): Buffer | "eof" => {
  const buffer = Buffer.allocUnsafe(max)
  try {
    const n = fs.readSync(fd, buffer, 0, max, null)
    return n === 0 ? "eof" : buffer.subarray(0, n)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EAGAIN") return Buffer.alloc(0)
    throw error
  }
}

/** Writes what fits now into a non-blocking fd; throws EAGAIN when nothing fits. */
export const writeSome = (fd: number, buffer: Buffer, offset: number, length: number): number =>
  fs.writeSync(fd, buffer, offset, length)
