/**
 * @since 0.1.0
 */

/**
 * A harness for deterministic agenda tests.
 *
 * @since 0.1.0
 */
export * as AgendaHarness from "./AgendaHarness.js"

/**
 * The conformance suite of the `Platform` contract, for any platform layer.
 *
 * @since 0.1.0
 */
export * as Conformance from "./Conformance.js"

/**
 * A deterministic `Platform` driven by hand and by `TestClock`.
 *
 * @since 0.1.0
 */
export * as TestPlatform from "./TestPlatform.js"

/**
 * `TestClock` helpers that wait for sleepers before moving the clock.
 *
 * @since 0.1.0
 */
export * as TestTime from "./TestTime.js"
