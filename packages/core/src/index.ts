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
 * The event loop: one event queue, handlers with explanations, default bindings.
 *
 * @since 0.1.0
 */
export * as EventLoop from "./EventLoop.js"

/**
 * Typed errors of the event loop.
 *
 * @since 0.1.0
 */
export * as EventLoopError from "./EventLoopError.js"

/**
 * The swappable platform layer: signals, timer, fd readiness, commands.
 *
 * @since 0.1.0
 */
export * as Platform from "./Platform.js"

/**
 * Schemas and decoders shared by every entry point that takes option sets.
 *
 * @since 0.1.0
 */
export * as Options from "./Options.js"

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
 * One-shot and periodic timeouts on the platform timer, fired in deadline order.
 *
 * @since 0.1.0
 */
export * as Timeouts from "./Timeouts.js"

/**
 * Worker snapshots.
 *
 * @since 0.1.0
 */
export * as WorkerState from "./WorkerState.js"
