import { describe, it, layer } from "@effect/vitest"
import { Agenda, AgendaError, EventLoop, Platform, Tasklet } from "@refpersys/core"
import { LinuxPlatform, NodePlatform } from "@refpersys/platform-linux"
import { TestTime } from "@refpersys/testkit"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Option, Ref, References, Schema, Scope } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { expect } from "vitest"
import * as ThreadAgenda from "../src/ThreadAgenda.js"
import { TaskCodecError, TaskLoadError, ThreadCrashed } from "../src/ThreadAgendaError.js"
import * as ThreadTask from "../src/ThreadTask.js"
import * as tasks from "./fixtures/tasks.mjs"

const eventually = TestTime.eventually

/** A gate for `tasks.hold`: word 0 opens it, word 1 counts the holders that started. */
const makeGate = Effect.acquireRelease(
  Effect.sync(() => new SharedArrayBuffer(8)),
  (buffer) => Effect.sync(() => open(buffer))
)
const open = (buffer: SharedArrayBuffer) => {
  const view = new Int32Array(buffer)
  Atomics.store(view, 0, 1)
  Atomics.notify(view, 0)
}
const word = (buffer: SharedArrayBuffer, i: number) => Atomics.load(new Int32Array(buffer), i)

/** Every level's counters add up. */
const expectBalanced = (stats: { readonly byPriority: Record<string, { readonly balanced: boolean }>; readonly total: { readonly balanced: boolean } }) => {
  expect(stats.total.balanced).toBe(true)
  for (const level of Object.values(stats.byPriority)) expect(level.balanced).toBe(true)
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined

describe("ThreadTask", () => {
  it("accepts file URLs and absolute paths, and refuses relative modules", () => {
    const byPath = ThreadTask.make({ module: "/tmp/tasks.js", export: "f", args: Schema.Number, success: Schema.Number })
    expect(byPath.module).toBe("file:///tmp/tasks.js")
    expect(ThreadTask.isThreadTask(byPath)).toBe(true)
    expect(ThreadTask.isImplementation(byPath)).toBe(false)
    expect(ThreadTask.isImplementation(tasks.square)).toBe(true)
    expect(() => ThreadTask.make({ module: "./tasks.js", export: "f", args: Schema.Number, success: Schema.Number }))
      .toThrow(AgendaError.InvalidOptions)
    expect(() => ThreadTask.make({ module: "/tmp/tasks.js", export: "", args: Schema.Number, success: Schema.Number }))
      .toThrow(AgendaError.InvalidOptions)
  })
})

describe("ThreadAgenda options", () => {
  it.live("rejects bad options before starting any thread", () =>
    Effect.gen(function*() {
      const invalid = [{ threads: 0 }, { localQueue: 1.5 }, { concurrency: -1 }, { concurrency: 4, localQueue: 2 }, { aging: 0 }, { name: "" }]
      for (const options of invalid) {
        const error = yield* Effect.flip(ThreadAgenda.make(options))
        expect(error).toBeInstanceOf(AgendaError.InvalidOptions)
      }
      const error = yield* Effect.flip(ThreadAgenda.make({ heapCollection: "always" as never }))
      expect(error).toMatchObject({ option: "heapCollection" })
    }))

  it.live("options shared with Agenda get the same typed error from both", () =>
    Effect.gen(function*() {
      const shared: ReadonlyArray<Record<string, unknown>> = [
        { closeTimeout: "-5 seconds" },
        { closeTimeout: "3000" },
        { closeTimeout: null },
        { gcTimeout: -1 },
        { capacity: null },
        { capacity: { High: 0 } },
        { aging: 0 },
        { name: "" },
        { onClose: "later" },
        { logFailures: "yes" }
      ]
      for (const options of shared) {
        const fromThreads = yield* Effect.flip(ThreadAgenda.make(options as never))
        const fromAgenda = yield* Effect.flip(Agenda.make(options as never))
        expect(fromThreads).toBeInstanceOf(AgendaError.InvalidOptions)
        expect({ ...fromThreads }).toEqual({ ...fromAgenda })
      }
      expect(yield* Effect.flip(ThreadAgenda.make(null as never))).toBeInstanceOf(AgendaError.InvalidOptions)
    }))

  it.live("rejects resourceLimits too small to start a thread, naming the minimum, before starting any", () =>
    Effect.gen(function*() {
      // 2 MB old / 1 MB young: the thread cannot load its modules, and newer Node aborts the process.
      const tiny = yield* Effect.flip(
        ThreadAgenda.make({ threads: 1, resourceLimits: { maxOldGenerationSizeMb: 2, maxYoungGenerationSizeMb: 1 } })
      )
      expect(tiny).toBeInstanceOf(AgendaError.InvalidOptions)
      expect(tiny).toMatchObject({ option: "resourceLimits.maxOldGenerationSizeMb", value: 2 })
      expect(tiny.message).toContain(`at least ${ThreadAgenda.minimumResourceLimits.maxOldGenerationSizeMb}`)
      const young = yield* Effect.flip(ThreadAgenda.make({ threads: 1, resourceLimits: { maxYoungGenerationSizeMb: 1 } }))
      expect(young).toMatchObject({ option: "resourceLimits.maxYoungGenerationSizeMb", value: 1 })
      expect(young.message).toContain(`at least ${ThreadAgenda.minimumResourceLimits.maxYoungGenerationSizeMb}`)
      for (const bad of [null, { stackSizeMb: Number.NaN }, { maxOldGenerationSizeMb: "64" }]) {
        expect(yield* Effect.flip(ThreadAgenda.make({ threads: 1, resourceLimits: bad as never }))).toBeInstanceOf(
          AgendaError.InvalidOptions
        )
      }
    }))

  it.live("a thread at the minimum limits starts, and a tasklet exceeding them crashes it recoverably", () =>
    Effect.gen(function*() {
      const { maxOldGenerationSizeMb, maxYoungGenerationSizeMb } = ThreadAgenda.minimumResourceLimits
      const agenda = yield* ThreadAgenda.make({
        threads: 1,
        logFailures: false,
        resourceLimits: { maxOldGenerationSizeMb, maxYoungGenerationSizeMb }
      })
      expect(yield* agenda.run(tasks.square, 4)).toBe(16)
      const oom = failureOf(yield* Effect.exit(agenda.run(tasks.crash, "oom")))
      expect(oom).toBeInstanceOf(ThreadCrashed)
      expect((oom as ThreadCrashed).detail).toContain("memory")
      // Replaced: the next tasklet runs.
      expect(yield* agenda.run(tasks.square, 5)).toBe(25)
      expect((yield* agenda.threadStats).crashes).toBe(1)
    }), 60_000)
})

layer(
  ThreadAgenda.layer({
    name: "shared",
    threads: 2,
    localQueue: 4,
    logFailures: false,
    onClose: "exit",
    heapCollection: "force",
    // Small, so that the out-of-memory crash comes quickly.
    resourceLimits: { maxOldGenerationSizeMb: 32 }
  }).pipe(Layer.provide(Layer.succeed(References.MinimumLogLevel, "Error"))),
  { timeout: "30 seconds", excludeTestServices: true }
)("ThreadAgenda (two threads)", (it) => {
  it.effect("results and typed errors cross the thread boundary through their Schemas", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      expect(agenda.threads).toBe(2)
      const handle = yield* agenda.submit(tasks.square, 7, { label: "seven", priority: "High" })
      expect(yield* handle.join).toBe(49)
      expect(handle.info()).toMatchObject({ label: "seven", priority: "High", status: "Done", outcome: "Completed" })
      expect(handle.attempts).toBe(1)
      expect(handle.startedAt).toBeGreaterThanOrEqual(handle.createdAt)
      const negative = failureOf(yield* Effect.exit(agenda.run(tasks.square, -3)))
      expect(negative).toBeInstanceOf(tasks.Negative)
      expect(negative).toMatchObject({ n: -3 })
      // A plain function and an Effect using the thread's context.
      expect(yield* agenda.run(tasks.increment, 41)).toBe(42)
      expect([0, 1]).toContain(yield* agenda.run(tasks.whoAmI, undefined))
      // A defect keeps its message across the boundary.
      const defect = yield* Effect.exit(agenda.run(tasks.boom, "kaboom"))
      expect(Exit.isFailure(defect) && Cause.hasDies(defect.cause)).toBe(true)
      expect(Exit.isFailure(defect) && Cause.pretty(defect.cause)).toContain("kaboom")
      expectBalanced(yield* agenda.stats)
    }))

  it.effect("values that do not fit a Schema, and tasks that do not load, fail with typed errors", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const before = (yield* agenda.stats).total.submitted
      const args = yield* Effect.flip(agenda.submit(tasks.square, "seven" as never))
      expect(args).toBeInstanceOf(TaskCodecError)
      expect(args).toMatchObject({ task: "square", stage: "encodeArgs" })
      // Nothing was submitted.
      expect((yield* agenda.stats).total.submitted).toBe(before)
      expect(agenda.unsafeSubmit(tasks.square, null as never)).toBeInstanceOf(TaskCodecError)
      const result = failureOf(yield* Effect.exit(agenda.run(tasks.badResult, undefined)))
      expect(result).toBeInstanceOf(TaskCodecError)
      expect(result).toMatchObject({ stage: "encodeSuccess" })
      const error = failureOf(yield* Effect.exit(agenda.run(tasks.badError, undefined)))
      expect(error).toMatchObject({ _tag: "TaskCodecError", stage: "encodeFailure" })
      const load = failureOf(yield* Effect.exit(agenda.run(tasks.missing, undefined)))
      expect(load).toBeInstanceOf(TaskLoadError)
      expect((load as TaskLoadError).message).toContain("noSuchExport")
      const stats = yield* agenda.stats
      expect(stats.total.failed).toBeGreaterThanOrEqual(3)
      expectBalanced(stats)
    }))

  it.effect("a High tasklet never waits behind queued Low ones: it takes a Low one's place and runs next", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const [gate0, gate1] = [yield* makeGate, yield* makeGate]
      const log = new SharedArrayBuffer(4)
      const before = yield* agenda.threadStats
      // Hold thread 0 and thread 1 (in that order), then fill their local
      // queues (4 each) with Low work: 3 each, alternately; 4 stay global.
      const hold0 = yield* agenda.submit(tasks.hold, gate0)
      yield* eventually(Effect.sync(() => word(gate0, 1) === 1), "thread 0 is held")
      const hold1 = yield* agenda.submit(tasks.hold, gate1)
      yield* eventually(Effect.sync(() => word(gate1, 1) === 1), "thread 1 is held")
      expect((yield* agenda.workers).map((w) => w.current?.id)).toEqual([hold0.id, hold1.id])
      const lows = yield* Effect.forEach(Array.from({ length: 10 }), () =>
        agenda.submit(tasks.ticket, { log, spinMs: 1 }, { priority: "Low" }))
      yield* eventually(
        Effect.map(agenda.threadStats, (s) => s.threads.every((t) => t.localQueued === 3)),
        "both local queues are full of Low tasklets"
      )
      const high = yield* agenda.submit(tasks.ticket, { log, spinMs: 0 }, { priority: "High" })
      // Every local queue was full: the newest queued Low tasklet (on thread 1)
      // went back to the global queue and the High one took its place.
      yield* eventually(Effect.map(agenda.threadStats, (s) => s.displaced === before.displaced + 1), "a Low tasklet was displaced")
      open(gate1)
      const first = yield* high.join
      expect(first).toEqual({ ticket: 0, thread: 1 })
      // Thread 0 is still held: thread 1 runs every Low tasklet, taking thread 0's by stealing.
      const rest = yield* Effect.forEach(lows, (h) => h.join)
      expect(rest.every((r) => r.thread === 1)).toBe(true)
      expect((yield* agenda.threadStats).threads[0].stolenFrom).toBeGreaterThanOrEqual(before.threads[0].stolenFrom + 3)
      open(gate0)
      expect(yield* Effect.forEach([hold0, hold1], (h) => h.join)).toEqual([0, 1])
      expectBalanced(yield* agenda.stats)
    }))

  it.effect("an idle thread steals the queue of a thread busy in a long tasklet", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const [gate0, gate1] = [yield* makeGate, yield* makeGate]
      const before = yield* agenda.threadStats
      const hold0 = yield* agenda.submit(tasks.hold, gate0)
      yield* eventually(Effect.sync(() => word(gate0, 1) === 1), "thread 0 is held")
      const hold1 = yield* agenda.submit(tasks.hold, gate1)
      yield* eventually(Effect.sync(() => word(gate1, 1) === 1), "thread 1 is held")
      // Three land behind each holder.
      const quick = yield* Effect.forEach(Array.from({ length: 6 }), () => agenda.submit(tasks.whoAmI, undefined))
      yield* eventually(
        Effect.map(agenda.threadStats, (s) => s.threads.every((t) => t.localQueued === 3)),
        "both local queues hold three"
      )
      open(gate1)
      // Thread 1 runs its three, goes idle and takes thread 0's, which is still held.
      expect(yield* Effect.forEach(quick, (h) => h.join)).toEqual([1, 1, 1, 1, 1, 1])
      const after = yield* agenda.threadStats
      expect(after.steals).toBeGreaterThan(before.steals)
      expect(after.threads[0].stolenFrom - before.threads[0].stolenFrom).toBe(3)
      expect(after.threads[1].stolenBy - before.threads[1].stolenBy).toBe(3)
      open(gate0)
      expect(yield* Effect.forEach([hold0, hold1], (h) => h.join)).toEqual([0, 1])
    }))

  it.effect("the GC barrier parks every thread at a safe point while the collector runs", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const words = new SharedArrayBuffer(12)
      yield* Effect.addFinalizer(() => Effect.sync(() => open(words)))
      const before = yield* agenda.stats
      const spinners = [
        yield* agenda.submit(tasks.spinner, { words, i: 0 }),
        yield* agenda.submit(tasks.spinner, { words, i: 1 })
      ]
      yield* eventually(Effect.sync(() => word(words, 1) > 0 && word(words, 2) > 0), "both spinners run")
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const turn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      const collector = Effect.gen(function*() {
        const progress = [word(words, 1), word(words, 2)]
        const states = (yield* agenda.workers).map((w) => w.state)
        yield* Effect.repeat(turn, { times: 20 })
        yield* Ref.set(seen, [progress, [word(words, 1), word(words, 2)], states])
      })
      yield* agenda.requestGc(collector)
      const [during, afterwards, states] = yield* Ref.get(seen)
      // No tasklet code ran on any thread while the collector ran.
      expect(afterwards).toEqual(during)
      expect(states).toEqual(["GC", "GC"])
      // Released: they go on.
      const [a, b] = during as [number, number]
      yield* eventually(Effect.sync(() => word(words, 1) > a && word(words, 2) > b), "the spinners resume")
      open(words)
      yield* Effect.forEach(spinners, (h) => h.join)
      const after = yield* agenda.stats
      expect(after.gcCycles).toBe(before.gcCycles + 1)
      after.workers.forEach((w, i) => expect(w.gcParks).toBeGreaterThan(before.workers[i].gcParks))
      // heapCollection: "force": each thread collected its own heap while parked.
      expect((yield* agenda.threadStats).threads.every((t) => t.heapCollections > 0)).toBe(true)
      // Idle threads park too; requests made together share one collection.
      const runs = yield* Ref.make(0)
      const count = Ref.update(runs, (n) => n + 1)
      yield* Effect.all([agenda.requestGc(count), agenda.requestGc(count)], { concurrency: "unbounded" })
      expect(yield* Ref.get(runs)).toBe(1)
      expect((yield* agenda.stats).gcCycles).toBe(before.gcCycles + 2)
    }))

  it.effect("interrupts queued and running tasklets, and drops obsolete ones", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const gate = yield* makeGate
      const holds = [yield* agenda.submit(tasks.hold, gate), yield* agenda.submit(tasks.hold, gate)]
      yield* eventually(Effect.sync(() => word(gate, 1) === 2), "both threads are held")
      // Queued in a local queue: taken back, it never runs.
      const queued = yield* agenda.submit(tasks.square, 2)
      expect(queued.status).toBe("Queued")
      const exit = yield* queued.interrupt
      expect(Exit.hasInterrupts(exit)).toBe(true)
      expect(queued.outcome).toBe("Interrupted")
      expect(queued.attempts).toBe(0)
      const late = yield* agenda.submit(tasks.square, 3, { obsoleteAfter: 0 })
      expect(failureOf(yield* late.await)).toBeInstanceOf(Tasklet.TaskletObsolete)
      open(gate)
      yield* Effect.forEach(holds, (h) => h.join)
      // Running and asynchronous: its thread interrupts its fiber.
      const napping = yield* agenda.submit(tasks.nap, 60_000)
      yield* eventually(Effect.sync(() => napping.status === "Running"), "the nap started")
      expect(Exit.hasInterrupts(yield* napping.interrupt)).toBe(true)
      expect(napping.outcome).toBe("Interrupted")
      const stats = yield* agenda.stats
      expect(stats.total.obsolete).toBeGreaterThanOrEqual(1)
      expectBalanced(stats)
    }))

  it.effect("accessors use the agenda in context", () =>
    Effect.gen(function*() {
      expect(yield* ThreadAgenda.run(tasks.square, 3)).toBe(9)
      const handle = yield* ThreadAgenda.submit(tasks.increment, 1)
      yield* ThreadAgenda.whenIdle
      expect(handle.outcome).toBe("Completed")
      const before = (yield* ThreadAgenda.stats).gcCycles
      yield* ThreadAgenda.requestGc(Effect.void)
      expect((yield* ThreadAgenda.stats).gcCycles).toBe(before + 1)
      const stats = yield* ThreadAgenda.threadStats
      expect(stats.threads).toHaveLength(2)
      expect(stats.batches).toBeGreaterThan(0)
      expect(stats.dispatched).toBeGreaterThanOrEqual(stats.batches)
    }))

  it.effect("without a Platform, commands from a thread fail with Unsupported", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const error = failureOf(yield* Effect.exit(agenda.run(tasks.send, 65)))
      expect(error).toBeInstanceOf(Platform.PlatformError)
      expect(error).toMatchObject({ reason: "Unsupported" })
    }))
  // Last in this block: the replacement threads may still be starting when it ends.
  it.effect("a bad quit timeout or tasklet option fails with the typed error Agenda gives, and changes nothing", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const core = yield* Agenda.make({ workers: 1 })
      for (const timeout of [-1, "3000", null, "-5 seconds", Number.NaN]) {
        const error = yield* Effect.flip(agenda.quit({ timeout } as ThreadAgenda.QuitOptions))
        expect(error).toBeInstanceOf(AgendaError.InvalidOptions)
        expect(error).toMatchObject({ option: "timeout", value: timeout })
        expect({ ...error }).toEqual({ ...(yield* Effect.flip(core.quit({ timeout } as Agenda.QuitOptions))) })
      }
      expect((yield* agenda.stats).state).toBe("running")
      for (const options of [{ obsoleteAfter: "-5 seconds" }, { obsoleteAfter: -10n }, { priority: "Urgent" }, { label: 7 }]) {
        const error = yield* Effect.flip(agenda.submit(tasks.square, 2, options as never))
        expect(error).toBeInstanceOf(AgendaError.InvalidOptions)
        expect({ ...error }).toEqual({ ...(yield* Effect.flip(core.submit(Effect.void, options as never))) })
      }
      expect(yield* agenda.run(tasks.square, 6, { priority: "High", label: "six", obsoleteAfter: "1 minute" })).toBe(36)
    }).pipe(Effect.scoped))

  it.effect("a result or error that cannot be structured-cloned fails only its own tasklet, naming the value's path", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const before = yield* agenda.threadStats
      const kinds = ["ok", "function", "ok", "symbol", "ok", "error", "ok", "defect"] as const
      const handles = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, n) => n),
        (n) => agenda.submit(tasks.opaque, { kind: kinds[n % kinds.length], n })
      )
      const exits = yield* Effect.forEach(handles, (h) => h.await)
      exits.forEach((exit, n) => {
        const kind = kinds[n % kinds.length]
        if (kind === "ok") return expect(exit).toEqual(Exit.succeed(n))
        if (kind === "defect") {
          // Still a defect, described in words the main thread can receive.
          expect(Exit.isFailure(exit) && Cause.hasDies(exit.cause)).toBe(true)
          return expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("cleanup")
        }
        const error = failureOf(exit)
        expect(error).toBeInstanceOf(TaskCodecError)
        const expected = {
          function: { stage: "encodeSuccess", path: "nested[1].callback" },
          symbol: { stage: "encodeSuccess", path: "" },
          error: { stage: "encodeFailure", path: "payload.retry" }
        }[kind]
        expect(error).toMatchObject({ task: "opaque", ...expected })
        expect((error as TaskCodecError).message).toContain("structured-clone")
      })
      const after = yield* agenda.threadStats
      expect(after.crashes).toBe(before.crashes)
      expectBalanced(yield* agenda.stats)
    }))

  it.effect("arguments that cannot be structured-cloned fail only their own tasklet", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const before = yield* agenda.threadStats
      // Submitted together, so they share dispatch messages.
      const args = [{ n: 0 }, { n: 1, log: { write: () => {} } }, { n: 2 }, [Symbol("s")], { n: 4 }]
      const handles = yield* Effect.forEach(args, (a) => agenda.submit(tasks.echo, a))
      const exits = yield* Effect.forEach(handles, (h) => h.await)
      expect(exits[0]).toEqual(Exit.succeed({ n: 0 }))
      expect(exits[2]).toEqual(Exit.succeed({ n: 2 }))
      expect(exits[4]).toEqual(Exit.succeed({ n: 4 }))
      expect(failureOf(exits[1])).toMatchObject({ _tag: "TaskCodecError", stage: "encodeArgs", path: "log.write" })
      expect(failureOf(exits[3])).toMatchObject({ _tag: "TaskCodecError", stage: "encodeArgs", path: "[0]" })
      expect(handles[1].attempts).toBe(0)
      expect((yield* agenda.threadStats).crashes).toBe(before.crashes)
      expectBalanced(yield* agenda.stats)
    }))

  it.effect("a thread that dies of a thrown non-Error reports a readable ThreadCrashed detail", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const error = failureOf(yield* Effect.exit(agenda.run(tasks.crash, "domException")))
      expect(error).toBeInstanceOf(ThreadCrashed)
      expect((error as ThreadCrashed).detail).toContain("DataCloneError: a thread could not clone a value")
      expect(yield* agenda.run(tasks.square, 5)).toBe(25)
      expectBalanced(yield* agenda.stats)
    }))

  it.effect("a thread that crashes is replaced; its tasklet fails, nothing queued is lost", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.ThreadAgenda
      const before = yield* agenda.threadStats
      // Both threads die at once; the third crash kills a replacement.
      const crashers = yield* Effect.forEach(["exit", "throw", "oom"] as const, (how) => agenda.submit(tasks.crash, how))
      const others = yield* Effect.forEach(Array.from({ length: 8 }, (_, i) => i), (i) => agenda.submit(tasks.square, i))
      const errors = yield* Effect.forEach(crashers, (h) => Effect.map(h.await, failureOf))
      const details = ["code 3", "uncaught in a worker thread", "memory"]
      errors.forEach((error, i) => {
        expect(error).toBeInstanceOf(ThreadCrashed)
        expect((error as ThreadCrashed).detail).toContain(details[i])
        expect(crashers[i].outcome).toBe("Failed")
      })
      // What was queued behind the crashed tasklets ran elsewhere.
      expect(yield* Effect.forEach(others, (h) => h.join)).toEqual([0, 1, 4, 9, 16, 25, 36, 49])
      expect(yield* agenda.run(tasks.square, 12)).toBe(144)
      const after = yield* agenda.threadStats
      expect(after.crashes).toBe(before.crashes + 3)
      expect(after.threads.reduce((n, t) => n + t.crashes, 0)).toBe(before.crashes + 3)
      const workers = yield* agenda.workers
      expect(workers.reduce((n, w) => n + w.respawns, 0)).toBe(before.crashes + 3)
      const stats = yield* agenda.stats
      expect(stats.total.failed).toBeGreaterThanOrEqual(3)
      expectBalanced(stats)
    }))
})

