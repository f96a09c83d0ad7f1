// Child processes for the end-to-end tests: their stdout read line by line,
// and waits on lines (never on time).
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
export const daemonBin = path.join(packageDir, "dist", "bin", "daemon.js")
export const ctlBin = path.join(packageDir, "dist", "bin", "ctl.js")

/** Fails with a clear message when the package was not built (`npm test` builds first). */
export const requireBuilt = (...files: Array<string>) => {
  for (const file of files) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: build first with npx tsc -b tsconfig.json`)
  }
}

const running = new Set<ChildProcess>()

/** Kills whatever a failed test left running. */
export const killAll = () => {
  for (const child of running) child.kill("SIGKILL")
  running.clear()
}

const made: Array<string> = []

/** Removes the directories {@link tempDir} made (call it in `afterAll`). */
export const removeTempDirs = () => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}

/** A fresh directory; see {@link removeTempDirs}. */
export const tempDir = (prefix = "rps-daemon-test-"): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  made.push(dir)
  return dir
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Child {
  readonly pid: number
  readonly lines: ReadonlyArray<string>
  readonly stdout: () => string
  readonly stderr: () => string
  /** The first stdout line (parsed as JSON) for which `pick` returns a value. */
  readonly waitFor: <A>(what: string, pick: (line: any) => A | undefined, timeoutMs?: number) => Promise<A>
  readonly exited: Promise<Exited>
  readonly kill: (signal: NodeJS.Signals) => void
  /** Closes this end of the child's stdout or stderr pipe: the child's next write there fails with EPIPE. */
  readonly closePipe: (which: "stdout" | "stderr") => void
}

export const start = (script: string, args: ReadonlyArray<string>, options: { readonly env?: NodeJS.ProcessEnv } = {}): Child => {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...options.env }
  })
  running.add(child)
  const lines: Array<string> = []
  let out = ""
  let err = ""
  let partial = ""
  const waiters = new Set<() => void>()
  const notify = () => {
    for (const w of [...waiters]) w()
  }
  child.stdout!.setEncoding("utf8")
  child.stderr!.setEncoding("utf8")
  child.stdout!.on("data", (chunk: string) => {
    out += chunk
    const parts = (partial + chunk).split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
    notify()
  })
  child.stderr!.on("data", (chunk: string) => {
    err += chunk
  })
  let done = false
  // "close" comes after the exit and the end of both pipes (or their
  // destruction here), so every line is in before anyone looks.
  const exited = new Promise<Exited>((resolve) =>
    child.on("close", (code, signal) => {
      running.delete(child)
      done = true
      notify()
      resolve({ code, signal })
    })
  )
  const find = <A>(pick: (line: any) => A | undefined): A | undefined => {
    for (const line of lines) {
      let value: unknown
      try {
        value = JSON.parse(line)
      } catch {
        value = line
      }
      const picked = pick(value)
      if (picked !== undefined) return picked
    }
    return undefined
  }
  const waitFor = <A>(what: string, pick: (line: any) => A | undefined, timeoutMs = 20_000): Promise<A> =>
    new Promise<A>((resolve, reject) => {
      const check = () => {
        const found = find(pick)
        if (found !== undefined) {
          cleanup()
          resolve(found)
        } else if (done) {
          cleanup()
          reject(new Error(`the process ended before ${what}\nstdout:\n${out}\nstderr:\n${err}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nstdout:\n${out}\nstderr:\n${err}`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  return {
    pid: child.pid!,
    lines,
    stdout: () => out,
    stderr: () => err,
    waitFor,
    exited,
    kill: (signal) => {
      child.kill(signal)
    },
    closePipe: (which) => {
      child[which]!.destroy()
    }
  }
}

/** Runs a program to its end. */
export const run = async (
  script: string,
  args: ReadonlyArray<string>
): Promise<Exited & { readonly stdout: string; readonly stderr: string }> => {
  const child = start(script, args)
  const exit = await child.exited
  return { ...exit, stdout: child.stdout(), stderr: child.stderr() }
}

/**
 * Writes `text` to the daemon's rps.cmd without blocking (the FIFO must have
 * room: for a write after a flood, use a blocking writer).
 */
export const writeCmd = (dir: string, text: string): void => {
  const fd = fs.openSync(path.join(dir, "rps.cmd"), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
  try {
    fs.writeSync(fd, text)
  } finally {
    fs.closeSync(fd)
  }
}
