import { describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Option, References, Scope, Tracer } from "effect"
import { expect } from "vitest"
import * as Agenda from "../src/Agenda.js"
import * as Tasklet from "../src/Tasklet.js"

const Tenant = Context.Reference<string>("test/AgendaContext/Tenant", { defaultValue: () => "none" })

class Greeter extends Context.Service<Greeter, { readonly greet: (name: string) => string }>()("test/AgendaContext/Greeter") {}

/** What a tasklet sees of its context. */
const look = Effect.gen(function*() {
  const annotations = yield* References.CurrentLogAnnotations
  const minimumLogLevel = yield* References.MinimumLogLevel
  const tenant = yield* Tenant
  const greeter = yield* Effect.serviceOption(Greeter)
  const scope = yield* Effect.serviceOption(Scope.Scope)
  const span = yield* Effect.serviceOption(Tracer.ParentSpan)
  return {
    annotations,
    minimumLogLevel,
    tenant,
    greeting: Option.map(greeter, (g) => g.greet("tasklet")),
    hasScope: Option.isSome(scope),
    span: Option.map(span, (s) => s._tag === "Span" ? s.name : "external")
  }
})

/** A tasklet that changes its own context in place (as `annotateLogsScoped` would). */
const meddle = Effect.withFiber((fiber) => {
  fiber.setContext(
    Context.add(
      Context.add(fiber.context, Tenant, "leaked"),
      References.CurrentLogAnnotations,
      { leaked: true }
    )
  )
  return Effect.void
})

interface Recorded {
  readonly span: Tracer.Span
}

/** A tracer that keeps every span it makes. */
const recordingTracer = () => {
  const spans: Array<Recorded> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options)
      spans.push({ span })
      return span
    }
  })
  const named = (name: string) => spans.map((r) => r.span).filter((s) => s.name === name)
  return { tracer, spans, named }
}

const parentName = (span: Tracer.Span): string | undefined =>
  Option.getOrUndefined(Option.map(span.parent, (p) => (p._tag === "Span" ? p.name : "external")))

describe("tasklet context", () => {
  it.effect("a tasklet sees its submitter's annotations, log level, references, services and span", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 2 })
      const seen = yield* agenda.run(look).pipe(
        Effect.annotateLogs("request", "r1"),
        Effect.provideService(References.MinimumLogLevel, "Debug"),
        Effect.provideService(Tenant, "acme"),
        Effect.provideService(Greeter, Greeter.of({ greet: (name) => `hello ${name}` })),
        Effect.withSpan("submitter")
      )
      expect(seen).toEqual({
        annotations: { request: "r1" },
        minimumLogLevel: "Debug",
        tenant: "acme",
        greeting: Option.some("hello tasklet"),
        // The submitter's Scope (it.effect provides one) is not passed on.
        hasScope: false,
        span: Option.some("submitter")
      })
      // Another submitter's context, with nothing set, on the same agenda.
      const plain = yield* agenda.run(look)
      expect(plain).toMatchObject({ annotations: {}, tenant: "none", greeting: Option.none(), hasScope: false })
    }))

  it.effect("the accessor Agenda.submit passes the caller's services; a tasklet needing a Scope makes its own", () =>
    Effect.gen(function*() {
      const greeting = yield* Agenda.run(Effect.map(Effect.service(Greeter), (g) => g.greet("accessor"))).pipe(
        Effect.provideService(Greeter, Greeter.of({ greet: (name) => `hi ${name}` }))
      )
      expect(greeting).toBe("hi accessor")
      let closed = false
      const scoped = Effect.scoped(
        Effect.andThen(Effect.addFinalizer(() => Effect.sync(() => void (closed = true))), Effect.succeed("scoped"))
      )
      expect(yield* Agenda.run(scoped)).toBe("scoped")
      expect(closed).toBe(true)
    }).pipe(Effect.provide(Agenda.layer({ workers: 1 }))))

  it.effect("what a tasklet changes in its context never reaches the next tasklet on the same worker", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1 })
      const submitted = Effect.gen(function*() {
        const a = yield* agenda.submit(Effect.andThen(meddle, look))
        const b = yield* agenda.submit(look)
        return [yield* a.join, yield* b.join] as const
      })
      const [a, b] = yield* submitted.pipe(Effect.provideService(Tenant, "acme"))
      expect(a).toMatchObject({ tenant: "leaked", annotations: { leaked: true } })
      expect(b).toMatchObject({ tenant: "acme", annotations: {} })
      expect((yield* agenda.workers)[0].completed).toBe(2)
    }))

  it.effect("a fiber a tasklet forks inherits its context and ends with it", () =>
    Effect.gen(function*() {
      const agenda = yield* Agenda.make({ workers: 1 })
      const childSaw = yield* Deferred.make<string>()
      const childEnded = yield* Deferred.make<Exit.Exit<unknown, unknown>>()
      const whenTaskletEnded = yield* agenda.run(
        Effect.gen(function*() {
          const child = yield* Effect.forkChild(
            Effect.andThen(Effect.flatMap(Effect.service(Tenant), (t) => Deferred.succeed(childSaw, t)), Effect.never)
          )
          child.addObserver((exit) => Deferred.doneUnsafe(childEnded, Effect.succeed(exit)))
          yield* Deferred.await(childSaw)
          return child.pollUnsafe() === undefined ? "child running" : "child ended"
        }).pipe(Effect.provideService(Tenant, "inner"))
      ).pipe(Effect.provideService(Tenant, "outer"))
      expect(whenTaskletEnded).toBe("child running")
      expect(yield* Deferred.await(childSaw)).toBe("inner")
      const exit = yield* Deferred.await(childEnded)
      expect(Exit.hasInterrupts(exit)).toBe(true)
    }))
})