describe("ThreadAgenda context", () => {
  /** What a probe saw, without its own inner span (a fresh trace each time it has no parent). */
  const withoutInner = <A extends { readonly inner: unknown }>({ inner: _inner, ...rest }: A) => rest

  it.live("a thread tasklet sees its submitter's log annotations and log levels, and its span as parent", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.make({ threads: 1 })
      // Submitted from a plain context: what the thread has by default.
      const plain = yield* agenda.run(tasks.contextProbe, { leak: false })
      expect(plain.annotations).toEqual({})
      expect(plain.minimumLogLevel).toBe(yield* References.MinimumLogLevel)
      expect(plain.logLevel).toBe(yield* References.CurrentLogLevel)
      expect(plain.parent).toBeNull()
      const submitter = Effect.gen(function*() {
        const span = yield* Effect.currentSpan
        const seen = yield* agenda.run(tasks.contextProbe, { leak: false })
        // A synchronous submit from the same fiber carries the same context.
        const handle = agenda.unsafeSubmit(tasks.contextProbe, { leak: false })
        if (handle instanceof Error) return yield* Effect.die(handle)
        const unsafe = yield* handle.join
        return { span, seen, unsafe }
      }).pipe(
        Effect.withSpan("submitter"),
        // A value that cannot cross threads stays behind; the others go.
        Effect.annotateLogs({ request: "r-1", attempt: 2, retry: () => 0 }),
        Effect.provideService(References.MinimumLogLevel, "Debug"),
        Effect.provideService(References.CurrentLogLevel, "Warn")
      )
      const { seen, span, unsafe } = yield* submitter
      for (const got of [seen, unsafe]) {
        expect(got.annotations).toEqual({ request: "r-1", attempt: 2 })
        expect(got.minimumLogLevel).toBe("Debug")
        expect(got.logLevel).toBe("Warn")
        // The submitter's span is the thread's external parent span: spans made there join its trace.
        expect(got.parent).toEqual({ traceId: span.traceId, spanId: span.spanId })
        expect(got.inner).toEqual({ traceId: span.traceId, parentSpanId: span.spanId })
      }
    }), 30_000)

  it.live("nothing a thread tasklet sets in its context reaches the next tasklet on its thread, or its submitter", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.make({ threads: 1 })
      const baseline = yield* agenda.run(tasks.contextProbe, { leak: false })
      const leaking = yield* agenda.run(tasks.contextProbe, { leak: true }).pipe(Effect.annotateLogs({ request: "r-2" }))
      expect(leaking.annotations).toEqual({ request: "r-2" })
      const next = yield* agenda.run(tasks.contextProbe, { leak: false })
      expect(next.thread).toBe(leaking.thread)
      expect(withoutInner(next)).toEqual(withoutInner(baseline))
      expect(next.inner.parentSpanId).toBeNull()
      // Tasklets submitted together run one after another on the one thread: none sees another's settings.
      const together = yield* Effect.forEach([true, false, true, false], (leak) =>
        agenda.submit(tasks.contextProbe, { leak }).pipe(Effect.annotateLogs({ leak })))
      const seen = yield* Effect.forEach(together, (h) => h.join)
      seen.forEach((got, i) => {
        expect(withoutInner(got)).toEqual({ ...withoutInner(baseline), annotations: { leak: i % 2 === 0 } })
        expect(got.inner.parentSpanId).toBeNull()
      })
      // The submitter's own context is untouched.
      expect(yield* References.CurrentLogAnnotations).toEqual({})
      expect(yield* References.MinimumLogLevel).toBe(baseline.minimumLogLevel)
    }), 30_000)
})

