/**
 * A Promise facade over the agenda for code outside Effect, shaped like
 * p-queue's `add`, so a p-queue user can switch in minutes.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Agenda from "./Agenda.js"
import { invalidTraceTasklets } from "./internal/agenda.js"
import { AgendaClosed, AgendaFull, InvalidOptions } from "./AgendaError.js"
import type { AgendaStats, ShutdownReport } from "./AgendaStats.js"
import * as Options from "./Options.js"
import * as Priority from "./Priority.js"
import type * as Tasklet from "./Tasklet.js"

/**
 * Options of {@link PromiseAgenda.add}.
 *
 * @since 0.1.0
 * @category models
 */
export interface AddOptions {
  /** A level, or a p-queue style number: positive High, 0 Normal, negative Low. */
  readonly priority?: Priority.Priority | number
  /** Aborting removes a queued task or interrupts a running one; the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal
  /** Explanation shown in stats and logs. */
  readonly label?: string
}

/**
 * The facade. Tasks are functions returning a value or a promise; each gets an
 * `AbortSignal` that fires when the task is interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export interface PromiseAgenda {
  /**
   * Runs `fn` on the agenda and resolves with its result. When the queue is
   * full, waits for room. Rejects with the task's error, with the abort
   * reason when aborted, or with `AgendaClosed`, `TaskletDropped`,
   * `TaskletObsolete` or `InvalidOptions` from the agenda.
   */
  readonly add: <T>(fn: (context: { readonly signal: AbortSignal }) => T | PromiseLike<T>, options?: AddOptions) => Promise<T>
  /** Resolves when nothing is queued or running. */
  readonly onIdle: () => Promise<void>
  /** Tasks waiting in the queues. */
  readonly size: number
  /** Tasks running. */
  readonly pending: number
  /** A snapshot of the agenda's statistics. */
  readonly stats: () => AgendaStats
  /** Quits (default: drain) or exits, then releases the workers. */
  readonly close: (mode?: "quit" | "exit") => Promise<ShutdownReport>
}

/**
 * Creates a Promise-facing agenda (its workers live until `close`). Throws
 * `InvalidOptions` for bad options (see `Options.AgendaOptions`); `add`
 * rejects with it for bad task options (see `Options.PromiseAddOptions`).
 *
 * @example
 * ```ts
 * import { PromiseAgenda } from "@refpersys/core"
 *
 * const queue = PromiseAgenda.make({ workers: 4 })
 * const answer = await queue.add(async () => 42, { priority: "High" })
 * await queue.close()
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Agenda.Options = {}): PromiseAgenda => {
  const decoded = Options.decodeAgendaOptions(options)
  if (Result.isFailure(decoded)) throw decoded.failure
  const invalid = invalidTraceTasklets(options)
  if (invalid !== undefined) throw invalid
  const scope = Effect.runSync(Scope.make())
  const agenda = Effect.runSync(Scope.provide(Agenda.make({ ...options, onClose: "exit" }), scope))

  const add = <T>(
    fn: (context: { readonly signal: AbortSignal }) => T | PromiseLike<T>,
    rawOptions?: AddOptions
  ): Promise<T> => {
    // Validated before anything else, so a bad option never runs the task.
    const valid = Options.decodePromiseAddOptions(rawOptions)
    if (Result.isFailure(valid)) return Promise.reject(valid.failure)
    const addOptions = valid.success
    if (typeof fn !== "function") {
      return Promise.reject(new InvalidOptions({ option: "fn", value: fn, expected: "a function" }))
    }
    const signal = addOptions.signal
    if (signal?.aborted) return Promise.reject(signal.reason)
    const priority = typeof addOptions.priority === "number"
      ? Priority.fromNumber(addOptions.priority)
      : addOptions.priority
    const taskletOptions: Tasklet.Options = {
      ...(priority === undefined ? {} : { priority }),
      ...(addOptions.label === undefined ? {} : { label: addOptions.label })
    }
    // An abort can land after the run was queued but before its handle is
    // observed (while waiting for room); the run must then still never call `fn`.
    const effect = Effect.suspend(() =>
      signal?.aborted
        ? Effect.interrupt
        : Effect.tryPromise({ try: (signal) => Promise.resolve(fn({ signal })), catch: (e) => e })
    )
    const submitted = agenda.unsafeSubmit(effect, taskletOptions)
    if (submitted instanceof AgendaClosed || submitted instanceof InvalidOptions) return Promise.reject(submitted)
    if (!(submitted instanceof AgendaFull)) return observe(submitted, signal)
    // Full: wait for room like Agenda.submit does; an abort gives up the wait.
    return new Promise<T>((resolve, reject) => {
      const waiter = Effect.runFork(agenda.submit(effect, taskletOptions))
      const onAbort = () => waiter.interruptUnsafe()
      signal?.addEventListener("abort", onAbort, { once: true })
      waiter.addObserver((exit) => {
        signal?.removeEventListener("abort", onAbort)
        if (Exit.isSuccess(exit)) return resolve(observe(exit.value, signal))
        reject(Cause.hasInterruptsOnly(exit.cause) && signal?.aborted ? signal.reason : Cause.squash(exit.cause))
      })
    })
  }

  const observe = <T>(handle: Tasklet.TaskletHandle<T, unknown>, signal: AbortSignal | undefined): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const onAbort = () => Effect.runFork(handle.interruptFork)
      signal?.addEventListener("abort", onAbort, { once: true })
      handle.unsafeAddObserver((exit) => {
        signal?.removeEventListener("abort", onAbort)
        if (Exit.isSuccess(exit)) return resolve(exit.value)
        if (Cause.hasInterruptsOnly(exit.cause)) {
          return reject(signal?.aborted ? signal.reason : new Error(`task ${handle.label} was interrupted`))
        }
        reject(Cause.squash(exit.cause))
      })
    })

  return {
    add,
    onIdle: () => Effect.runPromise(agenda.whenIdle),
    get size() {
      return agenda.unsafeLoad().queued
    },
    get pending() {
      return agenda.unsafeLoad().running
    },
    stats: () => Effect.runSync(agenda.stats),
    close: (mode = "quit") =>
      Effect.runPromise(
        Effect.tap(mode === "quit" ? agenda.quit() : agenda.exit, () => Scope.close(scope, Exit.void))
      )
  }
}
