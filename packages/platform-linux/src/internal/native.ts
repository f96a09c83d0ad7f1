/**
 * Loads the native addon (`build/Release/rps_platform.node`) and describes
 * its functions. Loading never throws: when the addon is missing or cannot
 * load, `loadError` says why, so that a caller can fall back to the portable
 * layer and tell the user what happened.
 *
 * @since 0.1.0
 * @internal
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * An opaque uv_poll_t handle made by `pollOpen`.
 *
 * @since 0.1.0
 * @internal
 */
export interface PollHandle {
  readonly _PollHandle: unique symbol
}

// Bits of the flags the poll callback receives. They come from a poll(2) of
// the fd made in the callback, because libuv folds a hang-up into "readable".

/**
 * The fd is readable (POLLIN).
 *
 * @since 0.1.0
 * @internal
 */
export const READ = 1

/**
 * The fd is writable (POLLOUT).
 *
 * @since 0.1.0
 * @internal
 */
export const WRITE = 2

/**
 * The peer hung up (POLLHUP or POLLRDHUP).
 *
 * @since 0.1.0
 * @internal
 */
export const HUP = 4

/**
 * An error condition on the fd, or libuv reported one (POLLERR, POLLNVAL).
 *
 * @since 0.1.0
 * @internal
 */
export const ERROR = 8

/**
 * The addon's functions. Every one that makes a syscall throws an `Error`
 * with `code` (the errno name), `syscall` and `errno` when the kernel refuses.
 *
 * @since 0.1.0
 * @internal
 */
export interface Addon {
  /** pipe2(O_CLOEXEC | O_NONBLOCK). */
  readonly pipe: () => { readonly readFd: number; readonly writeFd: number }
  /** One atomic one-byte write; EAGAIN when the pipe is full. */
  readonly sendByte: (fd: number, byte: number) => void
  /** Up to `max` bytes: empty when nothing is there, `null` at end of file. */
  readonly readBytes: (fd: number, max: number) => Buffer | null
  readonly close: (fd: number) => void
  /** What fstat says the fd is. */
  readonly fdKind: (fd: number) => "file" | "directory" | "fifo" | "socket" | "character" | "block" | "other"
  /** timerfd_create on CLOCK_REALTIME (`true`) or CLOCK_MONOTONIC (`false`). */
  readonly timerCreate: (realtime: boolean) => number
  /** timerfd_settime: `value` in ms, absolute on the timer's clock or relative; `intervalMs` 0 for one shot. */
  readonly timerSet: (fd: number, value: number, intervalMs: number, absolute: boolean) => void
  /**
   * Arms the timer (one shot, relative on its clock) `delayMs` from now,
   * clamped to [1 ns, maxDelayMs] (maxDelayMs itself to [1, 2^31-1]): a due
   * delay, however negative, fires at once. EINVAL for NaN.
   */
  readonly timerSetDelay: (fd: number, delayMs: number, maxDelayMs: number) => void
  /** Milliseconds until the next expiry (timerfd_gettime), 0 when disarmed. */
  readonly timerGet: (fd: number) => number
  readonly timerDisarm: (fd: number) => void
  /** Expirations since the last read, 0 when none. */
  readonly timerRead: (fd: number) => number
  /** The process's signalfd and the pipe the forwarding handler writes to. */
  readonly signalInit: () => { readonly signalFd: number; readonly strayFd: number }
  readonly signalClaim: (signo: number) => void
  readonly signalRelease: (signo: number) => void
  /** Signal numbers read from the signalfd. */
  readonly signalRead: (fd: number) => Array<number>
  /** kill(getpid(), signo). */
  readonly raise: (signo: number) => void
  /** uv_poll_init on Node's loop; the handle starts stopped and unreferenced. */
  readonly pollOpen: (fd: number, callback: (flags: number, status: number) => void) => PollHandle
  readonly pollStart: (handle: PollHandle, read: boolean, write: boolean) => void
  readonly pollStop: (handle: PollHandle) => void
  readonly pollRef: (handle: PollHandle, ref: boolean) => void
  readonly pollClose: (handle: PollHandle) => void
  readonly constants: { readonly SIGRTMIN: number; readonly SIGRTMAX: number }
}

/**
 * Where the addon is expected: the same relative path from `src/internal`
 * and from `dist/internal`.
 *
 * @since 0.1.0
 * @internal
 */
export const addonPath: string = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "..",
  "build",
  "Release",
  "rps_platform.node"
)

const load = (): { readonly addon: Addon | undefined; readonly error: string | undefined } => {
  if (process.platform !== "linux") {
    return { addon: undefined, error: `the native addon is Linux-only and this is ${process.platform}` }
  }
  if (!fs.existsSync(addonPath)) {
    return {
      addon: undefined,
      error: `${addonPath} does not exist: the native build did not run or failed ` +
        "(run `node packages/platform-linux/scripts/build-native.mjs` to see why)"
    }
  }
  try {
    return { addon: createRequire(import.meta.url)(addonPath) as Addon, error: undefined }
  } catch (error) {
    return {
      addon: undefined,
      error: `${addonPath} could not be loaded: ${error instanceof Error ? error.message : String(error)}`
    }
  }
}

const loaded = load()

/**
 * The addon, when it loaded.
 *
 * @since 0.1.0
 * @internal
 */
export const addon: Addon | undefined = loaded.addon

/**
 * Why the addon did not load, when it did not.
 *
 * @since 0.1.0
 * @internal
 */
export const loadError: string | undefined = loaded.error

/**
 * The errno name of an error thrown by the addon (`"EBADF"`...), if it has one.
 *
 * @since 0.1.0
 * @internal
 */
export const errnoOf = (error: unknown): string | undefined => {
  const code = typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === "string" ? code : undefined
}
