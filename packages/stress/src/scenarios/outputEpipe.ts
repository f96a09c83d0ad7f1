/**
 * Output EPIPE: the demo daemon (`rps-daemon`, built) in a child process
 * loses one of its outputs while it works: the parent closes its end of the
 * child's stdout pipe, or of its stderr pipe, or a reader of `rps.out` goes
 * away with replies unread. The daemon is then made to write there (status
 * lines, unknown command bytes that log, dumps, JSON-RPC replies, tasklets
 * submitted by RPC), and stopped with SIGTERM. It must exit by itself with
 * code 0, leave no pid file and no FIFO, and report outcomes that add up
 * (on stdout, or on stderr when stdout was the lost stream).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Checks } from "../internal/checks.js"
import { waitFor } from "../internal/probes.js"
import * as Scenario from "../Scenario.js"

const NAME = "output-epipe"

const sizes = { small: { runs: 3, submits: 5 }, full: { runs: 30, submits: 50 } }

type Lost = "stdout" | "stderr" | "rps.out"
const kinds: ReadonlyArray<Lost> = ["stdout", "stderr", "rps.out"]

const daemonBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "daemon", "dist", "bin", "daemon.js")

/** What one run found. */
interface Run {
  readonly submitted: number
  readonly ended: number
  readonly killed: boolean
  readonly violations: ReadonlyArray<string>
}

interface Daemon {
  readonly child: ChildProcess
  readonly dir: string
  readonly stdoutLines: Array<string>
  readonly stderrText: () => string
  readonly closed: () => boolean
  readonly code: () => number | null
}

const spawnDaemon = Effect.acquireRelease(
  Effect.sync((): Daemon => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "refpersys-stress-epipe-"))
    const child = spawn(process.execPath, [daemonBin, "--json", "--runtime-dir", dir, "--rate", "200", "--status-interval", "50"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    const stdoutLines: Array<string> = []
    let partial = ""
    let stderr = ""
    let closed = false
    let code: number | null = null
    child.stdout!.setEncoding("utf8")
    child.stdout!.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n")
      partial = parts.pop() ?? ""
      stdoutLines.push(...parts)
    })
    // A closed pipe's end errors on this side too: expected here.
    child.stdout!.on("error", () => {})
    child.stderr!.on("error", () => {})
    child.stderr!.setEncoding("utf8")
    child.stderr!.on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("close", (c) => {
      closed = true
      code = c
    })
    return { child, dir, stdoutLines, stderrText: () => stderr, closed: () => closed, code: () => code }
  }),
  (d) =>
    Effect.sync(() => {
      if (!d.closed()) d.child.kill("SIGKILL")
      fs.rmSync(d.dir, { recursive: true, force: true })
    })
)

