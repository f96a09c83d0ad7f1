/**
 * Properties for random workloads (fast-check, fixed seeds), beyond
 * the ones the core tests check on workloads queued up front:
 *
 * - picking while tasklets submit more tasklets as they run: each start is
 *   the one the documented policy (priority, FIFO per level, aging bound)
 *   picks from what is queued at that moment;
 * - accounting sampled while the agenda runs, not only at the end, with
 *   nested submissions, blocked submitters, GC barriers, interruptions and
 *   every way to stop;
 * - timeouts on the native kernel timer and the real clock: none early,
 *   fired in deadline order (ties in scheduling order), each once, cancelled
 *   ones never;
 * - event-loop accounting under every overflow policy: each posted event is
 *   dispatched, dropped by the policy or discarded at stop, and counted.
 *
 * @since 0.1.0
 */
import { Agenda, Event, EventLoop, Platform } from "@refpersys/core"
import type { Priority, Tasklet, Timeouts } from "@refpersys/core"
import { AgendaHarness, TestPlatform } from "@refpersys/testkit"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fc from "fast-check"
import * as Fiber from "effect/Fiber"
import { Checks } from "../internal/checks.js"
import { waitFor } from "../internal/probes.js"
import * as Runtime from "../internal/runtime.js"
import * as Scenario from "../Scenario.js"

const NAME = "properties"

/** Fixed seeds: a failure is reproducible with the seed and path fast-check prints. */
const SEED = 20_261_125

const sizes = {
  small: { picking: 30, accounting: 25, timeouts: 10, loop: 25 },
  full: { picking: 400, accounting: 300, timeouts: 60, loop: 300 }
}

const priorityArb = fc.constantFrom<Priority.Priority>("High", "Normal", "Low")
const LEVEL: Record<Priority.Priority, number> = { High: 0, Normal: 1, Low: 2 }

/** Counts what the generated workloads sent and what the checks accounted for. */
interface Tally {
  sent: number
  arrived: number
}

const firstLines = (text: string) => text.split("\n").slice(0, 8).join(" | ")

/**
 * fast-check's report (seed, path, counterexample) and what the property
 * threw: since fast-check 4 the latter is the report's `cause`, no longer
 * part of its message.
 */
const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? ` | because: ${firstLines(error.cause.message)}` : ""
  return `${firstLines(error.message)}${cause}`
}

const check = (name: string, checks: Checks, property: () => Promise<void>) =>
  Effect.promise(() =>
    property().then(
      () => undefined,
      (error: unknown) => checks.add(`${name}: ${describe(error)}`)
    )
  )

const fail = (message: string): never => {
  throw new Error(message)
}

// ---------------------------------------------------------------- picking

interface Spec {
  readonly priority: Priority.Priority
  /** Priorities of the tasklets this one submits when it runs. */
  readonly children: ReadonlyArray<Priority.Priority>
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  priority: priorityArb,
  children: fc.array(priorityArb, { maxLength: 3 })
})

/**
 * Replays a log of submissions and starts against the documented policy and
 * returns the first disagreement. Queues are FIFO per level; with aging `K`,
 * after `K` picks of higher levels while Low waits the next pick is Low, and
 * after `K` High picks while Normal waits the next is Normal (the counters
 * count only picks made while the lower level waits); otherwise the highest
 * non-empty level.
 */
const replay = (log: ReadonlyArray<readonly ["submit" | "start", string, number]>, aging: number | false): string | undefined => {
  const queues: [Array<string>, Array<string>, Array<string>] = [[], [], []]
  let sinceLow = 0
  let sinceNormal = 0
  for (const [what, label, level] of log) {
    if (what === "submit") {
      queues[level].push(label)
      continue
    }
    const highest = queues.findIndex((q) => q.length > 0)
    if (highest < 0) return `${label} started with nothing queued`
    const allowed = new Set<number>()
    if (aging !== false && queues[2].length > 0 && sinceLow >= aging) allowed.add(2)
    if (aging !== false && queues[1].length > 0 && sinceNormal >= aging) allowed.add(1)
    if (allowed.size === 0) allowed.add(highest)
    if (!allowed.has(level)) {
      return `${label} (level ${level}) started; the policy picks level ${[...allowed].join(" or ")} (queued ${queues.map((q) => q.length).join("/")}, picks since Low ${sinceLow}, High picks since Normal ${sinceNormal})`
    }
    if (queues[level][0] !== label) return `${label} started before ${queues[level][0]} of the same level`
    if (level === 2) sinceLow = 0
    else if (queues[2].length > 0) sinceLow++
    if (level === 1) sinceNormal = 0
    else if (level === 0 && queues[1].length > 0) sinceNormal++
    queues[level].shift()
  }
  return undefined
}

