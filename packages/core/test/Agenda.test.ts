import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { AgendaHarness, TestTime } from "@refpersys/testkit"
import { Cause, Deferred, Effect, Exit, Fiber, Logger, Metric, Option, References, Scheduler } from "effect"
import { TestClock } from "effect/testing"
import * as PriorityScheduler from "../src/PriorityScheduler.js"
import * as Agenda from "../src/Agenda.js"
import { AgendaClosed, AgendaFull, InvalidOptions } from "../src/AgendaError.js"
import type { Priority } from "../src/Priority.js"
import { metricHooksInUse } from "../src/internal/agenda.js"
import { TaskletDropped, TaskletObsolete } from "../src/Tasklet.js"

const eventually = TestTime.eventually

describe("Agenda", () => {
  describe("running tasklets", () => {
    it.effect("runs a tasklet and returns its result with metadata", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 2 })
        const handle = yield* agenda.submit(Effect.succeed(42), { label: "answer", priority: "High" })
        expect(yield* handle.join).toBe(42)
        expect(handle.outcome).toBe("Completed")
        expect(handle.status).toBe("Done")
        expect(handle.label).toBe("answer")
        expect(handle.priority).toBe("High")
        expect(handle.attempts).toBe(1)
        expect(handle.startedAt).toBeGreaterThanOrEqual(handle.createdAt)
        expect(handle.info()).toMatchObject({ id: handle.id, label: "answer", outcome: "Completed" })
        const stats = yield* agenda.stats
        expect(stats.byPriority.High.completed).toBe(1)
        expect(stats.total.balanced).toBe(true)
      }))

    it.effect("gives each tasklet a distinct id and a default label", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make()
        const a = yield* agenda.submit(Effect.void)
        const b = yield* agenda.submit(Effect.void)
        expect(a.id).not.toBe(b.id)
        expect(a.label).toBe(`tasklet#${a.id}`)
        expect(a.priority).toBe("Normal")
      }))

    it.effect("accessors use the Agenda from context and pass services to the tasklet", () =>
      Effect.gen(function*() {
        const answer = yield* Agenda.run(Effect.succeed("via layer"), { priority: "Low" })
        expect(answer).toBe("via layer")
        const h = yield* Agenda.trySubmit(Effect.succeed(1))
        expect(yield* h.join).toBe(1)
        const handle = yield* Agenda.submit(Effect.succeed(2))
        expect(yield* handle.await).toEqual(Exit.succeed(2))
        yield* Agenda.whenIdle
        const stats = yield* Agenda.stats
        expect(stats.total.completed).toBe(3)
        expect((yield* Agenda.workers).length).toBe(3)
      }).pipe(Effect.provide(Agenda.layer({ workers: 3 }))))

    it.effect("poll shows nothing until the tasklet is done", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1 })
        const hold = yield* h.holdWorkers
        const handle = yield* h.agenda.submit(Effect.succeed("x"))
        expect(yield* handle.poll).toEqual(Option.none())
        expect(handle.status).toBe("Queued")
        yield* hold.release
        yield* handle.await
        expect(yield* handle.poll).toEqual(Option.some(Exit.succeed("x")))
      }))

    it.effect("worker snapshots show the running tasklet", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 2 })
        const gate = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        yield* agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(gate)), {
          label: "long job",
          priority: "Low"
        })
        yield* Deferred.await(started)
        const workers = yield* agenda.workers
        const busy = workers.filter((w) => w.state === "Run")
        expect(busy).toHaveLength(1)
        expect(busy[0].current).toMatchObject({ label: "long job", priority: "Low" })
        expect(workers.filter((w) => w.state === "Idle")).toHaveLength(1)
        yield* Deferred.succeed(gate, undefined)
        yield* agenda.whenIdle
        const after = yield* agenda.workers
        expect(after.reduce((n, w) => n + w.completed, 0)).toBe(1)
      }))
  })

  describe("priority order", () => {
    it.effect("takes High, then Normal, then Low, FIFO within a level (strict mode)", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1, aging: false })
        const hold = yield* h.holdWorkers
        const plan: Array<[string, Priority]> = [
          ["L1", "Low"],
          ["N1", "Normal"],
          ["H1", "High"],
          ["L2", "Low"],
          ["N2", "Normal"],
          ["H2", "High"]
        ]
        for (const [label, priority] of plan) yield* h.agenda.submit(h.record(label), { priority })
        yield* hold.release
        yield* h.agenda.whenIdle
        expect(yield* h.log).toEqual(["H1", "H2", "N1", "N2", "L1", "L2"])
      }))

    it.effect("aging serves Normal and Low while High never empties", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1, aging: 2 })
        const hold = yield* h.holdWorkers
        for (let i = 0; i < 8; i++) yield* h.agenda.submit(h.record(`H${i}`), { priority: "High" })
        for (let i = 0; i < 2; i++) yield* h.agenda.submit(h.record(`N${i}`), { priority: "Normal" })
        for (let i = 0; i < 2; i++) yield* h.agenda.submit(h.record(`L${i}`), { priority: "Low" })
        yield* hold.release
        yield* h.agenda.whenIdle
        // Low is forced after K=2 picks of higher levels while it waits (Normal picks count too);
        // Normal is forced after K=2 High picks while it waits.
        expect(yield* h.log).toEqual(["H0", "H1", "L0", "N0", "H2", "L1", "H3", "N1", "H4", "H5", "H6", "H7"])
        const stats = yield* h.agenda.stats
        expect(stats.agingPicks).toBe(4)
      }))

    it.effect("a worker runs its tasklet at the tasklet's scheduling priority", () =>
      Effect.gen(function*() {
        const scheduler = PriorityScheduler.make()
        const agenda = yield* Agenda.make({ workers: 1, scheduler })
        const seen: Array<Scheduler.Scheduler> = []
        const probe = Effect.withFiber<void>((fiber) => {
          seen.push(fiber.getRef(Scheduler.Scheduler))
          return Effect.void
        })
        for (const priority of ["Low", "High", "Normal"] as const) yield* agenda.run(probe, { priority })
        expect(seen).toEqual([scheduler.scheduler("Low"), scheduler.scheduler("High"), scheduler.scheduler("Normal")])
        expect(seen[0]).toBe(scheduler.scheduler("Low"))
        expect(seen[1]).toBe(scheduler.scheduler("High"))
        expect(seen[2]).toBe(scheduler.scheduler("Normal"))
      }))
  })

  describe("capacity and backpressure", () => {
    it.effect("trySubmit fails with AgendaFull; submit waits for room, FIFO", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1, capacity: { Low: 2 } })
        const hold = yield* h.holdWorkers
        yield* h.agenda.submit(h.record("a"), { priority: "Low" })
        yield* h.agenda.submit(h.record("b"), { priority: "Low" })
        const full = yield* Effect.flip(h.agenda.trySubmit(h.record("x"), { priority: "Low" }))
        expect(full).toBeInstanceOf(AgendaFull)
        expect(full.message).toContain("Low queue is full (2 tasklets)")
        // Other levels are not affected.
        yield* h.agenda.trySubmit(h.record("n"), { priority: "Normal" })
        const c = yield* Effect.forkChild(h.agenda.submit(h.record("c"), { priority: "Low" }))
        const d = yield* Effect.forkChild(h.agenda.submit(h.record("d"), { priority: "Low" }))
        yield* eventually(Effect.map(h.agenda.stats, (s) => s.byPriority.Low.blockedSubmitters === 2), "2 blocked")
        expect(c.pollUnsafe()).toBeUndefined()
        // While submitters wait, trySubmit must not jump the line.
        expect(yield* Effect.flip(h.agenda.trySubmit(Effect.void, { priority: "Low" }))).toBeInstanceOf(AgendaFull)
        yield* hold.release
        yield* Fiber.join(c)
        yield* Fiber.join(d)
        yield* h.agenda.whenIdle
        expect(yield* h.log).toEqual(["n", "a", "b", "c", "d"])
        yield* h.balanced
      }))

    it.effect("an interrupted blocked submitter never submits", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1, capacity: 1 })
        const hold = yield* h.holdWorkers
        yield* h.agenda.submit(h.record("a"))
        const blocked = yield* Effect.forkChild(h.agenda.submit(h.record("never")))
        yield* eventually(Effect.map(h.agenda.stats, (s) => s.total.blockedSubmitters === 1), "blocked")
        yield* Fiber.interrupt(blocked)
        yield* hold.release
        yield* h.agenda.whenIdle
        expect(yield* h.log).toEqual(["a"])
        const stats = yield* h.balanced
        expect(stats.total.blockedSubmitters).toBe(0)
      }))

    it.effect("unsafeSubmit returns the typed error as a value", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1, capacity: 1 })
        const hold = yield* h.holdWorkers
        const first = h.agenda.unsafeSubmit(Effect.succeed(1))
        expect(first).not.toBeInstanceOf(AgendaFull)
        expect(h.agenda.unsafeSubmit(Effect.succeed(2))).toBeInstanceOf(AgendaFull)
        expect(h.agenda.unsafeLoad()).toEqual({ queued: 1, running: 1 })
        expect(h.agenda.unsafeSubmit(Effect.void, { priority: "Bogus" as Priority })).toBeInstanceOf(InvalidOptions)
        yield* hold.release
      }))
  })

  describe("typed errors", () => {
    const bad: Array<[string, Agenda.Options]> = [
      ["workers", { workers: 0 }],
      ["workers", { workers: 1.5 }],
      ["capacity", { capacity: -1 }],
      ["capacity.High", { capacity: { High: 0 } }],
      ["aging", { aging: 0 }],
      ["name", { name: "" }],
      ["onClose", { onClose: "later" as "quit" }],
      ["closeTimeout", { closeTimeout: "soonish" as "1 second" }],
      ["closeTimeout", { closeTimeout: "-5 seconds" as "5 seconds" }],
      ["closeTimeout", { closeTimeout: null as unknown as number }],
      ["gcTimeout", { gcTimeout: -1 }],
      ["capacity", { capacity: null as unknown as number }],
      ["capacity.Urgent", { capacity: { Urgent: 3 } as unknown as number }],
      ["scheduler", { scheduler: {} as Scheduler.Scheduler }],
      ["options", null as unknown as Agenda.Options]
    ]
    for (const [option, options] of bad) {
      it.effect(`rejects invalid option ${option}: ${JSON.stringify(options)}`, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(Agenda.make(options))
          expect(error).toBeInstanceOf(InvalidOptions)
          expect(error.option).toBe(option)
          expect(error.message).toMatch(/^invalid option .+ expected /)
        }))
    }

    it.effect("rejects a bad priority, label, deadline or effect at submission", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make()
        const cases: Array<[string, Effect.Effect<unknown, unknown>]> = [
          ["priority", agenda.submit(Effect.void, { priority: "Urgent" as Priority })],
          ["label", agenda.submit(Effect.void, { label: 7 as unknown as string })],
          ["obsoleteAfter", agenda.submit(Effect.void, { obsoleteAfter: -5 })],
          ["obsoleteAfter", agenda.submit(Effect.void, { obsoleteAfter: "-5 seconds" as "5 seconds" })],
          ["obsoleteAfter", agenda.submit(Effect.void, { obsoleteAfter: [-1, 0] })],
          ["obsoleteAfter", agenda.submit(Effect.void, { obsoleteAfter: -10n })],
          ["obsoleteAfter", agenda.trySubmit(Effect.void, { obsoleteAfter: NaN })],
          ["options", agenda.submit(Effect.void, null as unknown as {})],
          ["effect", agenda.submit((() => 1) as unknown as Effect.Effect<number>)]
        ]
        for (const [option, submit] of cases) {
          const error = yield* Effect.flip(submit)
          expect(error).toBeInstanceOf(InvalidOptions)
          expect((error as InvalidOptions).option).toBe(option)
        }
        const stats = yield* agenda.stats
        expect(stats.total.submitted).toBe(0)
      }))

    it.effect("quit rejects a bad timeout with InvalidOptions and keeps running", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const bad: ReadonlyArray<unknown> = [-1, "3000", null, "-5 seconds", [-1, 0], -10n, NaN]
        for (const timeout of bad) {
          const error = yield* Effect.flip(agenda.quit({ timeout: timeout as number }))
          expect(error).toBeInstanceOf(InvalidOptions)
          expect(error.option).toBe("timeout")
          expect(error.message).toContain("non-negative Duration")
        }
        expect((yield* agenda.stats).state).toBe("running")
        expect(yield* agenda.run(Effect.succeed("still running"))).toBe("still running")
        const report = yield* agenda.quit({ timeout: "infinity" })
        expect(report.mode).toBe("quit")
      }))

    it.effect("accepts an infinite closeTimeout and obsoleteAfter", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ closeTimeout: "infinity" })
        const handle = yield* agenda.submit(Effect.succeed(1), { obsoleteAfter: "infinity" })
        expect(yield* handle.join).toBe(1)
        expect(handle.obsoleteAt).toBeUndefined()
      }))

    it.effect("fails with AgendaClosed while quitting and once stopped", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const gate = yield* Deferred.make<void>()
        const started = yield* Deferred.make<void>()
        yield* agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(gate)))
        yield* Deferred.await(started)
        const quitting = yield* Effect.forkChild(agenda.quit())
        yield* eventually(Effect.map(agenda.stats, (s) => s.state === "quitting"), "quitting")
        const e1 = yield* Effect.flip(agenda.submit(Effect.void))
        expect(e1).toBeInstanceOf(AgendaClosed)
        expect((e1 as AgendaClosed).state).toBe("quitting")
        expect(e1.message).toContain("accepts no new tasklets")
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(quitting)
        const e2 = yield* Effect.flip(agenda.trySubmit(Effect.void))
        expect(e2).toBeInstanceOf(AgendaClosed)
        expect((e2 as AgendaClosed).state).toBe("stopped")
        expect(yield* Effect.flip(agenda.requestGc(Effect.void))).toBeInstanceOf(AgendaClosed)
      }))

    it.effect("quit rejects submitters blocked on a full queue", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1, capacity: 1 })
        const hold = yield* h.holdWorkers
        yield* h.agenda.submit(Effect.void)
        const blocked = yield* Effect.forkChild(h.agenda.submit(Effect.void))
        yield* eventually(Effect.map(h.agenda.stats, (s) => s.total.blockedSubmitters === 1), "blocked")
        const quitting = yield* Effect.forkChild(h.agenda.quit())
        const exit = yield* Fiber.await(blocked)
        expect(Exit.isFailure(exit) && Cause.findErrorOption(exit.cause)).toEqual(
          Option.some(new AgendaClosed({ state: "quitting" }))
        )
        yield* hold.release
        const report = yield* Fiber.join(quitting)
        expect(report.stats.total.completed).toBe(2)
      }))
  })

  describe("obsolescence", () => {
    it.effect("drops a tasklet not started by its deadline, runs one that is", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1 })
        const hold = yield* h.holdWorkers
        const stale = yield* h.agenda.submit(h.record("stale"), { obsoleteAfter: "1 second", label: "stale" })
        const fresh = yield* h.agenda.submit(h.record("fresh"), { obsoleteAfter: "1 minute" })
        expect(stale.obsoleteAt).toBe(stale.createdAt + 1000)
        yield* TestClock.adjust("2 seconds")
        yield* hold.release
        const exit = yield* stale.await
        expect(exit).toEqual(Exit.fail(new TaskletObsolete({ id: stale.id, label: "stale", deadline: stale.obsoleteAt! })))
        expect(stale.outcome).toBe("Obsolete")
        expect(stale.attempts).toBe(0)
        expect(yield* fresh.await).toEqual(Exit.void)
        expect(yield* h.log).toEqual(["fresh"])
        const stats = yield* h.balanced
        expect(stats.byPriority.Normal.obsolete).toBe(1)
        const error = Cause.findErrorOption((exit as Exit.Failure<unknown, TaskletObsolete>).cause)
        expect(Option.getOrThrow(error).message).toContain("not started by its deadline")
      }))
  })

  describe("cancellation", () => {
    it.effect("interrupting a queued tasklet removes it; it never runs", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1 })
        const hold = yield* h.holdWorkers
        const doomed = yield* h.agenda.submit(h.record("doomed"))
        const kept = yield* h.agenda.submit(h.record("kept"))
        const exit = yield* doomed.interrupt
        expect(Exit.hasInterrupts(exit)).toBe(true)
        expect(doomed.outcome).toBe("Interrupted")
        yield* hold.release
        yield* kept.await
        expect(yield* h.log).toEqual(["kept"])
        const stats = yield* h.balanced
        expect(stats.total.interrupted).toBe(1)
        expect(stats.total.queued).toBe(0)
      }))

    it.effect("interrupting a running tasklet stops it; its worker is replaced and goes on", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const started = yield* Deferred.make<void>()
        const finalized = yield* Deferred.make<void>()
        const running = yield* agenda.submit(
          Effect.andThen(Deferred.succeed(started, undefined), Effect.never).pipe(
            Effect.onInterrupt(() => Deferred.succeed(finalized, undefined))
          ),
          { label: "forever" }
        )
        yield* Deferred.await(started)
        const exit = yield* running.interrupt
        expect(Exit.hasInterrupts(exit)).toBe(true)
        expect(yield* Deferred.isDone(finalized)).toBe(true)
        expect(yield* agenda.run(Effect.succeed("next"))).toBe("next")
        const [worker] = yield* agenda.workers
        expect(worker.respawns).toBe(1)
        expect(worker.interrupted).toBe(1)
        expect(worker.completed).toBe(1)
        const stats = yield* agenda.stats
        expect(stats.total.interrupted).toBe(1)
        expect(stats.total.balanced).toBe(true)
      }))

    it.effect("interrupting a finished tasklet keeps its outcome", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make()
        const handle = yield* agenda.submit(Effect.succeed(1))
        yield* handle.await
        expect(yield* handle.interrupt).toEqual(Exit.succeed(1))
        expect(handle.outcome).toBe("Completed")
      }))

    it.effect("a tasklet may interrupt itself through its own handle", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const self = yield* Deferred.make<{ interruptFork: Effect.Effect<void> }>()
        const handle = yield* agenda.submit(
          Effect.flatMap(Deferred.await(self), (h) => Effect.andThen(h.interruptFork, Effect.never))
        )
        yield* Deferred.succeed(self, handle)
        expect(Exit.hasInterrupts(yield* handle.await)).toBe(true)
        expect(yield* agenda.run(Effect.succeed(2))).toBe(2)
      }))

    it.effect("an observer can be removed before the outcome", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1 })
        const hold = yield* h.holdWorkers
        const handle = yield* h.agenda.submit(Effect.succeed(1))
        const calls: Array<string> = []
        const remove = handle.unsafeAddObserver(() => calls.push("removed"))
        handle.unsafeAddObserver(() => calls.push("kept"))
        remove()
        yield* hold.release
        yield* handle.await
        handle.unsafeAddObserver(() => calls.push("late"))
        expect(calls).toEqual(["kept", "late"])
      }))
  })

  describe("failure isolation", () => {
    it.effect("failures and defects are logged with their label and counted; the worker lives", () =>
      Effect.gen(function*() {
        const logs: Array<string> = []
        const logger = Logger.make(({ fiber, message }) => {
          logs.push(`${String(message)} ${JSON.stringify(Object.entries(fiber.getRef(References.CurrentLogAnnotations)))}`)
        })
        const agenda = yield* Agenda.make({ workers: 1 }).pipe(
          Effect.provide(Logger.layer([logger]))
        )
        const failed = yield* agenda.submit(Effect.fail("boom"), { label: "fails" })
        const died = yield* agenda.submit(Effect.die(new Error("bug")), { label: "dies" })
        const ok = yield* agenda.submit(Effect.succeed("still alive"))
        expect(yield* failed.await).toEqual(Exit.fail("boom"))
        expect(Exit.isFailure(yield* died.await)).toBe(true)
        expect(yield* ok.join).toBe("still alive")
        expect(failed.outcome).toBe("Failed")
        expect(died.outcome).toBe("Failed")
        const [worker] = yield* agenda.workers
        expect(worker).toMatchObject({ failed: 2, completed: 1, respawns: 0 })
        expect(logs.some((l) => l.includes("(fails) failed") && l.includes("\"tasklet\",\"fails\""))).toBe(true)
        expect(logs.some((l) => l.includes("(dies) died with a defect"))).toBe(true)
        const stats = yield* agenda.stats
        expect(stats.total.failed).toBe(2)
      }))

    it.effect("logFailures: false keeps failures quiet but counted", () =>
      Effect.gen(function*() {
        const logs: Array<unknown> = []
        const logger = Logger.make(({ message }) => void logs.push(message))
        const agenda = yield* Agenda.make({ workers: 1, logFailures: false }).pipe(
          Effect.provide(Logger.layer([logger]))
        )
        yield* agenda.submit(Effect.fail("quiet")).pipe(Effect.flatMap((h) => h.await))
        expect(logs).toEqual([])
        expect((yield* agenda.stats).total.failed).toBe(1)
      }))
  })

  describe("quit and exit", () => {
    it.effect("quit drains queued and running tasklets and reports", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 2 })
        const hold = yield* h.holdWorkers
        const handles = []
        for (let i = 0; i < 10; i++) handles.push(yield* h.agenda.submit(h.record(`t${i}`)))
        const quitting = yield* Effect.forkChild(h.agenda.quit())
        yield* hold.release
        const report = yield* Fiber.join(quitting)
        expect(report.mode).toBe("quit")
        expect(report.timedOut).toBe(false)
        expect(report.dropped).toBe(0)
        expect(report.interrupted).toBe(0)
        expect(report.stats.state).toBe("stopped")
        expect(report.stats.total.completed).toBe(12)
        expect(report.stats.total.balanced).toBe(true)
        expect(handles.every((x) => x.outcome === "Completed")).toBe(true)
        // Idempotent: a second quit or an exit returns the same report.
        expect(yield* h.agenda.quit()).toBe(report)
        expect(yield* h.agenda.exit).toBe(report)
      }))

    it.effect("exit interrupts running tasklets, drops queued ones and says how many", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 2 })
        yield* h.holdWorkers
        const queued = []
        for (let i = 0; i < 5; i++) queued.push(yield* h.agenda.submit(h.record(`q${i}`), { priority: "Low" }))
        const report = yield* h.agenda.exit
        expect(report.mode).toBe("exit")
        expect(report.dropped).toBe(5)
        expect(report.interrupted).toBe(2)
        expect(report.stats.total).toMatchObject({ submitted: 7, dropped: 5, interrupted: 2, queued: 0, running: 0 })
        expect(report.stats.total.balanced).toBe(true)
        const exit = yield* queued[0].await
        expect(exit).toEqual(Exit.fail(new TaskletDropped({ id: queued[0].id, label: queued[0].label })))
        expect(queued[0].outcome).toBe("Dropped")
        expect(yield* h.log).toEqual([])
      }))

    it.effect("quit with a timeout falls back to exit", () =>
      Effect.gen(function*() {
        const h = yield* AgendaHarness.make({ workers: 1 })
        yield* h.holdWorkers
        yield* h.agenda.submit(h.record("late"))
        const quitting = yield* Effect.forkChild(h.agenda.quit({ timeout: "5 seconds" }))
        yield* eventually(Effect.map(TestTime.pendingSleeps, (s) => s.length === 1), "quit timer armed")
        yield* TestClock.adjust("5 seconds")
        const report = yield* Fiber.join(quitting)
        expect(report).toMatchObject({ mode: "exit", timedOut: true, dropped: 1, interrupted: 1 })
        expect(report.stats.total.balanced).toBe(true)
      }))

    it.effect("closing the layer's scope quits and drains", () =>
      Effect.gen(function*() {
        const ran: Array<number> = []
        const handles = yield* Effect.scoped(
          Effect.gen(function*() {
            const agenda = yield* Agenda.make({ workers: 1 })
            const hs = []
            for (let i = 0; i < 20; i++) hs.push(yield* agenda.submit(Effect.sync(() => void ran.push(i))))
            return hs
          })
        )
        expect(ran).toHaveLength(20)
        expect(handles.every((x) => x.outcome === "Completed")).toBe(true)
      }))

    it.effect("onClose: exit drops on scope close", () =>
      Effect.gen(function*() {
        const handles = yield* Effect.scoped(
          Effect.gen(function*() {
            const h = yield* AgendaHarness.make({ workers: 1, onClose: "exit" })
            yield* h.holdWorkers
            return [yield* h.agenda.submit(Effect.void), yield* h.agenda.submit(Effect.void)]
          })
        )
        expect(handles.map((x) => x.outcome)).toEqual(["Dropped", "Dropped"])
      }))

    it.effect("quit waits for tasklets submitted before it, across priorities", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const hs = []
        for (const priority of ["Low", "Normal", "High"] as const) {
          hs.push(yield* agenda.submit(Effect.yieldNow, { priority }))
        }
        const report = yield* agenda.quit()
        expect(report.stats.byPriority.Low.completed).toBe(1)
        expect(hs.map((x) => x.outcome)).toEqual(["Completed", "Completed", "Completed"])
      }))
  })

  describe("GC barrier", () => {
    it.effect("the collector runs exactly once, while no tasklet code runs", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 4 })
        let active = 0
        let maxActiveDuringGc = -1
        let collections = 0
        const body = Effect.gen(function*() {
          active++
          yield* Effect.yieldNow
          active--
        })
        for (let i = 0; i < 200; i++) yield* agenda.submit(body)
        yield* agenda.requestGc(Effect.sync(() => {
          collections++
          maxActiveDuringGc = active
        }))
        expect(collections).toBe(1)
        expect(maxActiveDuringGc).toBe(0)
        yield* agenda.whenIdle
        const stats = yield* agenda.stats
        expect(stats.gcCycles).toBe(1)
        expect(stats.total.completed).toBe(200)
      }))

    it.effect("a long tasklet parks at safePoint; the rest of it runs after the collector", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 2 })
        const events: Array<string> = []
        const inLoop = yield* Deferred.make<void>()
        const stop = yield* Deferred.make<void>()
        const long = yield* agenda.submit(
          Effect.gen(function*() {
            let round = 0
            while (!(yield* Deferred.isDone(stop))) {
              round++
              if (round === 1) yield* Deferred.succeed(inLoop, undefined)
              yield* Agenda.safePoint
              yield* Effect.yieldNow
            }
            events.push("long ends")
          }),
          { label: "long" }
        )
        yield* Deferred.await(inLoop)
        const longWorker = (yield* agenda.workers).find((w) => w.current?.id === long.id)!.id
        yield* agenda.requestGc(Effect.sync(() => void events.push("collect")))
        expect(long.status).toBe("Running")
        yield* Deferred.succeed(stop, undefined)
        yield* long.await
        expect(events).toEqual(["collect", "long ends"])
        const workers = yield* agenda.workers
        // The busy worker parked once, inside its tasklet. Whether the other
        // one parked depends on whether its fiber had reached its wait for
        // work (a safe point, no park) or was between tasklets (it parks
        // there) when the barrier formed: a matter of machine speed, so it
        // is not asserted.
        expect(workers[longWorker].gcParks).toBe(1)
        expect(workers[longWorker].completed).toBe(1)
      }))

    it.effect("safePoint is a no-op outside a GC barrier and outside workers", () =>
      Effect.gen(function*() {
        yield* Agenda.safePoint
        const agenda = yield* Agenda.make({ workers: 1 })
        expect(yield* agenda.run(Effect.as(Agenda.safePoint, "ok"))).toBe("ok")
      }))

    it.effect("requests made while a barrier forms coalesce into one cycle", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const started = yield* Deferred.make<void>()
        const gate = yield* Deferred.make<void>()
        yield* agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Deferred.await(gate)))
        yield* Deferred.await(started)
        let shared = 0
        let other = 0
        const sharedCollector = Effect.sync(() => void shared++)
        const r1 = yield* Effect.forkChild(agenda.requestGc(sharedCollector))
        const r2 = yield* Effect.forkChild(agenda.requestGc(sharedCollector))
        const r3 = yield* Effect.forkChild(agenda.requestGc(Effect.sync(() => void other++)))
        yield* Effect.yieldNow
        expect(shared + other).toBe(0)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(r1)
        yield* Fiber.join(r2)
        yield* Fiber.join(r3)
        expect([shared, other]).toEqual([1, 1])
        expect((yield* agenda.stats).gcCycles).toBe(1)
      }))

    it.effect("a failing collector fails its request; the agenda goes on", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 2 })
        const error = yield* Effect.flip(agenda.requestGc(Effect.fail("no memory" as const)))
        expect(error).toBe("no memory")
        expect(yield* agenda.run(Effect.succeed(1))).toBe(1)
      }))

    it.effect("exit while a barrier waits for a busy worker fails the request with AgendaClosed", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ workers: 1 })
        const started = yield* Deferred.make<void>()
        yield* agenda.submit(Effect.andThen(Deferred.succeed(started, undefined), Effect.never))
        yield* Deferred.await(started)
        const request = yield* Effect.forkChild(agenda.requestGc(Effect.void))
        yield* Effect.yieldNow
        const report = yield* agenda.exit
        expect(report.interrupted).toBe(1)
        const exit = yield* Fiber.await(request)
        expect(Exit.isFailure(exit) && Option.getOrThrow(Cause.findErrorOption(exit.cause))).toBeInstanceOf(AgendaClosed)
      }))
  })

  describe("metrics", () => {
    it.effect("wait and run time histograms count every started tasklet", () =>
      Effect.gen(function*() {
        const agenda = yield* Agenda.make({ name: "metrics-test", workers: 1 })
        const before = (yield* Metric.value(agenda.metrics.waitTime[0])).count
        yield* agenda.run(Effect.void, { priority: "High" })
        yield* agenda.run(Effect.void, { priority: "High" })
        const after = yield* Metric.value(agenda.metrics.waitTime[0])
        expect(after.count - before).toBe(2)
        const run = yield* Metric.value(agenda.metrics.runTime[0])
        expect(run.count).toBeGreaterThanOrEqual(2)
        const stats = yield* agenda.stats
        expect(stats.byPriority.High.waitTime.count).toBe(2)
        expect(stats.byPriority.High.runTime.count).toBe(2)
      }))

    it.effect("metrics are updated through their cached hooks, and Metric.value sees every update", () =>
      Effect.gen(function*() {
        // The fast path reads Effect's metric internals; an Effect upgrade that moves them fails here.
        expect(metricHooksInUse()).toBe(true)
        const agenda = yield* Agenda.make({ name: "metrics-hooks", workers: 1, logFailures: false })
        const outcomes = Metric.counter("refpersys_agenda_tasklets_total", {
          description: "tasklets ended, by outcome",
          incremental: true,
          attributes: { agenda: "metrics-hooks", priority: "Low", outcome: "Failed" }
        })
        for (let i = 0; i < 3; i++) yield* Effect.exit(agenda.run(Effect.fail("no"), { priority: "Low" }))
        expect((yield* Metric.value(outcomes)).count).toBe(3)
        expect((yield* Metric.value(agenda.metrics.runTime[2])).count).toBe(3)
        expect(metricHooksInUse()).toBe(true)
      }))
  })
})

