/**
 * Counters particular to a thread agenda: batching, stealing, priority
 * displacement, crashes. The counters it shares with the core agenda are in
 * `AgendaStats` (from `ThreadAgenda.stats`).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * One worker thread.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ThreadInfo extends Schema.Class<ThreadInfo>("ThreadInfo")({
  /** The thread's id (its index in the pool). */
  id: Schema.Number,
  /** Whether a live worker thread holds this place and has started. */
  ready: Schema.Boolean,
  /** Tasklets in its local queue now. */
  localQueued: Schema.Number,
  /** Tasklets running on it now. */
  localRunning: Schema.Number,
  /** Tasklets sent to it (in batches, by stealing or after a crash of another thread). */
  received: Schema.Number,
  /** Tasklets taken from its local queue for an idle thread. */
  stolenFrom: Schema.Number,
  /** Tasklets it took from other threads' local queues. */
  stolenBy: Schema.Number,
  /** Times its worker thread died and was replaced. */
  crashes: Schema.Number,
  /** Times it collected its own heap while parked for a GC barrier. */
  heapCollections: Schema.Number
}) {}

/**
 * Counters of a thread agenda.
 *
 * @since 0.1.0
 * @category schemas
 */
export class ThreadStats extends Schema.Class<ThreadStats>("ThreadStats")({
  threads: Schema.Array(ThreadInfo),
  /** Messages that carried tasklets to threads. */
  batches: Schema.Number,
  /** Tasklets those messages carried. */
  dispatched: Schema.Number,
  /** Messages that carried results back. */
  resultBatches: Schema.Number,
  /** Times an idle thread took tasklets from a busier one. */
  steals: Schema.Number,
  /** Tasklets moved by those steals. */
  stolen: Schema.Number,
  /** Lower-priority tasklets taken back from a full local queue to make room for a higher one. */
  displaced: Schema.Number,
  /** Worker threads that died and were replaced. */
  crashes: Schema.Number,
  /** Command bytes relayed by the main thread (platforms without a pipe fd). */
  relayedCommands: Schema.Number
}) {}
