/**
 * What the runner and the scenarios measure about the process itself: open
 * fds, live Node handles, the heap, and conditions waited on with a deadline.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"

/** Entries of /proc/self/fd (the directory's own fd is open during the read, on every call alike). */
export const openFds = (): number => fs.readdirSync("/proc/self/fd").length

/** What each open fd points to, for messages about a leak. */
export const fdTargets = (): Array<string> =>
  fs.readdirSync("/proc/self/fd").map((fd) => {
    try {
      return `${fd}→${fs.readlinkSync(`/proc/self/fd/${fd}`)}`
    } catch {
      return `${fd}→(gone)`
    }
  })

/**
 * Live Node resources by type (`process.getActiveResourcesInfo`). Timers and
 * immediates come and go with any Effect program, so they are left out: a
 * leak of those shows up as a process that does not exit (see the child runs).
 */
export const activeResources = (): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const type of process.getActiveResourcesInfo()) {
    if (type === "Timeout" || type === "Immediate") continue
    counts.set(type, (counts.get(type) ?? 0) + 1)
  }
  return counts
}

/** Resources present now beyond `before`, by type. */
export const extraResources = (before: Map<string, number>): Map<string, number> => {
  const extra = new Map<string, number>()
  for (const [type, n] of activeResources()) {
    const more = n - (before.get(type) ?? 0)
    if (more > 0) extra.set(type, more)
  }
  return extra
}

export const total = (counts: Map<string, number>): number => {
  let sum = 0
  for (const n of counts.values()) sum += n
  return sum
}

/** Whether `global.gc` is exposed (`node --expose-gc`). */
export const gcAvailable = (): boolean => typeof (globalThis as { gc?: unknown }).gc === "function"

/** Heap in use after full collections (needs `--expose-gc`). */
export const settledHeap = (): number => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("settledHeap needs node --expose-gc")
  // Several passes: finalizers and weak references free more on later ones.
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

/**
 * Waits until `check` holds, looking again every millisecond, and gives up
 * after `timeout`. Returns whether it held, so a scenario can report what
 * never arrived instead of hanging.
 */
export const waitFor = (check: () => boolean, timeout: Duration.Input): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    // Effect 4 keeps negative durations: a negative timeout means "look once".
    const deadline = performance.now() + Math.max(0, Duration.toMillis(Duration.fromInputUnsafe(timeout)))
    const loop: Effect.Effect<boolean> = Effect.suspend(() => {
      if (check()) return Effect.succeed(true)
      if (performance.now() > deadline) return Effect.succeed(false)
      return Effect.andThen(Effect.sleep(Duration.millis(1)), loop)
    })
    return loop
  })

/** One turn of Node's event loop (after I/O callbacks), for code that must let the platform's callbacks run. */
export const nextTurn: Effect.Effect<void> = Effect.callback<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})
