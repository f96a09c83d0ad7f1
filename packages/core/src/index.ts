/**
 * @since 0.1.0
 */

/**
 * The agenda: priority queues served by worker fibers.
 *
 * @since 0.1.0
 */
export * as Agenda from "./Agenda.js"

/**
 * Typed errors of the agenda.
 *
 * @since 0.1.0
 */
export * as AgendaError from "./AgendaError.js"

/**
 * Schema-described statistics and shutdown reports.
 *
 * @since 0.1.0
 */
export * as AgendaStats from "./AgendaStats.js"

/**
 * Events of the event loop, as an `effect/Schema` union.
 *
 * @since 0.1.0
 */
export * as Event from "./Event.js"

/**
 * The swappable platform layer: signals, timer, fd readiness, commands.
 *
 * @since 0.1.0
 */
export * as Platform from "./Platform.js"

/**
 * High / Normal / Low.
 *
 * @since 0.1.0
 */
export * as Priority from "./Priority.js"

/**
 * The priority-aware Effect scheduler.
 *
 * @since 0.1.0
 */
export * as PriorityScheduler from "./PriorityScheduler.js"

/**
 * A Promise facade for code outside Effect.
 *
 * @since 0.1.0
 */
export * as PromiseAgenda from "./PromiseAgenda.js"

/**
 * Tasklets, handles and outcomes.
 *
 * @since 0.1.0
 */
export * as Tasklet from "./Tasklet.js"

/**
 * Worker snapshots.
 *
 * @since 0.1.0
 */
export * as WorkerState from "./WorkerState.js"