const picking = (runs: number, checks: Checks, tally: Tally) =>
  check("picking under dynamic submissions", checks, () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(specArb, { minLength: 1, maxLength: 40 }),
        fc.oneof(fc.constant(false as const), fc.integer({ min: 1, max: 5 })),
        (specs, aging) =>
          Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const h = yield* AgendaHarness.make({ workers: 1, aging, logFailures: false })
            const log: Array<readonly ["submit" | "start", string, number]> = []
            let next = 0
            const submit = (spec: Spec, depth: number): void => {
              const label = `t${next++}`
              const children = depth === 0 ? spec.children : []
              const body = Effect.sync(() => {
                log.push(["start", label, LEVEL[spec.priority]])
                for (const child of children) submit({ priority: child, children: [] }, depth + 1)
              })
              // Logged before the submission: the queue state the replay sees is the agenda's.
              log.push(["submit", label, LEVEL[spec.priority]])
              const handle = h.agenda.unsafeSubmit(body, { priority: spec.priority, label })
              if (!("id" in handle)) fail(`submission refused: ${handle.message}`)
            }
            const hold = yield* h.holdWorkers
            for (const spec of specs) submit(spec, 0)
            yield* hold.release
            yield* h.agenda.whenIdle
            const starts = log.filter(([what]) => what === "start").length
            tally.sent += next
            tally.arrived += starts
            if (starts !== next) fail(`${next} submitted, ${starts} started`)
            const wrong = replay(log, aging)
            if (wrong !== undefined) fail(wrong)
          })))
      ),
      { seed: SEED, numRuns: runs }
    ))

// ---------------------------------------------------------------- accounting

type Op = "succeed" | "fail" | "die" | "yield" | "sleep" | "nested" | "safePointLoop" | "interrupt" | "obsolete" | "gc"

const opArb = fc.record({
  priority: priorityArb,
  op: fc.constantFrom<Op>("succeed", "fail", "die", "yield", "sleep", "nested", "safePointLoop", "interrupt", "obsolete", "gc")
})