describe("ThreadAgenda shutdown", () => {
  it.live("quit stops accepting, drains every thread and reports; accessors use the agenda in context", () =>
    Effect.gen(function*() {
      const gate = yield* makeGate
      yield* Effect.gen(function*() {
        const holder = yield* ThreadAgenda.submit(tasks.hold, gate)
        yield* eventually(Effect.sync(() => word(gate, 1) === 1), "the holder runs")
        const queued = yield* Effect.forEach([1, 2, 3], (n) => ThreadAgenda.submit(tasks.square, n))
        // Capacity 4 per level: the next one does not fit.
        const agenda = yield* ThreadAgenda.ThreadAgenda
        expect(yield* Effect.flip(agenda.trySubmit(tasks.square, 4))).toBeInstanceOf(AgendaError.AgendaFull)
        const blocked = yield* Effect.forkChild(agenda.submit(tasks.square, 5))
        yield* eventually(Effect.map(ThreadAgenda.stats, (s) => s.total.blockedSubmitters === 1), "a submitter waits")
        const quitting = yield* Effect.forkChild(ThreadAgenda.quit())
        yield* eventually(Effect.map(ThreadAgenda.stats, (s) => s.state === "quitting"), "the agenda is quitting")
        expect(yield* Effect.flip(ThreadAgenda.submit(tasks.square, 6))).toBeInstanceOf(AgendaError.AgendaClosed)
        const rejected = yield* Fiber.await(blocked)
        expect(failureOf(rejected)).toBeInstanceOf(AgendaError.AgendaClosed)
        open(gate)
        const report = yield* Fiber.join(quitting)
        expect(report.mode).toBe("quit")
        expect(report.timedOut).toBe(false)
        expect(report.dropped).toBe(0)
        expect(report.stats.state).toBe("stopped")
        expect(report.stats.total).toMatchObject({ submitted: 4, completed: 4, queued: 0, running: 0 })
        expectBalanced(report.stats)
        expect(yield* Effect.forEach(queued, (h) => h.join)).toEqual([1, 4, 9])
        expect(yield* holder.join).toBe(0)
        // Idempotent: a later exit returns the same report.
        expect(yield* ThreadAgenda.exit).toBe(report)
      }).pipe(Effect.provide(ThreadAgenda.layer({ threads: 1, capacity: 4, localQueue: 2 })))
    }))

  it.live("exit terminates the threads: running tasklets are interrupted, queued ones dropped", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.make({ threads: 1, localQueue: 4, concurrency: 3 })
      // First, on one thread: High runs first, and a displaced Low tasklet keeps its place in line.
      const first = yield* makeGate
      const log = new SharedArrayBuffer(4)
      const firstHolder = yield* agenda.submit(tasks.hold, first)
      yield* eventually(Effect.sync(() => word(first, 1) === 1), "the first holder runs")
      const lows = yield* Effect.forEach([1, 2, 3], () => agenda.submit(tasks.ticket, { log, spinMs: 0 }, { priority: "Low" }))
      yield* eventually(Effect.map(agenda.threadStats, (s) => s.threads[0].localQueued === 3), "the local queue is full")
      const high = yield* agenda.submit(tasks.ticket, { log, spinMs: 0 }, { priority: "High" })
      yield* eventually(Effect.map(agenda.threadStats, (s) => s.displaced === 1), "the High tasklet took a Low one's place")
      open(first)
      yield* firstHolder.join
      expect((yield* high.join).ticket).toBe(0)
      expect((yield* Effect.forEach(lows, (h) => h.join)).map((r) => r.ticket)).toEqual([1, 2, 3])
      // Concurrency 3: two waiting tasklets and a blocking one run on the thread at once.
      const naps = yield* Effect.forEach([1, 2], () => agenda.submit(tasks.nap, 60_000))
      yield* eventually(Effect.sync(() => naps.every((h) => h.status === "Running")), "both naps run")
      const gate = yield* makeGate
      const holder = yield* agenda.submit(tasks.hold, gate)
      yield* eventually(Effect.sync(() => word(gate, 1) === 1), "the holder runs")
      expect((yield* agenda.stats).total.running).toBe(3)
      const queued = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => agenda.submit(tasks.square, n, { priority: "Low" }))
      const report = yield* agenda.exit
      expect(report.mode).toBe("exit")
      expect(report.interrupted).toBe(3)
      expect(report.dropped).toBe(5)
      expect(report.stats.total).toMatchObject({ submitted: 13, interrupted: 3, dropped: 5, queued: 0, running: 0 })
      expectBalanced(report.stats)
      for (const h of [holder, ...naps]) expect(h.outcome).toBe("Interrupted")
      for (const h of queued) expect(failureOf(yield* h.await)).toBeInstanceOf(Tasklet.TaskletDropped)
      expect(yield* Effect.flip(agenda.submit(tasks.square, 1))).toBeInstanceOf(AgendaError.AgendaClosed)
      expect(yield* Effect.flip(agenda.requestGc(Effect.void))).toBeInstanceOf(AgendaError.AgendaClosed)
    }))
})