describe("Agenda accessors", () => {
  it.effect("requestGc, quit and exit reach the Agenda in context", () =>
    Effect.gen(function*() {
      let collected = 0
      yield* Agenda.requestGc(Effect.sync(() => void collected++))
      expect(collected).toBe(1)
      yield* Agenda.submit(Effect.void)
      const report = yield* Agenda.quit({ timeout: "1 minute" })
      expect(report.mode).toBe("quit")
      expect(report.stats.gcCycles).toBe(1)
      expect(yield* Agenda.exit).toBe(report)
    }).pipe(Effect.provide(Agenda.layer({ workers: 1 }))))
})

describe("Agenda under faulty user code", () => {
  it.effect("an outcome observer that throws keeps neither the other observers nor a join from the outcome", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => {
        logs.push((Array.isArray(message) ? message : [message]).join(" "))
      })
      const agenda = yield* Agenda.make({ workers: 1 }).pipe(Effect.provide(Logger.layer([logger])))
      const gate = yield* Deferred.make<void>()
      const handle = yield* agenda.submit(Effect.as(Deferred.await(gate), "done"), { label: "observed" })
      let told = 0
      handle.unsafeAddObserver(() => {
        throw new Error("a bug in an observer")
      })
      handle.unsafeAddObserver(() => void told++)
      const joiner = yield* Effect.forkChild(handle.join)
      yield* eventually(Effect.sync(() => handle.status === "Running"), "the tasklet to run")
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(joiner)).toBe("done")
      expect(told).toBe(1)
      // The worker finished its bookkeeping and was not replaced.
      expect((yield* agenda.workers)[0].respawns).toBe(0)
      expect(yield* agenda.run(Effect.succeed(2))).toBe(2)
      yield* eventually(Effect.sync(() => logs.some((l) => l.includes("observer of tasklet") && l.includes("observed"))), "the log")
    }))

  it.effect("every worker starts, even while a High tasklet that keeps yielding holds another one", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 4 })
      let started = 0
      const spin = Effect.andThen(Effect.sync(() => void started++), Effect.forever(Effect.yieldNow))
      const handles = []
      for (let i = 0; i < 4; i++) {
        const handle = agenda.unsafeSubmit(spin, { priority: "High", label: `spin#${i}` })
        if (!("id" in handle)) return yield* Effect.die(handle)
        handles.push(handle)
      }
      yield* eventually(Effect.sync(() => started === 4), "all four spinning tasklets to start")
      for (const handle of handles) expect(Exit.hasInterrupts(yield* handle.interrupt)).toBe(true)
    }))
})