const accounting = (runs: number, checks: Checks, tally: Tally) =>
  check("accounting sampled while running", checks, () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { maxLength: 120 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom("quit", "exit", "quit with timeout"),
        fc.integer({ min: 0, max: 30 }),
        (ops, workers, capacity, submitters, ending, stopAfter) =>
          Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const agenda = yield* Agenda.make({ workers, capacity, logFailures: false })
            const handles: Array<Tasklet.TaskletHandle<unknown, unknown>> = []
            let refused = 0
            let snapshots = 0
            const track = (handle: Tasklet.TaskletHandle<unknown, unknown>) => void handles.push(handle)
            const body = (op: Op, priority: Priority.Priority): Effect.Effect<unknown, unknown> => {
              switch (op) {
                case "fail":
                  return Effect.fail("planned")
                case "die":
                  return Effect.die(new Error("planned"))
                case "yield":
                  return Effect.yieldNow
                case "sleep":
                  return Effect.sleep(1)
                case "nested":
                  return Effect.sync(() => {
                    const inner = agenda.unsafeSubmit(Effect.void, { priority })
                    if ("id" in inner) track(inner)
                    else refused++
                  })
                case "safePointLoop":
                  return Effect.repeat(Effect.andThen(Effect.yieldNow, Agenda.safePoint), { times: 20 })
                default:
                  return Effect.void
              }
            }
            // Several submitters, waiting for room when the queue is full.
            const work = (share: ReadonlyArray<typeof ops[number]>) =>
              Effect.forEach(share, ({ op, priority }) =>
                op === "gc"
                  ? Effect.asVoid(Effect.forkChild(Effect.result(agenda.requestGc(Effect.yieldNow))))
                  : agenda.submit(body(op, priority), { priority, ...(op === "obsolete" ? { obsoleteAfter: 0 } : {}) }).pipe(
                    Effect.tap((handle) => {
                      track(handle)
                      return op === "interrupt" ? handle.interruptFork : Effect.void
                    }),
                    Effect.catchTag("AgendaClosed", () => Effect.sync(() => void refused++)),
                    Effect.asVoid
                  ), { discard: true })
            // Sample the invariant while everything runs. The sampler is under
            // way before the submitters start: a fiber woken by another one
            // runs at once (Effect 4), so a short run could otherwise end and
            // interrupt a sampler that never took its first step.
            const sampler = yield* Effect.forkChild(Effect.forever(Effect.flatMap(agenda.stats, (stats) => {
              snapshots++
              for (const s of [stats.byPriority.High, stats.byPriority.Normal, stats.byPriority.Low, stats.total]) {
                if (!s.balanced) return Effect.die(new Error(`unbalanced snapshot: ${JSON.stringify(s)}`))
              }
              return Effect.yieldNow
            })))
            if (!(yield* waitFor(() => snapshots > 0, "10 seconds"))) fail("the sampler did not start within 10 seconds")
            const fibers = yield* Effect.forEach(
              Array.from({ length: submitters }, (_, i) => ops.filter((_, j) => j % submitters === i)),
              (share) => Effect.forkChild(work(share))
            )
            for (let i = 0; i < stopAfter; i++) yield* Effect.yieldNow
            const report = ending === "quit"
              ? yield* agenda.quit()
              : ending === "exit"
              ? yield* agenda.exit
              : yield* agenda.quit({ timeout: 1 })
            yield* Fiber.joinAll(fibers)
            yield* Fiber.interrupt(sampler)
            const sampled = yield* Fiber.await(sampler)
            if (Exit.isFailure(sampled) && !Cause.hasInterruptsOnly(sampled.cause)) fail(Cause.pretty(sampled.cause))
            const total = report.stats.total
            tally.sent += handles.length
            tally.arrived += handles.filter((h) => h.status === "Done").length
            if (!total.balanced) fail(`unbalanced at the end: ${JSON.stringify(total)}`)
            if (total.submitted !== handles.length) fail(`${total.submitted} submitted, ${handles.length} handles`)
            const notDone = handles.filter((h) => h.status !== "Done")
            if (notDone.length > 0) fail(`${notDone.length} handles not done after ${ending}`)
            const dropped = handles.filter((h) => h.outcome === "Dropped").length
            if (report.dropped !== dropped) fail(`report says ${report.dropped} dropped, handles say ${dropped}`)
            if (report.mode === "quit" && dropped > 0) fail(`a quit dropped ${dropped}`)
            if (snapshots === 0 && ops.length > 0) fail("the sampler never ran")
          })))
      ),
      { seed: SEED, numRuns: runs }
    ))

// ---------------------------------------------------------------- timeouts on the kernel timer

interface Planned {
  readonly kind: "after" | "at" | "every" | "nested"
  readonly delay: number
  readonly cancel: boolean
}

const plannedArb = fc.record({
  kind: fc.constantFrom<Planned["kind"]>("after", "after", "at", "every", "nested"),
  delay: fc.integer({ min: 0, max: 25 }),
  cancel: fc.boolean()
})

