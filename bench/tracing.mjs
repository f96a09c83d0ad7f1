// The cost of a span per tasklet: the same agenda and tasklets with no
// Tracer in the submitter's context (no spans) and with one (a span each).
import { Agenda } from "@refpersys/core"
import { Effect, Tracer } from "effect"
import { clock, interleave, perSecond, rows } from "./lib.mjs"

const CONCURRENCY = 4
const levels = ["High", "Normal", "Low"]

// A tracer that keeps nothing: Effect's own span objects, counted when they
// end, so the figure is the library's cost of making and ending spans and
// the count shows that one span per tasklet was made.
let ended = 0
class CountingSpan extends Tracer.NativeSpan {
  end(endTime, exit) {
    ended++
    super.end(endTime, exit)
  }
}
const tracer = Tracer.make({ span: (options) => new CountingSpan(options) })

const trivial = Effect.sync(() => {})
const resolved = Promise.resolve()
const awaitOne = Effect.promise(() => resolved)

/** Submits from a fiber (`submit` captures that fiber's context, tracer included). */
const agenda = (task, traced) => (n) => {
  const program = Effect.scoped(Effect.gen(function*() {
    const agenda = yield* Agenda.make({ workers: CONCURRENCY, capacity: n })
    const before = ended
    const t0 = clock()
    for (let i = 0; i < n; i++) yield* agenda.submit(task, { priority: levels[i % 3] })
    yield* agenda.whenIdle
    return { ...perSecond(n, t0), spans: (ended - before) / n }
  }))
  return Effect.runPromise(traced ? Effect.withTracer(program, tracer) : program)
}

const S = {
  trivial: "Agenda.submit, trivial, no tracer",
  trivialTraced: "Agenda.submit, trivial, tracer installed",
  promise: "Agenda.submit, await one promise, no tracer",
  promiseTraced: "Agenda.submit, await one promise, tracer installed"
}

export default {
  name: "tracing",
  title: "Tracing: a span per tasklet",
  method: "N tasklets (trivial `Effect.sync`, or one awaited resolved `Effect.promise`) submitted with " +
    "`yield* agenda.submit` from one fiber, 4 workers, priorities round-robin, timed until `whenIdle`. " +
    "*No tracer*: nothing in the submitter's context, so the agenda makes no spans. *Tracer installed*: " +
    "`Effect.withTracer` around the submitter with a tracer that makes Effect's own `NativeSpan`s and only " +
    "counts them when they end (*spans per tasklet* shows what was made). The ratios, traced over untraced in " +
    "the same round (per wall-clock second and per CPU-second), are what a span per tasklet costs. Subjects rotate, one warm-up round.",
  run: async ({ quick, rounds, progress }) => {
    const n = quick ? 20_000 : 50_000
    const subjects = [
      { name: S.trivial, run: () => agenda(trivial, false)(n) },
      { name: S.trivialTraced, run: () => agenda(trivial, true)(n) },
      { name: S.promise, run: () => agenda(awaitOne, false)(n) },
      { name: S.promiseTraced, run: () => agenda(awaitOne, true)(n) }
    ]
    const values = await interleave({ subjects, rounds, warmup: 1, progress, label: "tracing" })
    const r = rows("tracing", values)
    const metric = `tasklets/s, ${n.toLocaleString("en-US")} tasklets`
    const out = []
    for (const s of Object.values(S)) {
      out.push(r.measure(s, "value", "tasklets/s", { metric }))
      out.push(r.measure(s, "spans", "spans", { metric: "spans per tasklet" }))
    }
    for (const [traced, untraced] of [[S.trivialTraced, S.trivial], [S.promiseTraced, S.promise]]) {
      out.push(r.compare(traced, untraced, "value", { label: "tasklets/s ratio, traced / untraced" }))
      out.push(r.compare(traced, untraced, "cpu", { label: "tasklets per CPU-second ratio, traced / untraced" }))
    }
    return out
  }
}