describe("tasklet tracing", () => {
  it.effect("with a tracer installed, each tasklet runs in a span named by its label, child of the submitter's", () =>
    Effect.gen(function*() {
      const { named, tracer } = recordingTracer()
      const agenda = yield* Agenda.make({ workers: 2, name: "traced" })
      yield* Effect.gen(function*() {
        yield* agenda.run(Effect.withSpan(Effect.yieldNow, "inner"), { label: "async-tasklet", priority: "High" })
        yield* agenda.run(Tasklet.sync(() => 1), { label: "sync-tasklet", priority: "Low" })
        yield* Effect.exit(agenda.run(Effect.fail("no"), { label: "failing-tasklet" }))
        yield* agenda.run(Effect.void.pipe(Effect.andThen(Effect.yieldNow)))
      }).pipe(Effect.withSpan("submitter"), Effect.provideService(Tracer.Tracer, tracer))
      const [submitter] = named("submitter")
      const [asyncSpan] = named("async-tasklet")
      const [inner] = named("inner")
      const [syncSpan] = named("sync-tasklet")
      const [failing] = named("failing-tasklet")
      const [unlabelled] = named("tasklet")
      expect(parentName(asyncSpan)).toBe("submitter")
      expect(parentName(syncSpan)).toBe("submitter")
      expect(parentName(failing)).toBe("submitter")
      expect(parentName(unlabelled)).toBe("submitter")
      expect(parentName(inner)).toBe("async-tasklet")
      expect(asyncSpan.traceId).toBe(submitter.traceId)
      expect(Object.fromEntries(asyncSpan.attributes)).toMatchObject({
        "agenda.name": "traced",
        "tasklet.label": "async-tasklet",
        "tasklet.priority": "High",
        "tasklet.outcome": "Completed"
      })
      expect(typeof asyncSpan.attributes.get("tasklet.id")).toBe("number")
      expect([0, 1]).toContain(asyncSpan.attributes.get("agenda.worker"))
      expect(asyncSpan.attributes.get("tasklet.wait_ms")).toBeGreaterThanOrEqual(0)
      expect(syncSpan.attributes.get("tasklet.priority")).toBe("Low")
      expect(failing.attributes.get("tasklet.outcome")).toBe("Failed")
      for (const span of [asyncSpan, syncSpan, failing, unlabelled, inner]) expect(span.status._tag).toBe("Ended")
      const ended = (span: Tracer.Span) => (span.status._tag === "Ended" ? span.status.exit : undefined)
      expect(Exit.isSuccess(ended(asyncSpan)!)).toBe(true)
      expect(Exit.isFailure(ended(failing)!)).toBe(true)
    }))

  it.effect("no span is made with traceTasklets: false, nor without an installed tracer", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const quiet = yield* Agenda.make({ workers: 1, traceTasklets: false })
      yield* quiet.run(Effect.yieldNow, { label: "quiet" }).pipe(Effect.provideService(Tracer.Tracer, tracer))
      expect(spans.map((r) => r.span.name)).toEqual([])
      const agenda = yield* Agenda.make({ workers: 1 })
      // Spans made inside the tasklet still go to the tracer in its context.
      yield* agenda.run(Effect.withSpan(Effect.void, "inside"), { label: "outer" }).pipe(
        Effect.provideService(Tracer.Tracer, tracer)
      )
      expect(spans.map((r) => r.span.name)).toEqual(["outer", "inside"])
      // No tracer installed: the tasklet still sees its submitter's span, and no span is made for it.
      const seen = yield* agenda.run(look, { label: "untraced" }).pipe(Effect.withSpan("plain"))
      expect(seen.span).toEqual(Option.some("plain"))
      expect(spans.map((r) => r.span.name)).toEqual(["outer", "inside"])
      expect(yield* Effect.flip(Agenda.make({ traceTasklets: "yes" as unknown as boolean }))).toMatchObject({
        _tag: "InvalidOptions",
        option: "traceTasklets"
      })
    }))
})
