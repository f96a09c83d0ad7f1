// Benchmarks of the runtime against the peers people use, all in one process.
//
//   npm run bench                         every suite, full rounds
//   npm run bench -- --quick              every suite, short (under 3 minutes)
//   npm run bench -- --json out.json      also write machine-readable results
//   npm run bench -- --md report.md       also write the markdown report
//   npm run bench -- --only timers,memory only these suites
//   npm run bench -- --rounds 7           rounds per suite (default 5, quick 2)
//   npm run bench -- --subjects forEach   only subjects whose name contains this (repeatable)
//
// The markdown report goes to stdout, progress to stderr.
//
// A suite is a module whose default export is
//
//   {
//     name: "throughput",                       // used by --only and in the JSON
//     title: "Throughput: ...",                 // the report's heading
//     method: "how it is measured (markdown)",  // printed under the heading
//     run: async ({ quick, rounds, progress }) => rows,
//   }
//
// `progress(text)` reports what runs now (one line on stderr). `run` returns
// an array of rows, each
//
//   { subject, metric, unit, median, min, max, samples,
//     vs?, ratio?, target?, pass?, note? }
//
// where median/min/max are over rounds (or samples, as the suite says); a
// ratio row has unit "×", names the peer in `vs` and sets `ratio` to its
// median; a row with a `target` (text such as "≥ 10×", or "max ≤ 10 ms" when
// held to the worst round) says in `pass` whether it is met; `note` is shown
// beside the metric. lib.mjs has helpers for interleaved rounds, per-round
// ratios and targets. All suites share one process: each starts after a
// gc() and must release what it starts (scopes closed, pools destroyed). A
// suite that throws is reported as failed and the others still run.
//
// To add a suite, add its name to `suites` below.
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import { createRequire } from "node:module"
import { rowSelected, selectSubjects } from "./lib.mjs"

// Latency-sensitive suites first: the memory suite leaves a large old
// generation behind, whose collections would land in their samples. Each
// name is a module `./<name>.mjs` whose default export has that name.
const suites = [
  "throughput",
  "tasklets",
  "tracing",
  "latency",
  "fairness",
  "timers",
  "signals",
  "dispatch",
  "memory",
  "threads"
]

const parseArgs = (argv) => {
  const args = { quick: false, json: undefined, md: undefined, only: undefined, rounds: undefined, subjects: undefined }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === "--quick") args.quick = true
    else if (a === "--json") args.json = argv[++i]
    else if (a === "--md") args.md = argv[++i]
    else if (a === "--only") args.only = argv[++i].split(",")
    else if (a === "--rounds") args.rounds = Number(argv[++i])
    else if (a === "--subjects") (args.subjects ??= []).push(argv[++i])
    else if (a === "--help" || a === "-h") {
      process.stdout.write(fs.readFileSync(new URL(import.meta.url)).toString().split("\n").slice(0, 11).join("\n") + "\n")
      process.exit(0)
    } else throw new Error(`unknown argument ${a} (see --help)`)
  }
  if (args.rounds !== undefined && !(Number.isInteger(args.rounds) && args.rounds >= 1)) {
    throw new Error("--rounds takes a positive integer")
  }
  return args
}

const require = createRequire(import.meta.url)
const versionOf = (pkg) => {
  try {
    return require(`${pkg}/package.json`).version
  } catch {
    // Packages whose exports hide package.json: find it next to the entry point.
    let dir = require.resolve(pkg)
    while (dir !== "/") {
      dir = dir.slice(0, dir.lastIndexOf("/")) || "/"
      const file = `${dir}/package.json`
      if (fs.existsSync(file)) {
        const json = JSON.parse(fs.readFileSync(file, "utf8"))
        if (json.name === pkg) return json.version
      }
    }
    return "unknown"
  }
}

const machine = () => {
  const cpuinfo = fs.existsSync("/proc/cpuinfo") ? fs.readFileSync("/proc/cpuinfo", "utf8") : ""
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? "unknown"
  let kernel = os.release()
  try {
    kernel = execFileSync("uname", ["-sr"], { encoding: "utf8" }).trim()
  } catch {
    // uname missing: os.release() will do
  }
  return {
    cpu: model,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel,
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2)))
  }
}

const versions = () => ({
  node: process.version,
  effect: versionOf("effect"),
  "p-queue": versionOf("p-queue"),
  fastq: versionOf("fastq"),
  piscina: versionOf("piscina")
})

// ---- formatting

