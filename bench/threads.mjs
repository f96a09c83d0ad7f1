// Thread agenda benchmarks: CPU-bound scaling from 1 to 2 threads, and
// throughput of small tasks against piscina (one message per task) where the
// thread agenda sends tasklets and results in batches.
//
//   node bench/threads.mjs [--quick] [--rounds n]     standalone, after `npm run build`
//
// As a suite of bench/run.mjs: the default export. Worker threads import this
// module for its task exports (ThreadTask implementations for the agenda,
// plain functions for piscina); the benchmark itself only runs in the main
// thread.
import * as ThreadTask from "@refpersys/threads/ThreadTask"
import * as Schema from "effect/Schema"
import { fileURLToPath } from "node:url"
import { isMainThread } from "node:worker_threads"

// ---- the work, shared by both pools

/** A CPU-bound loop; `n` iterations (about 2 ms for 600,000 on the development VM). */
const spinWork = (n) => {
  let x = 0
  for (let i = 0; i < n; i++) x = (x + Math.sqrt(i * 1.0001)) % 1e9
  return x
}

/** A small task: a few arithmetic steps. */
const smallWork = (n) => {
  let s = n
  for (let i = 0; i < 16; i++) s = (s * 31 + i) % 1_000_003
  return s
}

export const cpu = ThreadTask.implement(
  ThreadTask.make({ module: import.meta.url, export: "cpu", args: Schema.Number, success: Schema.Number }),
  spinWork
)

export const small = ThreadTask.implement(
  ThreadTask.make({ module: import.meta.url, export: "small", args: Schema.Number, success: Schema.Number }),
  smallWork
)

// piscina calls plain named exports.
export const piscinaCpu = spinWork
export const piscinaSmall = smallWork

// ---- the suite (main thread only)

const CPU_ITERATIONS = 600_000

