/**
 * @since 0.1.0
 */

/**
 * Printing reports and the verdict of a run.
 *
 * @since 0.1.0
 */
export * as Report from "./Report.js"

/**
 * Scenarios, their reports and progress.
 *
 * @since 0.1.0
 */
export * as Scenario from "./Scenario.js"

/**
 * Every scenario of `npm run stress`.
 *
 * @since 0.1.0
 */
export * as Scenarios from "./scenarios/index.js"
