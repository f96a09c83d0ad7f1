/**
 * Child exits, shared by every platform in this package. Node reaps the
 * children it spawns (libuv's SIGCHLD handler calls waitpid), so no platform
 * can wait for them itself without stealing them from node:child_process;
 * a tracked child's 'exit' event is the one source of its status.
 *
 * @internal
 */
import type { Platform } from "@refpersys/core"
import type { ChildProcess } from "node:child_process"

const sinks = new Set<(status: Platform.ChildStatus) => void>()

/** Adds a receiver of every tracked child's exit; returns its removal. */
export const subscribe = (sink: (status: Platform.ChildStatus) => void): () => void => {
  sinks.add(sink)
  return () => sinks.delete(sink)
}

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