// One loop serves every run (each run registers its recorder in its own scope).
const timeouts = (runs: number, checks: Checks, tally: Tally) =>
  Effect.scoped(Effect.flatMap(Effect.orDie(Runtime.make({ loop: { signals: [] } })), ({ loop }) =>
  check("timeouts on the native timer", checks, () =>
    fc.assert(
      fc.asyncProperty(fc.array(plannedArb, { minLength: 1, maxLength: 40 }), (plan) =>
        Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const t = loop.timeouts
          interface Fired {
            readonly id: number
            readonly deadline: number
            readonly missed: number
            readonly at: number
          }
          // What the loop saw: each firing as a TimerFired event, in dispatch order.
          const fired: Array<Fired> = []
          yield* loop.register({
            explanation: "record every firing",
            match: { _tag: "TimerFired" },
            handle: (event) =>
              Effect.sync(() => void fired.push({ id: event.id, deadline: event.deadline, missed: event.missed, at: event.at }))
          })
          const oneShots: Array<Timeouts.TimeoutHandle> = []
          const cancelled = new Set<number>()
          // `before`/`after`: the clock around the `every` call, whose own reading starts the grid.
          const periodic: Array<{ handle: Timeouts.TimeoutHandle; before: number; after: number; interval: number; stopAt: number }> = []
          for (const p of plan) {
            if (p.kind === "every") {
              const interval = 3 + (p.delay % 5)
              const before = Date.now()
              const stopAt = 1 + (p.delay % 3)
              const h: Timeouts.TimeoutHandle = yield* t.every(
                interval,
                Effect.suspend(() => (h.fired >= stopAt ? Effect.asVoid(h.cancel) : Effect.void))
              )
              periodic.push({ handle: h, before, after: Date.now(), interval, stopAt })
              continue
            }
            // A nested one schedules another one-shot from inside its firing.
            const action = p.kind === "nested"
              ? Effect.flatMap(t.after(p.delay % 5, Effect.void), (h) => Effect.sync(() => void oneShots.push(h)))
              : Effect.void
            const h = p.kind === "at" ? yield* t.at(Date.now() + p.delay, action) : yield* t.after(p.delay, action)
            oneShots.push(h)
            if (p.cancel && (yield* h.cancel)) cancelled.add(h.id)
          }
          // A handle counts a firing when its timer fires, before the loop has
          // dispatched the event: wait for the events the checks count.
          const done = () =>
            oneShots.every((h) => cancelled.has(h.id) || fired.some((f) => f.id === h.id)) &&
            periodic.every((p) => p.handle.fired >= p.stopAt && fired.filter((f) => f.id === p.handle.id).length >= p.stopAt)
          if (!(yield* waitFor(done, "10 seconds"))) fail("not every timeout fired within 10 seconds")
          tally.sent += oneShots.length - cancelled.size + periodic.reduce((acc, p) => acc + p.stopAt, 0)
          tally.arrived += fired.length
          for (const f of fired) if (f.at < f.deadline) fail(`timeout #${f.id} fired ${f.deadline - f.at} ms early`)
          for (const h of oneShots) {
            const times = fired.filter((f) => f.id === h.id).length
            if (cancelled.has(h.id) && times > 0) fail(`cancelled timeout #${h.id} fired`)
            if (!cancelled.has(h.id) && times !== 1) fail(`timeout #${h.id} fired ${times} times`)
          }
          // One-shots fire in (deadline, id) order: ids count in scheduling order.
          const shots = fired.filter((f) => oneShots.some((h) => h.id === f.id))
          for (let i = 1; i < shots.length; i++) {
            const a = shots[i - 1]
            const b = shots[i]
            if (a.deadline > b.deadline || (a.deadline === b.deadline && a.id > b.id)) {
              fail(`timeout #${b.id} (deadline ${b.deadline}) fired after #${a.id} (deadline ${a.deadline})`)
            }
          }
          // Periodic deadlines sit on one grid, start + k × interval, started by the `every` call.
          for (const p of periodic) {
            const firings = fired.filter((f) => f.id === p.handle.id)
            const deadlines = firings.map((f) => f.deadline)
            // The first firing reports the grid's first tick as its deadline,
            // late or not (a late one counts the ticks it skipped in `missed`).
            const start = deadlines[0] - p.interval
            if (start < p.before || start > p.after) fail(`periodic #${p.handle.id} started its grid at ${start}, outside [${p.before}, ${p.after}]`)
            for (const d of deadlines) {
              if ((d - start) % p.interval !== 0) fail(`periodic #${p.handle.id} fired at ${d}, off its grid (${start} + k × ${p.interval})`)
            }
          }
        })))
      ),
      { seed: SEED, numRuns: runs }
    ))))

// ---------------------------------------------------------------- loop accounting

const eventArb = fc.oneof(
  fc.record({ kind: fc.constant("Signal" as const), n: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant("Command" as const), n: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("FdReady" as const), n: fc.integer({ min: 0, max: 9 }) })
)