describe("ThreadAgenda shutdown bounds", () => {
  it.live("closeTimeout bounds scope close even with a tasklet stuck in a synchronous loop", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const agenda = yield* ThreadAgenda.make({ threads: 1, closeTimeout: "300 millis", logFailures: false }).pipe(
        Scope.provide(scope)
      )
      const stuck = yield* agenda.submit(tasks.stuck, undefined)
      const queued = yield* agenda.submit(tasks.square, 2)
      yield* eventually(Effect.sync(() => stuck.status === "Running"), "the stuck tasklet runs")
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      // Generous bound for a loaded machine; the close itself waits 300 ms.
      yield* Fiber.await(closing).pipe(
        Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.fail(new Error("scope close did not return")) })
      )
      expect(stuck.outcome).toBe("Interrupted")
      expect(failureOf(yield* queued.await)).toBeInstanceOf(Tasklet.TaskletDropped)
      const stats = yield* agenda.stats
      expect(stats.state).toBe("stopped")
      expect(stats.total).toMatchObject({ submitted: 2, interrupted: 1, dropped: 1, queued: 0, running: 0 })
      expectBalanced(stats)
    }), 30_000)

  /** Runs `test/fixtures/quit-timeout.mjs` (the built package) as a child process; kills it after `bound`. */
  const runQuitProgram = (kind: "nap" | "stuck", bound: number) =>
    Effect.callback<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>((resume) => {
      const child = spawn(process.execPath, [fileURLToPath(new URL("./fixtures/quit-timeout.mjs", import.meta.url)), kind], {
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk) => (stdout += chunk))
      child.stderr.on("data", (chunk) => (stderr += chunk))
      const timer = setTimeout(() => child.kill("SIGKILL"), bound)
      child.on("close", (code) => {
        clearTimeout(timer)
        resume(Effect.succeed({ code, stdout, stderr }))
      })
      return Effect.sync(() => {
        clearTimeout(timer)
        child.kill("SIGKILL")
      })
    })

  it.live("quit({ timeout }) keeps the process alive until it has reported, then lets it exit by itself", () =>
    Effect.gen(function*() {
      for (const kind of ["nap", "stuck"] as const) {
        const { code, stderr, stdout } = yield* runQuitProgram(kind, 25_000)
        expect({ kind, code, stderr }).toEqual({ kind, code: 0, stderr: "" })
        expect(JSON.parse(stdout)).toEqual({
          mode: "exit",
          timedOut: true,
          interrupted: 1,
          outcome: "Interrupted",
          balanced: true
        })
      }
    }), 60_000)
})

