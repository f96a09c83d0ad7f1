/**
 * @since 0.1.0
 */

/**
 * `TestClock` helpers that wait for sleepers before moving the clock.
 *
 * @since 0.1.0
 */
export * as TestTime from "./TestTime.js"

/**
 * A harness for deterministic agenda tests.
 *
 * @since 0.1.0
 */
export * as AgendaHarness from "./AgendaHarness.js"