const loopAccounting = (runs: number, checks: Checks, tally: Tally) =>
  check("event-loop accounting under every overflow policy", checks, () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(eventArb, { maxLength: 200 }),
        fc.constantFrom<"backpressure" | "dropNewest" | "dropOldest">("backpressure", "dropNewest", "dropOldest"),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom("quit", "exit"),
        fc.integer({ min: 0, max: 40 }),
        (events, overflow, capacity, batchSize, posters, ending, stopAfter) =>
          Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const { platform } = yield* TestPlatform.make()
            const agenda = yield* Agenda.make({ workers: 1 })
            const loop = yield* EventLoop.make({ capacity, overflow, batchSize, defaultBindings: false, signals: ["SIGUSR1"] }).pipe(
              Effect.provideService(Platform.Platform, platform),
              Effect.provideService(Agenda.Agenda, agenda)
            )
            yield* loop.register({ explanation: "slow", match: { _tag: "Signal" }, handle: () => Effect.yieldNow })
            yield* loop.register({ explanation: "fast", match: { _tag: "Command" }, handle: () => Effect.void })
            let accepted = 0
            let refused = 0
            const post = (e: typeof events[number]) => {
              const event = e.kind === "Signal"
                ? new Event.Signal({ signal: ["SIGUSR1", "SIGUSR2", "SIGHUP"][e.n], at: 0 })
                : e.kind === "Command"
                ? new Event.Command({ byte: e.n, at: 0 })
                : new Event.FdReady({ fd: 1000 + e.n, read: true, write: false, hup: false, error: false, at: 0 })
              return loop.post(event).pipe(
                Effect.matchEffect({
                  onFailure: () => Effect.sync(() => void refused++),
                  onSuccess: () => Effect.sync(() => void accepted++)
                })
              )
            }
            const fibers = yield* Effect.forEach(
              Array.from({ length: posters }, (_, i) => events.filter((_, j) => j % posters === i)),
              (share) => Effect.forkChild(Effect.forEach(share, post, { discard: true }))
            )
            for (let i = 0; i < stopAfter; i++) yield* Effect.yieldNow
            yield* ending === "quit" ? loop.quit : loop.exit
            const stopped = yield* loop.awaitStop
            yield* Fiber.joinAll(fibers)
            const s = yield* loop.stats
            const dispatched = s.events.Signal + s.events.Command + s.events.FdReady + s.events.TimerFired + s.events.ChildExit
            tally.sent += events.length
            tally.arrived += accepted + refused
            if (accepted + refused !== events.length) fail(`${events.length} posts, ${accepted} accepted and ${refused} refused`)
            if (dispatched + s.overflow + s.discardedAtStop !== accepted) {
              fail(`${accepted} accepted events, but ${dispatched} dispatched + ${s.overflow} dropped + ${s.discardedAtStop} discarded at stop`)
            }
            if (overflow === "backpressure" && s.overflow !== 0) fail(`backpressure dropped ${s.overflow}`)
            if (stopped.loop.state !== "stopped") fail("the loop is not stopped")
          })))
      ),
      { seed: SEED, numRuns: runs }
    ))

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "for random workloads: starts follow the priority and aging policy while tasklets submit tasklets; the accounting invariant holds at every sampled moment; timeouts on the kernel timer fire in deadline order, never early, once each; every event posted to the loop is dispatched, dropped or discarded, and counted",
  body: (size) =>
    Effect.gen(function*() {
      const n = sizes[size]
      const checks = new Checks()
      const tally: Tally = { sent: 0, arrived: 0 }
      const millis: Record<string, number> = {}
      const timed = (name: string, property: Effect.Effect<void>) =>
        Effect.gen(function*() {
          const start = performance.now()
          yield* property
          millis[`${name}Ms`] = Math.round(performance.now() - start)
          yield* Scenario.progress(NAME, `${name} done`)
        })
      yield* timed("picking", picking(n.picking, checks, tally))
      yield* timed("accounting", accounting(n.accounting, checks, tally))
      yield* timed("timeouts", timeouts(n.timeouts, checks, tally))
      yield* timed("loop", loopAccounting(n.loop, checks, tally))
      return {
        sent: tally.sent,
        arrived: tally.arrived,
        lost: Math.max(0, tally.sent - tally.arrived),
        violations: checks.list,
        figures: {
          seed: SEED,
          pickingRuns: n.picking,
          accountingRuns: n.accounting,
          timeoutRuns: n.timeouts,
          loopRuns: n.loop,
          ...millis
        }
      }
    })
})
