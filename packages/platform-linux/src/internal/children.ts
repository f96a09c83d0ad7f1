/**
 * Child exits, shared by every platform in this package. Node reaps the
 * children it spawns (libuv's SIGCHLD handler calls waitpid), so no platform
 * can wait for them itself without stealing them from node:child_process;
 * a tracked child's 'exit' event is the one source of its status.
 *
 * @internal
 */
import type { Platform } from "@refpersys/core"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ChildProcess } from "node:child_process"
import * as Queues from "./queues.js"

const sinks = new Set<(status: Platform.ChildStatus) => void>()

/**
 * A platform's `childExits`: every tracked exit from now until the scope
 * closes, which ends the stream. One element per pull, as the platforms'
 * other streams.
 */
export const exits: Effect.Effect<Stream.Stream<Platform.ChildStatus>, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.map(Queues.make<Platform.ChildStatus>(), (queue) => {
      const sink = (status: Platform.ChildStatus) => void Queues.offer(queue, status)
      sinks.add(sink)
      return { queue, sink }
    }),
    ({ queue, sink }) =>
      Effect.sync(() => {
        sinks.delete(sink)
        Queues.closeUnsafe(queue)
      })
  ),
  ({ queue }) => Queues.stream(queue)
)

export const trackChild = (child: ChildProcess): void => {
  const report = (code: number | null, signal: NodeJS.Signals | null) => {
    // Without a pid the child never started: there is no exit to report
    // (its "error" event says why).
    if (child.pid === undefined) return
    const status: Platform.ChildStatus = { pid: child.pid, code, signal }
    for (const sink of sinks) sink(status)
  }
  if (child.exitCode !== null || child.signalCode !== null) report(child.exitCode, child.signalCode)
  else child.once("exit", report)
}