const suite = {
  name: "threads",
  title: "Threads: CPU scaling and small-task throughput (ThreadAgenda vs piscina)",
  method: [
    "Pools start before the rounds (start-up is not measured) and stay warm; each round runs every subject once, in rotating order, after one warm-up round.",
    `**CPU scaling**: N tasks of ${CPU_ITERATIONS.toLocaleString("en-US")} \`Math.sqrt\` iterations (about 2 ms each) on a ThreadAgenda with 1 and with 2 threads; the ratio is the 2-thread rate over the 1-thread rate in the same round (target ≥ 1.8× on 2 cores).`,
    "**Small tasks**: N tasks of a few arithmetic steps (Schema.Number in and out), all submitted at once, on 2 threads: ThreadAgenda (`unsafeSubmit` then `whenIdle`) vs piscina 5 (`Promise.all` of `run`); ratio in the same round (target ≥ 2×).",
    "Rates are tasks per second, end to end (submission to the last result on the main thread). *Cores obtained* is the process's CPU time (all threads) over wall time during the 2-thread CPU runs; *tasks per CPU-second ratio* compares 2 threads with 1 per CPU-second, which other processes on a shared machine do not distort."
  ].join("\n\n"),
  run: async ({ quick = false, rounds, progress } = {}) => {
    const [{ Effect, Exit, Scope }, { ThreadAgenda }, lib, piscinaModule] = await Promise.all([
      import("effect"),
      import("@refpersys/threads"),
      import("./lib.mjs"),
      import("piscina")
    ])
    const Piscina = piscinaModule.Piscina ?? piscinaModule.default
    rounds ??= quick ? 2 : 5
    const cpuTasks = quick ? 60 : 300
    const smallTasks = quick ? 20_000 : 100_000

    const scope = Effect.runSync(Scope.make())
    const agenda = (options) => Effect.runPromise(Scope.provide(ThreadAgenda.make(options), scope))
    progress?.("starting pools")
    const one = await agenda({ name: "bench-1", threads: 1, logFailures: false, capacity: smallTasks })
    const two = await agenda({ name: "bench-2", threads: 2, logFailures: false, capacity: smallTasks })
    const pool = new Piscina({ filename: import.meta.url, minThreads: 2, maxThreads: 2 })

    // Rate, and the cores the process actually got meanwhile (CPU time of all
    // its threads over wall time): on a shared machine the second tells
    // whether a low scaling figure is the library's or the neighbours'.
    const timed = async (n, body) => {
      const cpu0 = process.cpuUsage()
      const t0 = performance.now()
      await body()
      const ms = performance.now() - t0
      const cpu = process.cpuUsage(cpu0)
      return { rate: n / (ms / 1000), cores: (cpu.user + cpu.system) / 1000 / ms }
    }
    const runAgenda = (agenda, task, n, arg) =>
      timed(n, () => {
        for (let i = 0; i < n; i++) {
          const handle = agenda.unsafeSubmit(task, arg ?? i)
          if (handle._tag !== undefined) throw handle
        }
        return Effect.runPromise(agenda.whenIdle)
      })
    const runPiscina = (name, n, arg) =>
      timed(n, () => {
        const pending = new Array(n)
        for (let i = 0; i < n; i++) pending[i] = pool.run(arg ?? i, { name })
        return Promise.all(pending)
      })

    try {
      // Loads the task module in every thread before anything is timed.
      await Promise.all([runAgenda(one, cpu, 4, 10), runAgenda(two, cpu, 4, 10), runPiscina("piscinaCpu", 4, 10)])
      const scaling = await lib.interleave({
        label: "cpu",
        rounds,
        progress,
        subjects: [
          { name: "ThreadAgenda, 1 thread", run: () => runAgenda(one, cpu, cpuTasks, CPU_ITERATIONS) },
          { name: "ThreadAgenda, 2 threads", run: () => runAgenda(two, cpu, cpuTasks, CPU_ITERATIONS) },
          { name: "piscina, 2 threads", run: () => runPiscina("piscinaCpu", cpuTasks, CPU_ITERATIONS) }
        ]
      })
      const batchesBefore = Effect.runSync(two.threadStats)
      const throughput = await lib.interleave({
        label: "small tasks",
        rounds,
        progress,
        subjects: [
          { name: "ThreadAgenda, 2 threads", run: () => runAgenda(two, small, smallTasks) },
          { name: "piscina, 2 threads", run: () => runPiscina("piscinaSmall", smallTasks) }
        ]
      })
      const batchesAfter = Effect.runSync(two.threadStats)
      const perBatch = (batchesAfter.dispatched - batchesBefore.dispatched) /
        Math.max(1, batchesAfter.batches - batchesBefore.batches)
      const perResult = (batchesAfter.dispatched - batchesBefore.dispatched) /
        Math.max(1, batchesAfter.resultBatches - batchesBefore.resultBatches)

      const cpuRows = lib.rows("threads", scaling)
      const smallRows = lib.rows("threads", throughput)
      // Tasks per CPU-second of the whole process, 2 threads over 1: the cost of going parallel, whatever the load.
      const perCpu = (subject) => {
        const rate = cpuRows.get(subject, "rate")
        const cores = cpuRows.get(subject, "cores")
        return rate.map((r, i) => r / cores[i])
      }
      const efficiency = lib.spread(perCpu("ThreadAgenda, 2 threads").map((x, i) => x / perCpu("ThreadAgenda, 1 thread")[i]))
      return [
        cpuRows.measure("ThreadAgenda, 1 thread", "rate", "tasks/s", { metric: "CPU tasks/s" }),
        cpuRows.measure("ThreadAgenda, 2 threads", "rate", "tasks/s", { metric: "CPU tasks/s" }),
        cpuRows.measure("piscina, 2 threads", "rate", "tasks/s", { metric: "CPU tasks/s" }),
        cpuRows.compare("ThreadAgenda, 2 threads", "ThreadAgenda, 1 thread", "rate", {
          label: "CPU scaling 1 → 2 threads",
          target: { op: ">=", value: 1.8 }
        }),
        cpuRows.measure("ThreadAgenda, 2 threads", "cores", "cores", { metric: "cores obtained (CPU time / wall time)" }),
        {
          subject: "ThreadAgenda, 2 threads",
          vs: "ThreadAgenda, 1 thread",
          metric: "tasks per CPU-second ratio",
          unit: "×",
          ...efficiency,
          ratio: efficiency.median
        },
        cpuRows.compare("ThreadAgenda, 2 threads", "piscina, 2 threads", "rate", { label: "CPU tasks/s ratio" }),
        smallRows.measure("ThreadAgenda, 2 threads", "rate", "tasks/s", {
          metric: "small tasks/s",
          note: `(${perBatch.toFixed(1)} tasks per dispatch message, ${perResult.toFixed(1)} per result message)`
        }),
        smallRows.measure("piscina, 2 threads", "rate", "tasks/s", { metric: "small tasks/s" }),
        smallRows.compare("ThreadAgenda, 2 threads", "piscina, 2 threads", "rate", {
          label: "small tasks/s ratio",
          target: { op: ">=", value: 2 }
        })
      ].map((row) => ({ suite: "threads", ...row }))
    } finally {
      await pool.destroy()
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }
}

export default suite

// ---- standalone

const standalone = isMainThread && process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]
if (standalone) {
  const argv = process.argv.slice(2)
  const quick = argv.includes("--quick")
  const roundsAt = argv.indexOf("--rounds")
  const rounds = roundsAt >= 0 ? Number(argv[roundsAt + 1]) : undefined
  const started = performance.now()
  const rows = await suite.run({
    quick,
    rounds,
    progress: (text) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${text}\n`)
  })
  const fmt = (x, unit) =>
    unit === "×" ? `${x.toFixed(2)}×` : x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toFixed(2)
  const lines = ["| subject | metric | median | range | target |", "|---|---|---|---|---|"]
  for (const r of rows) {
    const unit = r.unit === "×" ? "" : ` ${r.unit}`
    const subject = r.vs === undefined ? r.subject : `${r.subject} vs ${r.vs}`
    const target = r.target === undefined ? "" : `${r.target} ${r.pass ? "met" : "missed"}`
    lines.push(
      `| ${subject} | ${r.metric} | ${fmt(r.median, r.unit)}${unit} | ${fmt(r.min, r.unit)} – ${fmt(r.max, r.unit)} | ${target} |` +
        (r.note === undefined ? "" : ` ${r.note}`)
    )
  }
  process.stdout.write(lines.join("\n") + "\n")
}
