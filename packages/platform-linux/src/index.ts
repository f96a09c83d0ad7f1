/**
 * @since 0.1.0
 */

/**
 * Picks the native Linux layer when its addon loaded, else the portable one.
 *
 * @since 0.1.0
 */
export * as AutoPlatform from "./AutoPlatform.js"

/**
 * The native Linux platform: signalfd, timerfd, a pipe2 self-pipe and fd
 * readiness through a small N-API addon.
 *
 * @since 0.1.0
 */
export * as LinuxPlatform from "./LinuxPlatform.js"

/**
 * The portable Node platform: the `Platform` contract on plain Node APIs.
 *
 * @since 0.1.0
 */
export * as NodePlatform from "./NodePlatform.js"