describe("ThreadAgenda GC barrier bounds", () => {
  it.live("gcTimeout bounds a barrier that never forms and a collector that never ends; the threads go on", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.make({ threads: 2, gcTimeout: "300 millis", onClose: "exit", logFailures: false })
      // A tasklet that never reaches a safe point: the barrier cannot form.
      const stuck = yield* agenda.submit(tasks.stuck, undefined, { label: "spins" })
      yield* eventually(Effect.sync(() => stuck.status === "Running"), "the stuck tasklet runs")
      const collected = yield* Ref.make(0)
      const forming = yield* Effect.flip(agenda.requestGc(Ref.update(collected, (n) => n + 1)))
      expect(forming).toBeInstanceOf(AgendaError.GcTimeout)
      expect(forming).toMatchObject({ phase: "forming", timeoutMs: 300, busy: ["spins"] })
      expect(yield* Ref.get(collected)).toBe(0)
      // The other thread parked and was let go: it runs tasklets again.
      expect(yield* agenda.run(tasks.square, 3)).toBe(9)
      // Collectors that never end, even uninterruptibly: interrupted or left behind, the threads resume.
      for (const collector of [Effect.never, Effect.uninterruptible(Effect.never)]) {
        // Long enough for an idle thread to park on a loaded machine: the collector must start.
        const other = yield* ThreadAgenda.make({ threads: 1, gcTimeout: "2 seconds", onClose: "exit" })
        const collecting = yield* Effect.flip(other.requestGc(collector))
        expect(collecting).toMatchObject({ _tag: "GcTimeout", phase: "collecting", timeoutMs: 2000 })
        expect(yield* other.run(tasks.square, 4)).toBe(16)
        expect((yield* other.workers).map((w) => w.state)).toEqual(["Idle"])
        expect((yield* other.stats).gcCycles).toBe(0)
      }
      const report = yield* agenda.exit
      expect(stuck.outcome).toBe("Interrupted")
      expectBalanced(report.stats)
    }), 60_000)

  it.live("exit wins over a barrier that never forms and over a collector that never ends", () =>
    Effect.gen(function*() {
      for (const phase of ["forming", "collecting"] as const) {
        const agenda = yield* ThreadAgenda.make({ threads: 1, gcTimeout: "infinity", logFailures: false })
        const stuck = phase === "forming" ? yield* agenda.submit(tasks.stuck, undefined) : undefined
        if (stuck !== undefined) yield* eventually(Effect.sync(() => stuck.status === "Running"), "the stuck tasklet runs")
        const started = yield* Deferred.make<void>()
        const request = yield* Effect.forkChild(agenda.requestGc(Effect.andThen(Deferred.succeed(started, undefined), Effect.never)))
        if (phase === "collecting") yield* Deferred.await(started)
        else yield* eventually(Effect.map(agenda.workers, (ws) => ws[0].state === "Run"), "the barrier is forming")
        const report = yield* agenda.exit.pipe(
          Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.fail(new Error(`exit did not return (${phase})`)) })
        )
        const error = failureOf(yield* Fiber.await(request))
        expect(error).toBeInstanceOf(AgendaError.AgendaClosed)
        expect(error).toMatchObject({ state: "stopped", action: "requestGc" })
        expect((error as AgendaError.AgendaClosed).message).toContain("GC request")
        if (stuck !== undefined) expect(stuck.outcome).toBe("Interrupted")
        expectBalanced(report.stats)
      }
    }), 60_000)

  it.live("a GC request from inside a collector is served by the barrier it runs in", () =>
    Effect.gen(function*() {
      const agenda = yield* ThreadAgenda.make({ threads: 1, gcTimeout: "10 seconds", onClose: "exit" })
      const states = yield* Ref.make<ReadonlyArray<string>>([])
      const inner = Effect.flatMap(agenda.workers, (ws) => Ref.set(states, ws.map((w) => w.state)))
      yield* agenda.requestGc(agenda.requestGc(inner)).pipe(
        Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.fail(new Error("a nested GC request deadlocked")) })
      )
      expect(yield* Ref.get(states)).toEqual(["GC"])
      expect((yield* agenda.stats).gcCycles).toBe(1)
      expect(yield* agenda.run(tasks.square, 2)).toBe(4)
    }), 30_000)
})

