// Real FIFOs for the tests: Node has no pipe(2), but `mkfifo` gives named
// pipes whose ends can be opened with `fs`.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"

export interface Fifo {
  readonly path: string
  /** The read end, opened non-blocking so that opening does not wait for a writer. */
  readonly readFd: number
  /** The write end, or -1 once closed with `closeWriter`. */
  writeFd: number
  readonly write: (data: string | Uint8Array) => void
  readonly closeWriter: () => void
}

let dir: string | undefined
let counter = 0

const directory = (): string => {
  if (dir === undefined) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "refpersys-node-platform-"))
    const created = dir
    process.once("exit", () => fs.rmSync(created, { recursive: true, force: true }))
  }
  return dir
}

const closeQuietly = (fd: number) => {
  try {
    fs.closeSync(fd)
  } catch {
    // Already closed by the test, which is what some tests are about.
  }
}

/** `n` FIFOs with both ends open, closed and removed with the scope. */
export const fifos = (n: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const paths = Array.from({ length: n }, () => path.join(directory(), `fifo-${process.pid}-${counter++}`))
      const made = spawnSync("mkfifo", paths)
      if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr?.toString() ?? made.error}`)
      return paths.map((p): Fifo => {
        const readFd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
        const fifo: Fifo = {
          path: p,
          readFd,
          writeFd: fs.openSync(p, fs.constants.O_WRONLY),
          write: (data) => {
            fs.writeSync(fifo.writeFd, typeof data === "string" ? Buffer.from(data) : data)
          },
          closeWriter: () => {
            if (fifo.writeFd >= 0) fs.closeSync(fifo.writeFd)
            fifo.writeFd = -1
          }
        }
        return fifo
      })
    }),
    (all) =>
      Effect.sync(() => {
        for (const fifo of all) {
          closeQuietly(fifo.readFd)
          if (fifo.writeFd >= 0) closeQuietly(fifo.writeFd)
          fs.rmSync(fifo.path, { force: true })
        }
      })
  )

export const fifo = Effect.map(fifos(1), (all) => all[0])

/** An fd number that was open a moment ago and is closed now. */
export const closedFd = Effect.sync(() => {
  const fd = fs.openSync(os.devNull, "r")
  fs.closeSync(fd)
  return fd
})