const fmt = (x, unit) => {
  if (!Number.isFinite(x)) return String(x)
  if (unit === "×") return x >= 100 ? `${x.toFixed(0)}×` : x >= 10 ? `${x.toFixed(1)}×` : `${x.toFixed(2)}×`
  const abs = Math.abs(x)
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3
  return x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

const table = (rows) => {
  const lines = [
    "| subject | metric | median | range | vs | target |",
    "|---|---|---|---|---|---|"
  ]
  for (const r of rows) {
    const unit = r.unit === "×" ? "" : ` ${r.unit}`
    const target = r.target === undefined ? "" : `${r.target} ${r.pass ? "✅ met" : "❌ missed"}`
    const metric = r.note === undefined ? r.metric : `${r.metric} ${r.note}`
    lines.push(
      `| ${r.subject} | ${metric} | ${fmt(r.median, r.unit)}${unit} | ${fmt(r.min, r.unit)} – ${fmt(r.max, r.unit)} | ${
        r.vs ?? ""
      } | ${target} |`
    )
  }
  return lines.join("\n")
}

const report = ({ args, info, results, elapsed }) => {
  const out = []
  out.push(`Run: \`npm run bench${args.quick ? " -- --quick" : ""}\`, ${new Date().toISOString().slice(0, 16)}Z, ${(elapsed / 1000).toFixed(0)} s`)
  out.push("")
  out.push(`Machine: ${info.machine.cpu}, ${info.machine.cores} cores, ${info.machine.memoryGiB} GiB, ${info.machine.kernel}; ` +
    `load average at start ${info.machine.loadAverage.join(" / ")}`)
  out.push("")
  out.push(`Versions: ${Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join(", ")}`)
  for (const { suite, rows } of results) {
    out.push("", `### ${suite.title}`, "", suite.method, "", table(rows))
  }
  const targets = results.flatMap((r) => r.rows.filter((row) => row.target !== undefined))
  const missed = targets.filter((t) => !t.pass)
  out.push("", `Targets: ${targets.length - missed.length} of ${targets.length} met.`)
  for (const t of missed) {
    const on = /^(max|min) /.exec(t.target)?.[1] ?? "median"
    out.push(`- missed: ${t.suite} / ${t.subject}${t.vs ? ` vs ${t.vs}` : ""}: ${on} ${fmt(t[on], t.unit)} (target ${t.target})`)
  }
  return out.join("\n") + "\n"
}

// ---- main

const main = async () => {
  const args = parseArgs(process.argv.slice(2))
  // The platform's handles do not keep the process alive (by design); the
  // suites wait on them, so something must.
  setInterval(() => {}, 1 << 30)
  if (globalThis.gc === undefined) {
    process.stderr.write("warning: run with --expose-gc (npm run bench does) for the memory suite and clean rounds\n")
  }
  const rounds = args.rounds ?? (args.quick ? 2 : 5)
  const info = { machine: machine(), versions: versions(), quick: args.quick, rounds }
  const tty = process.stderr.isTTY
  const started = performance.now()
  const progress = (name) => (text) => {
    const line = `[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${name}: ${text}`
    if (tty) process.stderr.write(`\r\x1b[K${line.slice(0, process.stderr.columns - 1)}`)
    else process.stderr.write(line + "\n")
  }
  const results = []
  const unknown = (args.only ?? []).filter((name) => !suites.includes(name))
  if (unknown.length > 0) throw new Error(`--only: no suite named ${unknown.join(", ")} (suites: ${suites.join(", ")})`)
  selectSubjects(args.subjects)
  for (const name of suites) {
    if (args.only !== undefined && !args.only.includes(name)) continue
    // Each suite starts from a collected heap (its warm-up round then lets
    // the young generation grow back).
    globalThis.gc?.()
    const t0 = performance.now()
    let suite = { name, title: name, method: "" }
    let rows
    try {
      // Loaded when it runs, so a suite whose imports fail is reported as
      // failed and the others still run.
      suite = (await import(`./${name}.mjs`)).default
      rows = (await suite.run({ quick: args.quick, rounds, progress: progress(suite.name) }))
        .filter(rowSelected)
        .map((row) => ({ ...row, suite: suite.name }))
    } catch (error) {
      // One broken suite must not lose the others' results.
      process.stderr.write(`\n${name} failed: ${error?.stack ?? error}\n`)
      rows = [{ suite: name, subject: "(suite failed)", metric: String(error?.message ?? error), unit: "", median: NaN, min: NaN, max: NaN, target: "runs", pass: false }]
    }
    results.push({ suite, rows })
    if (tty) process.stderr.write("\r\x1b[K")
    process.stderr.write(`${suite.name}: done in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
  }
  const elapsed = performance.now() - started
  const markdown = report({ args, info, results, elapsed })
  process.stdout.write(markdown)
  if (args.md !== undefined) fs.writeFileSync(args.md, markdown)
  if (args.json !== undefined) {
    const json = {
      ...info,
      elapsedSeconds: Math.round(elapsed / 1000),
      results: results.flatMap((r) => r.rows)
    }
    fs.writeFileSync(args.json, JSON.stringify(json, null, 2) + "\n")
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`bench failed: ${error?.stack ?? error}\n`)
    process.exit(1)
  }
)
