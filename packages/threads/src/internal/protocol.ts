/**
 * What the main thread and the worker threads share: the layout of the
 * shared memory and the shape of the messages on the tasklet channel.
 *
 * Shared memory (two `Int32Array`s over `SharedArrayBuffer`s):
 *
 * - `control`: the GC barrier words and, per thread, the number of messages
 *   the main thread posted (so a busy thread checks for new work with one
 *   atomic load instead of a call into the port), its activity and the last
 *   barrier it parked for.
 * - `slots`: one word per local-queue entry, `localQueue` per thread. A word
 *   is `seq << 2 | state`. The main thread writes `QUEUED` with a fresh `seq`
 *   when it sends an entry; the thread claims it with a compare-and-swap
 *   `QUEUED -> RUNNING` just before running it; the main thread steals or
 *   reclaims it with a compare-and-swap `QUEUED -> FREE`. Exactly one of the
 *   two swaps succeeds, so a busy thread never needs to answer a steal, and
 *   a stale entry (its `seq` no longer matches) is skipped when reached.
 *
 * @internal
 */
import type { MessagePort } from "node:worker_threads"

/** control[GC_WANTED]: the newest barrier epoch requested. */
export const GC_WANTED = 0
/** control[GC_RELEASED]: the newest barrier epoch whose collection ended. */
export const GC_RELEASED = 1
const HEADER = 4
const PER_THREAD = 4
/** Messages the main thread posted to a thread's tasklet channel. */
export const posted = (thread: number): number => HEADER + thread * PER_THREAD
/** What a thread does now: `IDLE`, `RUN` or `PARKED`. */
export const activity = (thread: number): number => HEADER + thread * PER_THREAD + 1
/** The last barrier epoch a thread parked for. */
export const parked = (thread: number): number => HEADER + thread * PER_THREAD + 2
export const controlWords = (threads: number): number => HEADER + threads * PER_THREAD

export const IDLE = 0
export const RUN = 1
export const PARKED = 2

export const FREE = 0
export const QUEUED = 1
export const RUNNING = 2
export const SEQ_MASK = 0x1fffffff

/** Main -> thread. */
export const M_DISPATCH = 0
export const M_INTERRUPT = 1
export const M_WAKE = 2

/** Fields per dispatched entry in `DispatchMessage.e`. */
export const ENTRY_FIELDS = 7
/**
 * Entry layout: slot (global index), seq, task id, level, obsolete-at (ms,
 * or -1), encoded args, and the submitter's carried context (see
 * `carry.ts`; `undefined` when it had nothing to carry).
 */
export interface DispatchMessage {
  readonly k: typeof M_DISPATCH
  /** Tasks this thread has not seen yet: `[id, module URL, export name]`. */
  readonly reg: ReadonlyArray<readonly [number, string, string]> | undefined
  readonly e: ReadonlyArray<unknown>
}
export interface InterruptMessage {
  readonly k: typeof M_INTERRUPT
  readonly slot: number
  readonly seq: number
}
export interface WakeMessage {
  readonly k: typeof M_WAKE
}
export type ToThread = DispatchMessage | InterruptMessage | WakeMessage

/** Thread -> main. */
export const T_RESULTS = 0
export const T_PARKED = 1
export const T_COMMAND = 2
export const T_FATAL = 3

/** Fields per result in `ResultsMessage.r`. */
export const RESULT_FIELDS = 6
/** Result layout: slot, seq, kind, value, started-at (ms), ended-at (ms). */
export interface ResultsMessage {
  readonly k: typeof T_RESULTS
  readonly r: ReadonlyArray<unknown>
  /** Nothing queued and nothing running when the batch was sent. */
  readonly idle: boolean
}
export interface ParkedMessage {
  readonly k: typeof T_PARKED
  readonly epoch: number
  /** Whether the thread collected its own heap while parked. */
  readonly collected: boolean
}
export interface CommandMessage {
  readonly k: typeof T_COMMAND
  readonly byte: number
}
/** Sent as a thread dies of an uncaught exception: its description, which the "error" event may lose. */
export interface FatalMessage {
  readonly k: typeof T_FATAL
  readonly detail: string
}
export type FromThread = ResultsMessage | ParkedMessage | CommandMessage | FatalMessage

/** Result kinds. */
export const R_SUCCESS = 0
export const R_FAILURE = 1
export const R_DEFECT = 2
export const R_INTERRUPTED = 3
export const R_OBSOLETE = 4
/** value: `[stage, detail]`, or `[stage, detail, path]` for a value that cannot be structured-cloned. */
export const R_CODEC = 5
/** value: detail. */
export const R_LOAD = 6

/** How a thread sends command bytes to the event loop. */
export type CommandRoute =
  | { readonly _tag: "Fd"; readonly fd: number }
  | { readonly _tag: "Relay" }
  | { readonly _tag: "None" }

export interface WorkerData {
  readonly thread: number
  readonly localQueue: number
  readonly concurrency: number
  readonly control: SharedArrayBuffer
  readonly slots: SharedArrayBuffer
  readonly port: MessagePort
  readonly commands: CommandRoute
  readonly heapCollection: "exposed" | "force" | "off"
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across threads. */
export const now = (): number => performance.timeOrigin + performance.now()
