/**
 * Hostile runtime directories: another user (nobody, through `setpriv`)
 * prepares the daemon's runtime directory or its FIFOs, or puts a link or a
 * regular file where the client's `rps.cmd` should be; then the built
 * `rps-daemon` or `rps-ctl` runs on it as a real process. Each attempt must
 * be refused (exit code 77, a message naming the cause) and leave every file
 * as it was: a refusal is counted as arrived, anything accepted (or any file
 * touched) as lost.
 *
 * We run as root, who passes every permission check, so the attack is shown
 * by ownership and modes, and "untouched" by comparing `lstat` (and the
 * bytes of regular files) before and after.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Checks } from "../internal/checks.js"
import * as Scenario from "../Scenario.js"

const NAME = "hostile-runtime-dir"

const sizes = { small: { rounds: 1, parallel: 3 }, full: { rounds: 10, parallel: 3 } }

/** `RuntimeDir.untrustedExitCode` of the daemon package (`EX_NOPERM`). */
const UNTRUSTED = 77
const NOBODY = 65534

const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const daemonDist = path.resolve(packageDir, "..", "daemon", "dist", "bin")
const bins = { daemon: path.join(daemonDist, "daemon.js"), ctl: path.join(daemonDist, "ctl.js") }

/** Runs a command as nobody; throws (a violation of the run) when `setpriv` is missing or the command fails. */
const asNobody = (...command: Array<string>) => {
  const result = spawnSync("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...command], {
    encoding: "utf8"
  })
  if (result.error !== undefined) throw new Error(`setpriv could not run (${result.error.message})`)
  if (result.status !== 0) throw new Error(`setpriv ${command.join(" ")} failed: ${result.stderr.trim()}`)
}

const mkfifo = (where: string, mode: string) => {
  const result = spawnSync("mkfifo", ["-m", mode, where], { encoding: "utf8" })
  if (result.status !== 0) throw new Error(`mkfifo ${where} failed: ${result.stderr ?? String(result.error)}`)
}

/** Everything `lstat` says about the paths (a directory: with its entries), and the bytes of regular files. */
const snapshot = (paths: ReadonlyArray<string>): string => {
  const one = (p: string): string => {
    const s = fs.lstatSync(p)
    const content = s.isFile() ? fs.readFileSync(p, "hex") : s.isSymbolicLink() ? fs.readlinkSync(p) : ""
    const entries = s.isDirectory() ? fs.readdirSync(p).sort().map((e) => one(path.join(p, e))) : []
    return [`${p} ${s.mode.toString(8)} ${s.uid} ${s.ino} ${s.size} ${s.mtimeMs} ${content}`, ...entries].join("\n")
  }
  return paths.map(one).join("\n")
}

/** A hostile layout, made in `base` (a fresh directory of ours, mode 0711). */
interface Layout {
  readonly name: string
  readonly program: keyof typeof bins
  /** Makes the layout; returns the runtime directory (undefined: the default one, from `env`), the environment, what must stay untouched. */
  readonly make: (base: string) => {
    readonly dir: string | undefined
    readonly env?: NodeJS.ProcessEnv
    readonly watch: ReadonlyArray<string>
    /** An fd the other user reads from; whatever it gets is a leak of a request. */
    readonly reader?: number
  }
}

/** A directory like /tmp: root's, mode 1777, where nobody can make files. */
const sharedTmp = (base: string, name = "shared"): string => {
  const dir = path.join(base, name)
  fs.mkdirSync(dir)
  fs.chmodSync(dir, 0o1777)
  return dir
}

/** A FIFO made by nobody, moved into `dir` (which nobody cannot write). */
const foreignFifo = (base: string, dir: string, name: string, mode: string) => {
  const shared = sharedTmp(base, "shared-fifo")
  asNobody("mkfifo", "-m", mode, path.join(shared, name))
  fs.renameSync(path.join(shared, name), path.join(dir, name))
}

const uid = (): number => process.geteuid?.() ?? 0

