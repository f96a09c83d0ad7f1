import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { AgendaClosed, InvalidOptions } from "../src/AgendaError.js"
import type { AgendaStats, PriorityStats } from "../src/AgendaStats.js"
import * as PromiseAgenda from "../src/PromiseAgenda.js"
import { TaskletDropped } from "../src/Tasklet.js"

interface Gate<T = void> {
  readonly promise: Promise<T>
  readonly open: (value: T) => void
}

/** A promise the test resolves itself, to hold a task (or the test) at a known point. */
const gate = <T = void>(): Gate<T> => {
  let open!: (value: T) => void
  const promise = new Promise<T>((resolve) => {
    open = resolve
  })
  return { promise, open }
}

/** One turn of Node's event loop; used to poll a condition, never to wait a fixed time. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

const until = async (condition: () => boolean): Promise<void> => {
  while (!condition()) await nextTurn()
}

/** How a promise settled, captured without leaving a rejection unhandled. */
type Settled<T> = { readonly status: "fulfilled"; readonly value: T } | { readonly status: "rejected"; readonly reason: unknown }

const settle = <T>(promise: Promise<T>): Promise<Settled<T>> =>
  promise.then(
    (value) => ({ status: "fulfilled", value }),
    (reason) => ({ status: "rejected", reason })
  )

/**
 * Occupies every one of `workers` workers with a task that waits for `release`;
 * resolves once all of them have started, so later tasks must queue.
 */
const occupy = async (queue: PromiseAgenda.PromiseAgenda, workers = 1, label = "blocker") => {
  const release = gate()
  const started: Array<Promise<void>> = []
  const done: Array<Promise<string>> = []
  for (let i = 0; i < workers; i++) {
    const start = gate()
    started.push(start.promise)
    done.push(queue.add(async () => {
      start.open()
      await release.promise
      return `${label}${i}`
    }, { label: `${label}${i}` }))
  }
  await Promise.all(started)
  const all = Promise.all(done)
  // Tests that end with an exit never await the blockers; keep their rejection handled.
  all.catch(() => {})
  return { release: () => release.open(), done: all }
}

const levels = (stats: AgendaStats): ReadonlyArray<PriorityStats> => [
  stats.byPriority.High,
  stats.byPriority.Normal,
  stats.byPriority.Low
]

/** Checks the accounting invariant on every level and that the levels add up to the total. */
const expectConsistent = (stats: AgendaStats) => {
  expect(stats.total.balanced).toBe(true)
  for (const level of levels(stats)) expect(level.balanced).toBe(true)
  const fields = ["submitted", "started", "completed", "failed", "interrupted", "dropped", "queued", "running"] as const
  for (const field of fields) {
    expect(levels(stats).reduce((sum, level) => sum + level[field], 0), field).toBe(stats.total[field])
  }
}

/** Runs `body` with a fresh facade and always releases its workers, even when an assertion fails. */
const withQueue = async (
  options: Parameters<typeof PromiseAgenda.make>[0],
  body: (queue: PromiseAgenda.PromiseAgenda) => Promise<void>
) => {
  const queue = PromiseAgenda.make({ logFailures: false, ...options })
  try {
    await body(queue)
  } finally {
    await queue.close("exit")
  }
}

