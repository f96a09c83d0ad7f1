/**
 * The trust rules of the runtime directory and its files, as OpenSSH and
 * systemd apply them to control sockets:
 *
 * - the directory is ours: a real directory (not a symbolic link), owned by
 *   the effective uid, with no group or other permission bits;
 * - nobody else can replace it: each of its ancestors (symbolic links
 *   resolved) is owned by us or root and is writable by nobody else, unless
 *   it has the sticky bit (as `/tmp` does);
 * - a FIFO is ours: checked with `fstat` on the fd opened with `O_NOFOLLOW`
 *   (so what is checked is what is used), it is a FIFO owned by us with
 *   mode 0600 exactly, as `mkfifo -m 600` made it.
 *
 * The checks return a problem as text (what is wrong and what to do), or
 * `undefined` when all is well; callers wrap it in their own error.
 *
 * @internal
 */
import * as fs from "node:fs"
import * as path from "node:path"

const { O_NOFOLLOW, O_NONBLOCK, O_RDONLY } = fs.constants

/** The effective uid (0 where the platform has none, which Linux always has). */
export const euid = (): number => (typeof process.geteuid === "function" ? process.geteuid() : 0)

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, "0")

const codeOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

/** How to get out of a refusal of the runtime directory. */
const remedy = "remove it, or pass --runtime-dir with a directory of your own (it is created with mode 0700)"

/**
 * Checks the directory itself, from its `lstat`. Never follows a symbolic
 * link and never changes anything: a directory someone else made is not
 * ours to chmod.
 */
export const dirProblem = (dir: string, stats: fs.Stats, uid = euid()): string | undefined => {
  if (stats.isSymbolicLink()) {
    let target = "?"
    try {
      target = fs.readlinkSync(dir)
    } catch {
      // the text is only for the message
    }
    return `it is a symbolic link (to ${target}), which is never followed; ${remedy}`
  }
  if (!stats.isDirectory()) return `it exists and is not a directory; ${remedy}`
  if (stats.uid !== uid) {
    return `it is owned by uid ${stats.uid}, not by this user (uid ${uid}): that user could send commands and read the replies; ${remedy}`
  }
  if ((stats.mode & 0o077) !== 0) {
    return `its mode ${octal(stats.mode)} lets other users in (it must have no group or other bits); ` +
      `run chmod 700 on it, or pass another --runtime-dir`
  }
  return undefined
}

/**
 * Checks that nobody but us (or root) can replace `dir`: every ancestor, from
 * the real path of its parent up to `/`, is owned by us or root, and is not
 * writable by group or others unless it has the sticky bit. Throws the
 * system's error when the parent cannot be resolved.
 */
export const ancestorsProblem = (dir: string, uid = euid()): string | undefined => {
  let current = fs.realpathSync(path.dirname(dir))
  for (;;) {
    const stats = fs.statSync(current)
    if (stats.uid !== uid && stats.uid !== 0) {
      return `its parent ${current} is owned by uid ${stats.uid} (neither this user, uid ${uid}, nor root), ` +
        `who could replace it; use a --runtime-dir under a directory of your own`
    }
    if ((stats.mode & 0o022) !== 0 && (stats.mode & 0o1000) === 0) {
      return `its parent ${current} (mode ${octal(stats.mode)}) is writable by other users and has no sticky bit, ` +
        `so they could replace it; use a --runtime-dir under a directory only you can write`
    }
    const up = path.dirname(current)
    if (up === current) return undefined
    current = up
  }
}

/** The path itself or its nearest ancestor that exists (`/` at worst). */
export const nearestExisting = (where: string): string => {
  let current = where
  for (;;) {
    try {
      fs.lstatSync(current)
      return current
    } catch (error) {
      if (codeOf(error) !== "ENOENT") throw error
    }
    const up = path.dirname(current)
    if (up === current) return current
    current = up
  }
}

/** Checks an opened FIFO by `fstat` on its fd. */
export const fifoProblem = (stats: fs.Stats, uid = euid()): string | undefined => {
  if (!stats.isFIFO()) {
    const kind = stats.isFile() ? "a regular file" : stats.isDirectory() ? "a directory" : "another kind of file"
    return `it is ${kind}, not a FIFO; remove it, then start the daemon again`
  }
  if (stats.uid !== uid) {
    return `it is owned by uid ${stats.uid}, not by this user (uid ${uid}): the daemon did not make it; ` +
      `remove it, then start the daemon again`
  }
  if ((stats.mode & 0o777) !== 0o600) {
    return `its mode is ${octal(stats.mode)}, not 0600: the daemon did not make it; remove it, then start the daemon again`
  }
  return undefined
}

/** What {@link openFifo} got: an fd that passed the checks, or why it was refused (the fd is closed then). */
export type Opened = { readonly fd: number } | { readonly problem: string }

/**
 * Opens a FIFO with `O_NOFOLLOW` added to `flags` and checks it by `fstat` on
 * the fd. A symbolic link is refused (`ELOOP`); other system errors (such as
 * `ENOENT`, or `ENXIO` for a write-only open with no reader) are thrown.
 */
export const openFifo = (where: string, flags: number, uid = euid()): Opened => {
  let fd: number
  try {
    fd = fs.openSync(where, flags | O_NOFOLLOW)
  } catch (error) {
    if (codeOf(error) === "ELOOP") return { problem: "it is a symbolic link, which is never followed; remove it, then start the daemon again" }
    throw error
  }
  let problem: string | undefined
  try {
    problem = fifoProblem(fs.fstatSync(fd), uid)
  } catch (error) {
    fs.closeSync(fd)
    throw error
  }
  if (problem === undefined) return { fd }
  fs.closeSync(fd)
  return { problem }
}

/**
 * The pid in a pid file: only a regular file of ours is read, opened with
 * `O_NOFOLLOW` (and `O_NONBLOCK`, so that a FIFO in its place cannot block)
 * and checked by `fstat`. `undefined` when missing, not ours, or no pid.
 */
export const readPidFile = (where: string, uid = euid()): number | undefined => {
  let fd: number
  try {
    fd = fs.openSync(where, O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  } catch {
    return undefined
  }
  try {
    const stats = fs.fstatSync(fd)
    if (!stats.isFile() || stats.uid !== uid || stats.size > 64) return undefined
    const pid = Number(fs.readFileSync(fd, "utf8").trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Creates the pid file exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode
 * 0600): never through a symbolic link, never into a file that exists.
 * `false` when it exists already.
 */
export const createPidFile = (where: string, pid: number): boolean => {
  let fd: number
  try {
    fd = fs.openSync(where, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600)
  } catch (error) {
    if (codeOf(error) === "EEXIST") return false
    throw error
  }
  try {
    fs.writeSync(fd, `${pid}\n`)
  } finally {
    fs.closeSync(fd)
  }
  return true
}