const layouts: ReadonlyArray<Layout> = [
  {
    name: "default <tmpdir>/refpersys-<uid> made 0777 by another user, with FIFOs 0666",
    program: "daemon",
    make: (base) => {
      const shared = sharedTmp(base)
      const dir = path.join(shared, `refpersys-${uid()}`)
      asNobody("mkdir", "-m", "0777", dir)
      asNobody("mkfifo", "-m", "0666", path.join(dir, "rps.cmd"), path.join(dir, "rps.out"))
      return { dir: undefined, env: { TMPDIR: shared, XDG_RUNTIME_DIR: "" }, watch: [dir] }
    }
  },
  {
    name: "default $XDG_RUNTIME_DIR/refpersys made 0777 by another user",
    program: "daemon",
    make: (base) => {
      const shared = sharedTmp(base)
      const dir = path.join(shared, "refpersys")
      asNobody("mkdir", "-m", "0777", dir)
      return { dir: undefined, env: { XDG_RUNTIME_DIR: shared }, watch: [dir] }
    }
  },
  {
    name: "runtime dir a symbolic link planted by another user",
    program: "daemon",
    make: (base) => {
      const target = path.join(base, "target")
      fs.mkdirSync(target, { mode: 0o700 })
      // What a crashed run leaves: a daemon following the link would clean it up.
      fs.writeFileSync(path.join(target, "rps.pid"), "999999999\n")
      const shared = sharedTmp(base)
      const link = path.join(shared, `refpersys-${uid()}`)
      asNobody("ln", "-s", target, link)
      return { dir: undefined, env: { TMPDIR: shared, XDG_RUNTIME_DIR: "" }, watch: [target, link] }
    }
  },
  {
    name: "runtime dir under a parent anyone can write, without the sticky bit",
    program: "daemon",
    make: (base) => {
      const parent = path.join(base, "open")
      fs.mkdirSync(parent)
      fs.chmodSync(parent, 0o777)
      return { dir: path.join(parent, "run"), watch: [parent] }
    }
  },
  {
    name: "FIFO rps.out of another user in our directory",
    program: "daemon",
    make: (base) => {
      const dir = path.join(base, "run")
      fs.mkdirSync(dir, { mode: 0o700 })
      foreignFifo(base, dir, "rps.out", "600")
      return { dir, watch: [path.join(dir, "rps.out")] }
    }
  },
  {
    name: "FIFO rps.cmd of ours with mode 0666",
    program: "daemon",
    make: (base) => {
      const dir = path.join(base, "run")
      fs.mkdirSync(dir, { mode: 0o700 })
      mkfifo(path.join(dir, "rps.cmd"), "666")
      return { dir, watch: [path.join(dir, "rps.cmd")] }
    }
  },
  {
    name: "client: rps.cmd a symbolic link to a file",
    program: "ctl",
    make: (base) => {
      const dir = path.join(base, "run")
      fs.mkdirSync(dir, { mode: 0o700 })
      mkfifo(path.join(dir, "rps.out"), "600")
      const target = path.join(base, "precious.txt")
      fs.writeFileSync(target, "precious data\n")
      fs.symlinkSync(target, path.join(dir, "rps.cmd"))
      return { dir, watch: [target, path.join(dir, "rps.cmd")] }
    }
  },
  {
    name: "client: rps.cmd a regular file",
    program: "ctl",
    make: (base) => {
      const dir = path.join(base, "run")
      fs.mkdirSync(dir, { mode: 0o700 })
      mkfifo(path.join(dir, "rps.out"), "600")
      fs.writeFileSync(path.join(dir, "rps.cmd"), "precious data\n")
      return { dir, watch: [path.join(dir, "rps.cmd")] }
    }
  },
  {
    name: "client: rps.cmd a FIFO of another user, with a reader",
    program: "ctl",
    make: (base) => {
      const dir = path.join(base, "run")
      fs.mkdirSync(dir, { mode: 0o700 })
      mkfifo(path.join(dir, "rps.out"), "600")
      foreignFifo(base, dir, "rps.cmd", "666")
      const reader = fs.openSync(path.join(dir, "rps.cmd"), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
      return { dir, watch: [], reader }
    }
  }
]

interface Ended {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly killed: boolean
}

/** Runs a program to its end (the pipes closed too); SIGKILL after `timeout` ms. */
const runProgram = (script: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, timeout: number) =>
  Effect.callback<Ended>((resume) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } })
    let stdout = ""
    let stderr = ""
    let killed = false
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (stdout = (stdout + chunk).slice(-4000)))
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-4000)))
    const timer = setTimeout(() => {
      killed = true
      child.kill("SIGKILL")
    }, timeout)
    child.on("close", (code) => {
      clearTimeout(timer)
      resume(Effect.succeed({ code, stdout, stderr, killed }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      child.kill("SIGKILL")
    })
  })