describe("PromiseAgenda", () => {
  describe("add", () => {
    it("resolves with the value of a synchronous task", () =>
      withQueue({ workers: 2 }, async (queue) => {
        expect(await queue.add(() => 42)).toBe(42)
        expect(await queue.add(() => undefined)).toBeUndefined()
        const object = { answer: 42 }
        expect(await queue.add(() => object)).toBe(object)
      }))

    it("resolves with the value of an async task and of a plain thenable", () =>
      withQueue({ workers: 2 }, async (queue) => {
        expect(await queue.add(async () => {
          await nextTurn()
          return "later"
        })).toBe("later")
        const thenable: PromiseLike<number> = {
          then: (onFulfilled) => Promise.resolve(7).then(onFulfilled)
        }
        expect(await queue.add(() => thenable)).toBe(7)
      }))

    it("runs tasks concurrently up to the number of workers", () =>
      withQueue({ workers: 3 }, async (queue) => {
        const blockers = await occupy(queue, 3)
        expect(queue.pending).toBe(3)
        blockers.release()
        expect(await blockers.done).toEqual(["blocker0", "blocker1", "blocker2"])
      }))

    it("rejects with the error a task throws synchronously", () =>
      withQueue({}, async (queue) => {
        const error = new Error("sync boom")
        await expect(queue.add(() => {
          throw error
        })).rejects.toBe(error)
      }))

    it("rejects with the reason of a task's rejected promise, Error or not", () =>
      withQueue({}, async (queue) => {
        const error = new TypeError("async boom")
        await expect(queue.add(() => Promise.reject(error))).rejects.toBe(error)
        await expect(queue.add(async () => {
          await nextTurn()
          throw "a plain string"
        })).rejects.toBe("a plain string")
        // The worker survives failures.
        expect(await queue.add(() => "still working")).toBe("still working")
        const stats = queue.stats()
        expect(stats.total.failed).toBe(2)
        expect(stats.total.completed).toBe(1)
      }))

    it("rejects an unknown priority with InvalidOptions, without running the task", () =>
      withQueue({}, async (queue) => {
        let ran = false
        const result = queue.add(() => {
          ran = true
        }, { priority: "Urgent" as unknown as "High" })
        await expect(result).rejects.toBeInstanceOf(InvalidOptions)
        await expect(result).rejects.toMatchObject({ option: "priority", value: "Urgent" })
        expect(ran).toBe(false)
        expect(queue.stats().total.submitted).toBe(0)
      }))

    it("rejects a non-finite priority, a signal that is not an AbortSignal and a bad label, without running the task", () =>
      withQueue({}, async (queue) => {
        let ran = 0
        const cases: Array<[string, unknown, PromiseAgenda.AddOptions]> = [
          ["priority", NaN, { priority: NaN }],
          ["priority", Infinity, { priority: Infinity }],
          ["priority", -Infinity, { priority: -Infinity }],
          ["signal", "no", { signal: "no" as unknown as AbortSignal }],
          ["label", 7, { label: 7 as unknown as string }],
          ["options", null, null as unknown as PromiseAgenda.AddOptions]
        ]
        for (const [option, value, options] of cases) {
          const result = queue.add(() => void ran++, options)
          await expect(result).rejects.toBeInstanceOf(InvalidOptions)
          await expect(result).rejects.toMatchObject({ option, value })
        }
        expect(ran).toBe(0)
        expect(queue.stats().total.submitted).toBe(0)
      }))

    it("make throws InvalidOptions for bad agenda options, as Agenda.make fails with it", () => {
      for (const [option, options] of [
        ["options", null],
        ["capacity", { capacity: null }],
        ["scheduler", { scheduler: {} }],
        ["closeTimeout", { closeTimeout: "-5 seconds" }]
      ] as const) {
        let thrown: unknown
        try {
          PromiseAgenda.make(options as unknown as Parameters<typeof PromiseAgenda.make>[0])
        } catch (error) {
          thrown = error
        }
        expect(thrown).toBeInstanceOf(InvalidOptions)
        expect(thrown).toMatchObject({ option })
      }
    })

    it("shows the label of a running task in the worker snapshots", () =>
      withQueue({ workers: 1 }, async (queue) => {
        const blockers = await occupy(queue, 1, "holding the only worker")
        const [worker] = queue.stats().workers
        expect(worker.state).toBe("Run")
        expect(worker.current?.label).toBe("holding the only worker0")
        expect(worker.current?.priority).toBe("Normal")
        blockers.release()
        await blockers.done
      }))
  })

  describe("priorities", () => {
    it("takes High, then Normal, then Low, FIFO within a level, for names and p-queue numbers", () =>
      // Strict priority, so the expected order does not depend on the aging bound.
      withQueue({ workers: 1, aging: false }, async (queue) => {
        const blockers = await occupy(queue)
        const order: Array<string> = []
        const submissions: Array<[string, PromiseAgenda.AddOptions]> = [
          ["normal-default", {}],
          ["low-name", { priority: "Low" }],
          ["high-name", { priority: "High" }],
          ["low-number", { priority: -1 }],
          ["normal-number", { priority: 0 }],
          ["high-number", { priority: 10 }],
          ["low-fraction", { priority: -0.25 }],
          ["normal-name", { priority: "Normal" }],
          ["high-fraction", { priority: 0.5 }]
        ]
        const results = submissions.map(([name, options]) => queue.add(() => order.push(name), options))
        expect(queue.size).toBe(submissions.length)
        const stats = queue.stats()
        expect(stats.byPriority.High.queued).toBe(3)
        expect(stats.byPriority.Normal.queued).toBe(3)
        expect(stats.byPriority.Low.queued).toBe(3)
        blockers.release()
        await Promise.all(results)
        expect(order).toEqual([
          "high-name",
          "high-number",
          "high-fraction",
          "normal-default",
          "normal-number",
          "normal-name",
          "low-name",
          "low-number",
          "low-fraction"
        ])
      }))

    it("with aging, a waiting Low task gets its turn after K High picks", () =>
      withQueue({ workers: 1, aging: 2 }, async (queue) => {
        const blockers = await occupy(queue)
        const order: Array<string> = []
        const results = [queue.add(() => order.push("low"), { priority: "Low" })]
        for (let i = 0; i < 5; i++) results.push(queue.add(() => order.push(`high${i}`), { priority: 1 }))
        blockers.release()
        await Promise.all(results)
        // Two High picks while Low waits, then Low's turn.
        expect(order).toEqual(["high0", "high1", "low", "high2", "high3", "high4"])
      }))
  })

  describe("cancellation with an AbortSignal", () => {
    it("removes a queued task: it never runs and the promise rejects with the signal's reason", () =>
      withQueue({ workers: 1 }, async (queue) => {
        const blockers = await occupy(queue)
        const controller = new AbortController()
        let ran = false
        const result = settle(queue.add(() => {
          ran = true
        }, { signal: controller.signal, priority: "High" }))
        expect(queue.size).toBe(1)
        const reason = new Error("no longer needed")
        controller.abort(reason)
        expect(await result).toEqual({ status: "rejected", reason })
        expect(queue.size).toBe(0)
        blockers.release()
        await blockers.done
        await queue.onIdle()
        expect(ran).toBe(false)
        const stats = queue.stats()
        expect(stats.byPriority.High.interrupted).toBe(1)
        expect(stats.byPriority.High.started).toBe(0)
        expectConsistent(stats)
      }))

    it("rejects with the default AbortError when aborted without a reason", () =>
      withQueue({ workers: 1 }, async (queue) => {
        const blockers = await occupy(queue)
        const controller = new AbortController()
        const result = queue.add(() => "never", { signal: controller.signal })
        controller.abort()
        await expect(result).rejects.toBe(controller.signal.reason)
        await expect(result).rejects.toMatchObject({ name: "AbortError" })
        blockers.release()
        await blockers.done
      }))

    it("interrupts a running task: its own signal fires and the promise rejects with the reason", () =>
      withQueue({ workers: 1 }, async (queue) => {
        const controller = new AbortController()
        const started = gate<AbortSignal>()
        const innerAborted = gate()
        const result = settle(queue.add(({ signal }) => {
          signal.addEventListener("abort", () => innerAborted.open(), { once: true })
          started.open(signal)
          // Never settles by itself: only the abort ends it.
          return new Promise<never>(() => {})
        }, { signal: controller.signal, label: "endless" }))
        const inner = await started.promise
        expect(inner.aborted).toBe(false)
        expect(queue.pending).toBe(1)
        const reason = new Error("stop it")
        controller.abort(reason)
        expect(await result).toEqual({ status: "rejected", reason })
        await innerAborted.promise
        expect(inner.aborted).toBe(true)
        // The worker was replaced and serves the next task.
        expect(await queue.add(() => "next")).toBe("next")
        const stats = queue.stats()
        expect(stats.total.interrupted).toBe(1)
        expect(stats.total.completed).toBe(1)
        expect(stats.workers[0].respawns).toBe(1)
        expectConsistent(stats)
      }))

    it("rejects at once, without submitting, when the signal is already aborted", () =>
      withQueue({ workers: 1 }, async (queue) => {
        const blockers = await occupy(queue)
        const reason = new Error("aborted before add")
        let ran = false
        // The only worker is busy, so an immediate rejection cannot come from a run.
        await expect(queue.add(() => {
          ran = true
        }, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
        expect(queue.size).toBe(0)
        expect(queue.stats().total.submitted).toBe(1)
        blockers.release()
        await blockers.done
        expect(ran).toBe(false)
      }))

    it("removes a task still waiting for room: it never runs and the promise rejects with the reason", () =>
      withQueue({ workers: 1, capacity: 1 }, async (queue) => {
        const blockers = await occupy(queue)
        const first = queue.add(() => "first")
        const controller = new AbortController()
        let ran = false
        const waiting = settle(queue.add(() => {
          ran = true
        }, { signal: controller.signal }))
        await until(() => queue.stats().total.blockedSubmitters === 1)
        const reason = new Error("gave up waiting")
        controller.abort(reason)
        blockers.release()
        expect(await first).toBe("first")
        expect(await waiting).toEqual({ status: "rejected", reason })
        await queue.onIdle()
        expect(ran).toBe(false)
        expectConsistent(queue.stats())
      }))

    it("an abort after the task completed changes nothing", () =>
      withQueue({}, async (queue) => {
        const controller = new AbortController()
        const result = queue.add(() => "done", { signal: controller.signal })
        expect(await result).toBe("done")
        controller.abort(new Error("too late"))
        expect(await result).toBe("done")
        expect(queue.stats().total.interrupted).toBe(0)
      }))
  })

  describe("onIdle, size and pending", () => {
    it("onIdle resolves at once when nothing was added", async () => {
      const queue = PromiseAgenda.make()
      try {
        await queue.onIdle()
        expect(queue.size).toBe(0)
        expect(queue.pending).toBe(0)
      } finally {
        await queue.close()
      }
    })

    it("onIdle resolves only once every queued and running task has ended", () =>
      withQueue({ workers: 2 }, async (queue) => {
        let done = 0
        const tasks = 10
        for (let i = 0; i < tasks; i++) {
          void queue.add(async () => {
            // Several turns of the event loop each, so the tasks overlap the wait.
            for (let turn = 0; turn < 3; turn++) await nextTurn()
            done++
          })
        }
        const seen = await queue.onIdle().then(() => ({ done, size: queue.size, pending: queue.pending }))
        expect(seen).toEqual({ done: tasks, size: 0, pending: 0 })
      }))

    it("size counts queued tasks and pending counts running ones", () =>
      withQueue({ workers: 2 }, async (queue) => {
        expect([queue.size, queue.pending]).toEqual([0, 0])
        const blockers = await occupy(queue, 2)
        expect([queue.size, queue.pending]).toEqual([0, 2])
        const queued = [queue.add(() => 1), queue.add(() => 2, { priority: "Low" }), queue.add(() => 3, { priority: 1 })]
        expect([queue.size, queue.pending]).toEqual([3, 2])
        blockers.release()
        expect(await Promise.all(queued)).toEqual([1, 2, 3])
        await queue.onIdle()
        expect([queue.size, queue.pending]).toEqual([0, 0])
      }))
  })

  describe("close", () => {
    it("close() quits: refuses new tasks at once, drains queued and running ones, then reports", async () => {
      const queue = PromiseAgenda.make({ workers: 1 })
      const blockers = await occupy(queue)
      const ran: Array<number> = []
      const queued = [1, 2, 3].map((n) => queue.add(() => (ran.push(n), n * 10)))
      const closing = queue.close()
      const refused = queue.add(() => "too late")
      await expect(refused).rejects.toBeInstanceOf(AgendaClosed)
      await expect(refused).rejects.toMatchObject({ state: "quitting" })
      blockers.release()
      const report = await closing
      expect(await blockers.done).toEqual(["blocker0"])
      expect(await Promise.all(queued)).toEqual([10, 20, 30])
      expect(ran).toEqual([1, 2, 3])
      expect(report.mode).toBe("quit")
      expect(report.timedOut).toBe(false)
      expect(report.dropped).toBe(0)
      expect(report.interrupted).toBe(0)
      expect(report.stats.state).toBe("stopped")
      expect(report.stats.total.completed).toBe(4)
      expectConsistent(report.stats)
    })

    it("close(\"exit\") drops queued tasks, interrupts running ones and reports how many", async () => {
      const queue = PromiseAgenda.make({ workers: 1 })
      const started = gate<AbortSignal>()
      const running = settle(queue.add(({ signal }) => {
        started.open(signal)
        return new Promise<never>(() => {})
      }, { label: "endless" }))
      const innerSignal = await started.promise
      let ran = 0
      const queued = [0, 1, 2].map(() =>
        settle(queue.add(() => {
          ran++
        }, { priority: "Low" }))
      )
      const report = await queue.close("exit")
      expect(report.mode).toBe("exit")
      expect(report.timedOut).toBe(false)
      expect(report.dropped).toBe(3)
      expect(report.interrupted).toBe(1)
      expect(report.stats.byPriority.Low.dropped).toBe(3)
      expect(report.stats.total.interrupted).toBe(1)
      expectConsistent(report.stats)
      for (const outcome of await Promise.all(queued)) {
        expect(outcome.status).toBe("rejected")
        if (outcome.status === "rejected") expect(outcome.reason).toBeInstanceOf(TaskletDropped)
      }
      const interrupted = await running
      expect(interrupted.status).toBe("rejected")
      if (interrupted.status === "rejected") expect(String(interrupted.reason)).toMatch(/endless.*interrupted/)
      expect(innerSignal.aborted).toBe(true)
      expect(ran).toBe(0)
    })

    it("add after close rejects with AgendaClosed; closing again returns the same report", async () => {
      const queue = PromiseAgenda.make()
      expect(await queue.add(() => "before")).toBe("before")
      const report = await queue.close()
      let ran = false
      const result = queue.add(() => {
        ran = true
      })
      await expect(result).rejects.toBeInstanceOf(AgendaClosed)
      await expect(result).rejects.toMatchObject({ state: "stopped" })
      expect(ran).toBe(false)
      const again = await queue.close("exit")
      expect(again.mode).toBe("quit")
      expect(again.stats.total.completed).toBe(report.stats.total.completed)
      await queue.onIdle()
    })
  })

  describe("backpressure", () => {
    it("a full queue makes add wait for room instead of failing", () =>
      withQueue({ workers: 1, capacity: 1 }, async (queue) => {
        const blockers = await occupy(queue)
        const order: Array<string> = []
        const first = queue.add(() => (order.push("first"), "first"))
        expect(queue.size).toBe(1)
        let secondSettled = false
        const second = queue.add(() => (order.push("second"), "second"))
        void second.then(() => (secondSettled = true), () => (secondSettled = true))
        await until(() => queue.stats().byPriority.Normal.blockedSubmitters === 1)
        // Still waiting for room: neither run nor rejected, and not counted as queued.
        expect(secondSettled).toBe(false)
        expect(queue.size).toBe(1)
        expect(queue.stats().total.submitted).toBe(2)
        blockers.release()
        expect(await Promise.all([first, second])).toEqual(["first", "second"])
        expect(order).toEqual(["first", "second"])
        const stats = queue.stats()
        expect(stats.total.submitted).toBe(3)
        expect(stats.total.completed).toBe(3)
        expect(stats.total.blockedSubmitters).toBe(0)
        expectConsistent(stats)
      }))

    it("capacity is per level: a full Normal queue does not hold back a High task", () =>
      withQueue({ workers: 1, capacity: 1 }, async (queue) => {
        const blockers = await occupy(queue)
        const normal = queue.add(() => "normal")
        const high = queue.add(() => "high", { priority: "High" })
        expect(queue.size).toBe(2)
        expect(queue.stats().total.blockedSubmitters).toBe(0)
        blockers.release()
        expect(await Promise.all([normal, high])).toEqual(["normal", "high"])
      }))

    it("a task waiting for room rejects with AgendaClosed when the agenda exits", () =>
      withQueue({ workers: 1, capacity: 1 }, async (queue) => {
        await occupy(queue)
        const queued = settle(queue.add(() => "queued"))
        let ran = false
        const waiting = settle(queue.add(() => {
          ran = true
        }))
        await until(() => queue.stats().total.blockedSubmitters === 1)
        const report = await queue.close("exit")
        expect(report.dropped).toBe(1)
        const outcome = await waiting
        expect(outcome.status).toBe("rejected")
        if (outcome.status === "rejected") expect(outcome.reason).toBeInstanceOf(AgendaClosed)
        expect((await queued).status).toBe("rejected")
        expect(ran).toBe(false)
      }))
  })

  describe("stats", () => {
    it("add up across outcomes and levels, while running and after close", async () => {
      const queue = PromiseAgenda.make({ workers: 1, logFailures: false })
      const blockers = await occupy(queue)
      const controller = new AbortController()
      const results = [
        settle(queue.add(() => "high", { priority: "High" })),
        settle(queue.add(() => Promise.reject(new Error("failed")), { priority: "High" })),
        settle(queue.add(() => "low", { priority: -3 })),
        settle(queue.add(() => "aborted", { priority: "Low", signal: controller.signal }))
      ]
      controller.abort()
      const during = queue.stats()
      expect(during.total.running).toBe(1)
      expect(during.total.queued).toBe(3)
      expect(during.total.interrupted).toBe(1)
      expect(during.total.submitted).toBe(5)
      expectConsistent(during)
      blockers.release()
      await Promise.all(results)
      await queue.onIdle()
      const after = queue.stats()
      expect(after.byPriority.High).toMatchObject({ submitted: 2, started: 2, completed: 1, failed: 1, queued: 0 })
      expect(after.byPriority.Normal).toMatchObject({ submitted: 1, started: 1, completed: 1 })
      expect(after.byPriority.Low).toMatchObject({ submitted: 2, started: 1, completed: 1, interrupted: 1 })
      expect(after.total).toMatchObject({ submitted: 5, started: 4, completed: 3, failed: 1, interrupted: 1, dropped: 0 })
      expect(after.total.ended).toBe(5)
      expectConsistent(after)
      const last = settle(queue.add(() => "never runs"))
      const report = await queue.close("exit")
      // The exit empties the queues synchronously, before a worker can take the task.
      expect(report.dropped).toBe(1)
      expect((await last).status).toBe("rejected")
      expect(report.stats.total.dropped).toBe(1)
      expect(report.stats.total.submitted).toBe(6)
      expectConsistent(report.stats)
    })
  })
})