describe("commands from worker threads", () => {
  const viaLoop = (platform: Layer.Layer<Platform.Platform, Platform.PlatformError>) =>
    Effect.gen(function*() {
      const got = yield* Deferred.make<number>()
      const loop = yield* EventLoop.make({ signals: [], defaultBindings: false })
      yield* loop.register({
        explanation: "a worker thread reports in",
        match: { _tag: "Command", byte: "W" },
        handle: (event) => Deferred.succeed(got, event.byte)
      })
      const agenda = yield* ThreadAgenda.make({ threads: 1, logFailures: false })
      const { commands } = yield* Platform.Platform
      yield* agenda.run(tasks.send, "W".charCodeAt(0))
      expect(yield* Deferred.await(got)).toBe("W".charCodeAt(0))
      const invalid = failureOf(yield* Effect.exit(agenda.run(tasks.send, 300)))
      expect(invalid).toBeInstanceOf(Platform.PlatformError)
      expect(invalid).toMatchObject({ reason: "InvalidByte" })
      return { relayed: (yield* agenda.threadStats).relayedCommands, writeFd: commands.writeFd }
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(platform, Agenda.layer({ workers: 1 }))))

  if (LinuxPlatform.isAvailable) {
    it.live("with the native platform a thread writes the byte to the loop's self-pipe itself", () =>
      Effect.gen(function*() {
        const { relayed: count, writeFd } = yield* viaLoop(LinuxPlatform.layer())
        expect(typeof writeFd).toBe("number")
        expect(count).toBe(0)
      }))
  }

  it.live("with the portable platform the main thread relays the byte", () =>
    Effect.gen(function*() {
      expect(yield* viaLoop(NodePlatform.layer())).toEqual({ relayed: 1, writeFd: undefined })
    }))
})
