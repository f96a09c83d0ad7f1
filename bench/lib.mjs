// Shared helpers of the benchmark suites: statistics, interleaved rounds,
// per-round ratios and result rows. See run.mjs for the suite module shape.

/** Nearest-rank percentile of an unsorted array (p in 0..100). */
export const percentile = (xs, p) => {
  if (xs.length === 0) return NaN
  const sorted = Float64Array.from(xs).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]
}

export const median = (xs) => percentile(xs, 50)

/** Median, min and max of a list of per-round values. */
export const spread = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), samples: xs.length })

/** Collects garbage (when run with --expose-gc) so one subject's garbage is not billed to the next. */
export const collect = () => {
  globalThis.gc?.()
}

/** Starts the clocks `perSecond` reads: wall time and the process's CPU time. */
export const clock = () => ({ wall: performance.now(), cpu: process.cpuUsage() })

/**
 * Rates since `clock()`: `value` per wall-clock second, `cpu` per second of
 * the process's CPU time (all its threads, so GC helpers count). On a shared
 * machine the second is what other processes do not take away.
 */
export const perSecond = (n, start) => {
  const wall = (performance.now() - start.wall) / 1000
  const used = process.cpuUsage(start.cpu)
  return { value: n / wall, cpu: n / ((used.user + used.system) / 1e6) }
}

/** Busy-waits `us` microseconds: the body of a task that keeps a worker busy. */
export const spin = (us) => {
  const end = performance.now() + us / 1000
  while (performance.now() < end) {
    // busy
  }
}

// `--subjects` (run.mjs): only the subjects whose name contains one of these
// strings (case-insensitive) run, and rows about the others are dropped.
let subjectFilter
export const selectSubjects = (names) => {
  subjectFilter = names?.map((n) => n.toLowerCase())
}
export const selected = (name) => subjectFilter === undefined || subjectFilter.some((n) => name.toLowerCase().includes(n))

/** A row survives the filter when its subject, and its peer if any, ran. */
export const rowSelected = (row) =>
  row.subject === "(suite failed)" || (selected(row.subject) && (row.vs === undefined || selected(row.vs)))

/**
 * Runs every subject once per round, in an order that rotates each round so
 * no subject always runs first (warm caches) or follows the same neighbour
 * (whose garbage it may pay for). `warmup` rounds run first and are
 * discarded. Each subject's `run()` returns a number or an object of named
 * numbers (one per metric) for that round.
 *
 * No `gc()` between subjects unless `collectBetween`: a forced full GC
 * shrinks V8's young generation, and the next subject then pays for many
 * more scavenges than it would in a running process (measured: up to 5× on
 * 10,000-task runs, for every subject).
 *
 * Returns, per subject name, per metric, the list of per-round values.
 */
export const interleave = async ({ subjects: all, rounds, warmup = 1, progress, label, collectBetween = false }) => {
  const subjects = all.filter((s) => selected(s.name))
  const values = new Map(subjects.map((s) => [s.name, new Map()]))
  const total = warmup + rounds
  for (let r = 0; r < total; r++) {
    const shift = r % subjects.length
    const order = [...subjects.slice(shift), ...subjects.slice(0, shift)]
    for (const subject of order) {
      progress?.(`${label}: ${r < warmup ? "warm-up" : `round ${r - warmup + 1}/${rounds}`} ${subject.name}`)
      if (collectBetween) collect()
      const result = await subject.run()
      if (r < warmup) continue
      const metrics = typeof result === "number" ? { value: result } : result
      const byMetric = values.get(subject.name)
      for (const [metric, value] of Object.entries(metrics)) {
        if (!byMetric.has(metric)) byMetric.set(metric, [])
        byMetric.get(metric).push(value)
      }
    }
  }
  return values
}

/**
 * Builds result rows from `interleave` values.
 *
 * - `measure(subject, metric, unit)`: a row with the median and range over rounds.
 * - `compare(subject, vs, metric, { target, higherIsBetter })`: the ratio
 *   subject / vs computed in each round (both ran in that round), then its
 *   median and range. `target` is `{ op: ">=" | "<=", value }`; the row's
 *   `pass` says whether the median meets it.
 */
export const rows = (suite, values) => {
  const get = (subject, metric) => {
    const xs = values.get(subject)?.get(metric)
    // Filtered out by --subjects: NaN rows, which run.mjs drops.
    if (xs === undefined && !selected(subject)) return [NaN]
    if (xs === undefined) throw new Error(`${suite}: no values for ${subject} / ${metric}`)
    return xs
  }
  return {
    get,
    measure: (subject, metric, unit, extra = {}) => ({ suite, subject, metric, unit, ...spread(get(subject, metric)), ...extra }),
    compare: (subject, vs, metric, { target, vsMetric = metric, label } = {}) => {
      const a = get(subject, metric)
      const b = get(vs, vsMetric)
      const ratios = a.map((x, i) => x / b[i])
      const s = spread(ratios)
      const row = { suite, subject, metric: label ?? `${metric} ratio`, vs, unit: "×", ...s, ratio: s.median }
      return target === undefined ? row : withTarget(row, target)
    }
  }
}

/** Marks a row with a target and whether its median (or `on`: "max", "min") meets it. */
export const withTarget = (row, { op, value, text, on = "median" }) => ({
  ...row,
  target: text ?? `${on === "median" ? "" : `${on} `}${op === ">=" ? "≥" : "≤"} ${value}${row.unit === "×" ? "×" : ` ${row.unit}`}`,
  pass: op === ">=" ? row[on] >= value : row[on] <= value
})

/** Resolves when `predicate()` holds, polling with setImmediate (never a fixed sleep). */
export const until = (predicate) =>
  new Promise((resolve) => {
    const check = () => (predicate() ? resolve() : setImmediate(check))
    check()
  })
