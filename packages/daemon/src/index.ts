/**
 * @since 0.1.0
 */

/**
 * The command lines of `rps-daemon` and `rps-ctl`.
 *
 * @since 0.1.0
 */
export * as Cli from "./Cli.js"

/**
 * The control client: calls a running daemon through its FIFOs.
 *
 * @since 0.1.0
 */
export * as Client from "./Client.js"

/**
 * The control channel: the FIFO pair, command bytes and JSON-RPC requests.
 *
 * @since 0.1.0
 */
export * as Control from "./Control.js"

/**
 * The demo daemon: loop, agenda, workload, timers and control channel.
 *
 * @since 0.1.0
 */
export * as Daemon from "./Daemon.js"

/**
 * Splits FIFO bytes into command bytes and JSON-RPC lines.
 *
 * @since 0.1.0
 */
export * as Framing from "./Framing.js"

/**
 * JSON-RPC 2.0 over lines: Schemas, error codes, dispatch.
 *
 * @since 0.1.0
 */
export * as JsonRpc from "./JsonRpc.js"

/**
 * What the daemon prints: JSON line Schemas, renderings, the writer.
 *
 * @since 0.1.0
 */
export * as Output from "./Output.js"

/**
 * The runtime directory: FIFOs and the pid-file lock.
 *
 * @since 0.1.0
 */
export * as RuntimeDir from "./RuntimeDir.js"

/**
 * The synthetic workload.
 *
 * @since 0.1.0
 */
export * as Workload from "./Workload.js"
