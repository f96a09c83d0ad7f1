/**
 * @since 0.1.0
 */

/**
 * The multi-core agenda: thread tasklets on a pool of worker threads.
 *
 * @since 0.1.0
 */
export * as ThreadAgenda from "./ThreadAgenda.js"

/**
 * Typed errors of thread tasklets.
 *
 * @since 0.1.0
 */
export * as ThreadAgendaError from "./ThreadAgendaError.js"

/**
 * The worker thread a tasklet runs on: id, GC safe point, commands.
 *
 * @since 0.1.0
 */
export * as ThreadContext from "./ThreadContext.js"

/**
 * Batching, stealing and crash counters.
 *
 * @since 0.1.0
 */
export * as ThreadStats from "./ThreadStats.js"

/**
 * Task definitions: a module, an export and Schemas for the data that crosses threads.
 *
 * @since 0.1.0
 */
export * as ThreadTask from "./ThreadTask.js"