const writeCmd = (dir: string, text: string): boolean => {
  try {
    const fd = fs.openSync(path.join(dir, "rps.cmd"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
    try {
      fs.writeSync(fd, text)
    } finally {
      fs.closeSync(fd)
    }
    return true
  } catch {
    return false
  }
}

/** A minimal JSON-RPC call over the FIFO pair: opens `rps.out` first, sends, reads until its id comes back. */
const call = (dir: string, method: string, id: string, params?: object) =>
  Effect.acquireUseRelease(
    Effect.sync(() => fs.openSync(path.join(dir, "rps.out"), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)),
    (fd) =>
      Effect.gen(function*() {
        const request = { jsonrpc: "2.0", method, id, ...(params === undefined ? {} : { params }) }
        if (!writeCmd(dir, JSON.stringify(request) + "\n")) return undefined
        const buffer = Buffer.alloc(1 << 16)
        let text = ""
        let found: any = undefined
        yield* waitFor(() => {
          try {
            text += buffer.subarray(0, fs.readSync(fd, buffer)).toString()
          } catch {
            // EAGAIN: nothing yet
          }
          for (const line of text.split("\n")) {
            if (!line.includes(`"${id}"`)) continue
            try {
              const reply = JSON.parse(line)
              if (reply.id === id) found = reply
            } catch {
              // a partial line
            }
          }
          return found !== undefined
        }, "15 seconds")
        return found as { result?: any; error?: any } | undefined
      }),
    (fd) => Effect.sync(() => fs.closeSync(fd))
  )

const outputLost = (dir: string, which: "stdoutLost" | "stderrLost", n: number) =>
  Effect.map(call(dir, "stats", `lost-${n}`), (reply) => reply?.result?.output?.[which] === true)

const stoppedIn = (lines: ReadonlyArray<string>): any =>
  lines.flatMap((line) => {
    if (!line.startsWith("{")) return []
    try {
      const value = JSON.parse(line)
      return value.event === "stopped" ? [value] : []
    } catch {
      return []
    }
  })[0]

const oneRun = (lost: Lost, submits: number): Effect.Effect<Run> =>
  Effect.scoped(Effect.gen(function*() {
    const checks = new Checks()
    const d = yield* spawnDaemon
    const ready = yield* waitFor(() => d.stdoutLines.some((l) => l.includes('"event":"ready"')), "30 seconds")
    if (!ready) return { submitted: 0, ended: 0, killed: false, violations: [`no ready line: ${d.stderrText().slice(-400)}`] }

    let submitted = 0
    const submit = (n: number) =>
      Effect.map(
        call(d.dir, "submit", `submit-${lost}-${n}`, { count: 10, spinMicros: 50, label: "epipe" }),
        (reply) => {
          if (reply?.result !== undefined) submitted += reply.result.submitted
        }
      )
    if (lost === "stdout" || lost === "stderr") {
      d.child[lost]!.destroy()
      // Status lines (stdout) and unknown bytes that log (stderr) meet the closed pipe.
      let seen = false
      for (let n = 1; !seen && n <= 500; n++) {
        writeCmd(d.dir, "Z")
        seen = yield* outputLost(d.dir, lost === "stdout" ? "stdoutLost" : "stderrLost", n)
      }
      checks.that(seen, `the daemon never reported ${lost} as lost`)
    } else {
      // A reader that takes one reply and goes away with the others unread.
      const reader = fs.openSync(path.join(d.dir, "rps.out"), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
      writeCmd(d.dir, Array.from({ length: 20 }, (_, i) => JSON.stringify({ jsonrpc: "2.0", method: "stats", id: `gone-${i}` })).join("\n") + "\n")
      const buffer = Buffer.alloc(256)
      let got = 0
      yield* waitFor(() => {
        try {
          got += fs.readSync(reader, buffer)
        } catch {
          // EAGAIN
        }
        return got > 0
      }, "15 seconds")
      fs.closeSync(reader)
      checks.that(got > 0, "no reply reached the first rps.out reader")
    }
    for (let i = 0; i < submits; i++) {
      writeCmd(d.dir, "ZD\n")
      yield* submit(i)
    }
    const still = yield* call(d.dir, "stats", "still-there")
    checks.that(still?.result?.pid === d.child.pid, `the daemon stopped answering after losing ${lost}`)

    d.child.kill("SIGTERM")
    const exited = yield* waitFor(d.closed, "30 seconds")
    if (!exited) return { submitted, ended: 0, killed: true, violations: [...checks.list, `did not exit within 30 s of SIGTERM`] }
    checks.equal("exit code", d.code(), 0)
    const left = fs.readdirSync(d.dir)
    checks.that(left.length === 0, `left behind in the runtime directory: ${left.join(", ")}`)
    const stopped = stoppedIn(lost === "stdout" ? d.stderrText().split("\n") : d.stdoutLines)
    if (stopped === undefined) {
      checks.add(`no stopped line (looked on ${lost === "stdout" ? "stderr" : "stdout"})`)
      return { submitted, ended: 0, killed: false, violations: checks.list }
    }
    const s = stopped.stats
    const ended = s.completed + s.failed + s.interrupted + s.dropped + s.obsolete
    checks.that(s.balanced === true && s.queued + s.running === 0, "the stopped line's accounting is not balanced")
    checks.that(s.submitted >= submitted, `the daemon counted ${s.submitted} tasklets, fewer than the ${submitted} it accepted by RPC`)
    if (lost !== "rps.out") checks.that(s.output[`${lost}Lost`] === true, `the stopped line does not say ${lost} was lost`)
    return { submitted: s.submitted, ended, killed: false, violations: checks.list }
  }))

/**
 * The scenario.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "a daemon child whose stdout, stderr or rps.out reader goes away (EPIPE) keeps serving, exits by itself with code 0 on SIGTERM, leaves no pid file or FIFO, and its outcomes add up",
  body: (size) =>
    Effect.gen(function*() {
      if (!fs.existsSync(daemonBin)) {
        return { sent: 0, arrived: 0, lost: 0, violations: [`${daemonBin} is missing: build first with npx tsc -b tsconfig.json`] }
      }
      const n = sizes[size]
      const checks = new Checks()
      let sent = 0
      let arrived = 0
      let killed = 0
      const byKind: Record<string, number> = {}
      const runs = yield* Effect.forEach(
        Array.from({ length: n.runs }, (_, i) => kinds[i % kinds.length]),
        (lost) => Effect.map(oneRun(lost, n.submits), (run) => ({ lost, run })),
        { concurrency: 2 }
      )
      for (const [i, { lost, run }] of runs.entries()) {
        sent += run.submitted
        arrived += run.ended
        if (run.killed) killed++
        byKind[`lost ${lost}`] = (byKind[`lost ${lost}`] ?? 0) + 1
        for (const v of run.violations) checks.add(`run ${i} (lost ${lost}): ${v}`)
      }
      yield* Scenario.progress(NAME, `${n.runs} daemon runs, ${sent.toLocaleString()} tasklets`)
      return {
        sent,
        arrived,
        lost: sent - arrived,
        leakedHandles: killed,
        violations: checks.list,
        figures: {
          runs: n.runs,
          ...byKind,
          childrenThatExitedByThemselves: n.runs - killed,
          tasklets: sent
        }
      }
    })
})