/** Bytes waiting in a non-blocking FIFO (0 for none: EAGAIN, or end of file). */
const readAvailable = (fd: number): number => {
  try {
    return fs.readSync(fd, Buffer.alloc(64 * 1024))
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EAGAIN") return 0
    throw error
  }
}

const freshBase = (): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "refpersys-hostile-"))
      // Others may pass through (to reach the shared directories in it), not write.
      fs.chmodSync(dir, 0o711)
      return dir
    }),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** One attempt: `true` when refused as it must be; otherwise a violation says why. */
const attempt = (layout: Layout, checks: Checks) =>
  Effect.scoped(Effect.gen(function*() {
    const base = yield* freshBase()
    const made = yield* Effect.acquireRelease(
      Effect.sync(() => layout.make(base)),
      (m) => Effect.sync(() => m.reader === undefined ? undefined : fs.closeSync(m.reader))
    )
    const before = snapshot(made.watch)
    const args = layout.program === "daemon"
      // A daemon that accepts stops by itself, so a failing run ends too.
      ? ["--json", "--rate", "0", "--duration", "3"]
      : ["stats", "--timeout", "2"]
    const ended = yield* runProgram(
      bins[layout.program],
      [...args, ...(made.dir === undefined ? [] : ["--runtime-dir", made.dir])],
      made.env ?? {},
      60_000
    )
    const problems: Array<string> = []
    if (ended.killed) problems.push("still running after 60 s")
    if (ended.code !== UNTRUSTED) problems.push(`exit code ${ended.code}, not ${UNTRUSTED}`)
    if (!ended.stderr.includes("refused, untrusted")) problems.push(`no refusal on stderr: ${ended.stderr.trim().slice(-300)}`)
    if (ended.stdout.includes('"event":"ready"')) problems.push("the daemon became ready")
    if (snapshot(made.watch) !== before) problems.push("files were changed")
    if (made.reader !== undefined && readAvailable(made.reader) > 0) problems.push("a request reached the other user's FIFO")
    for (const problem of problems) checks.add(`${layout.program} on ${layout.name}: ${problem}`)
    return problems.length === 0
  })).pipe(
    // A layout that could not be made (no setpriv, say) proves nothing: lost, and said so.
    Effect.catchCause((cause) =>
      Effect.sync(() => {
        checks.add(`${layout.name}: the attempt itself failed: ${Cause.pretty(cause).split("\n").slice(0, 3).join(" | ")}`)
        return false
      })
    )
  )

const run = (size: Scenario.Size) =>
  Effect.gen(function*() {
    const n = sizes[size]
    const checks = new Checks()
    for (const [program, bin] of Object.entries(bins)) {
      if (!fs.existsSync(bin)) checks.add(`${program}: ${bin} is missing: build first (npx tsc -b tsconfig.json)`)
    }
    if (uid() !== 0) checks.add("this scenario makes files as user nobody: run it as root")
    if (checks.list.length > 0) return { sent: 1, arrived: 0, lost: 1, checks, figures: {} }
    const plan = Array.from({ length: n.rounds }, () => layouts).flat()
    const results = yield* Effect.forEach(
      plan,
      (layout, i) =>
        Effect.tap(
          attempt(layout, checks),
          () => (i + 1) % layouts.length === 0 ? Scenario.progress(NAME, `${i + 1} of ${plan.length} hostile layouts tried`) : Effect.void
        ),
      { concurrency: n.parallel }
    )
    const refused = results.filter((ok) => ok).length
    return {
      sent: plan.length,
      arrived: refused,
      lost: plan.length - refused,
      checks,
      figures: {
        layouts: layouts.length,
        attempts: plan.length,
        refused,
        daemonAttempts: plan.filter((l) => l.program === "daemon").length,
        clientAttempts: plan.filter((l) => l.program === "ctl").length
      }
    }
  })

/**
 * @since 0.1.0
 * @category scenarios
 */
export const scenario: Scenario.Scenario = Scenario.make({
  name: NAME,
  proves:
    "rps-daemon and rps-ctl, as real processes, refuse every hostile runtime layout (a directory or FIFOs another user made, a symlinked directory, an open parent, a symlinked or regular rps.cmd) with exit code 77 and leave every file untouched",
  body: (size) =>
    Effect.map(run(size), (r) => ({
      sent: r.sent,
      arrived: r.arrived,
      lost: r.lost,
      violations: r.checks.list,
      figures: r.figures
    }))
})
