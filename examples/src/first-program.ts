/**
 * The README's first program: submit tasklets at two priorities, await them,
 * print the stats. Run with `node examples/dist/first-program.js` after a build.
 */
import { Agenda, PriorityScheduler } from "@refpersys/core"
import { Effect } from "effect"

const program = Effect.gen(function*() {
  // A tasklet is an Effect plus a priority, a label (shown in dumps and logs) and metadata.
  const urgent = yield* Agenda.submit(Effect.succeed("answered"), { priority: "High", label: "reply" })
  const chores = yield* Agenda.submit(Effect.log("compacting"), {
    priority: "Low",
    label: "compact",
    obsoleteAfter: "5 seconds" // dropped as obsolete if not started by then
  })
  console.log(yield* urgent.join)
  yield* chores.await
  console.log((yield* Agenda.stats).total) // submitted, completed, failed, ... and they add up
})

Effect.runPromise(program.pipe(
  Effect.provide(Agenda.layer({ workers: 4 })),
  Effect.provide(PriorityScheduler.layer())
))
