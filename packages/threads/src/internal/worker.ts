/**
 * The worker-thread side of a `ThreadAgenda` (the file each worker thread
 * runs; the main thread starts it from `dist/internal/worker.js`).
 *
 * A thread keeps a small local queue per priority, filled in batches by the
 * main thread. Its loop (`pump`) runs synchronously while it has work:
 * it takes the highest-priority entry, claims it in shared memory (a stolen
 * or reclaimed entry fails the claim and is skipped), runs it as a fiber of
 * its own at the tasklet's level of the thread's `PriorityScheduler` (the
 * level's `Scheduler` in the fiber's context), under the context its
 * submitter carried (log annotations, log levels, parent span; see
 * `carry.ts`), and collects the encoded outcome into a batch of results.
 * A fiber per tasklet keeps tasklets apart: nothing one sets in its context,
 * and no fiber it forks, outlives it. New batches from the main thread are read synchronously between
 * tasklets when the shared `posted` counter says one is waiting, so a busy
 * thread sees a `High` entry before its next pick without yielding.
 *
 * Start-up and shutdown speak the protocol of `effect/workers`' `Worker`,
 * which the main thread uses: `[0]` on `parentPort` says the thread is ready
 * (the main thread's `onSpawn`), `[1]` from the main thread asks it to
 * close. The few lines here replace Effect's worker runner, so that a thread
 * loads only what its tasklets need (see docs/threads.md).
 *
 * @internal
 */
import * as Platform from "@refpersys/core/Platform"
import * as PriorityScheduler from "@refpersys/core/PriorityScheduler"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scheduler from "effect/Scheduler"
import * as fs from "node:fs"
import * as v8 from "node:v8"
import * as vm from "node:vm"
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads"
import { ThreadContext } from "../ThreadContext.js"
import { type Implementation, isImplementation } from "../ThreadTask.js"
import { type Carried, restore } from "./carry.js"
import { type Codec, codecOf, encodeDefect, findUncloneable, uncloneableDetail } from "./codec.js"
import { Deque } from "./deque.js"
import * as P from "./protocol.js"

interface Entry {
  readonly slot: number
  readonly seq: number
  readonly task: number
  readonly level: 0 | 1 | 2
  readonly obsoleteAt: number
  readonly args: unknown
  readonly carried: Carried | undefined
}

interface Task {
  readonly module: string
  readonly export: string
  impl: Implementation<unknown, unknown, unknown> | undefined
  codec: Codec | undefined
  error: string | undefined
  loading: boolean
  waiting: Array<readonly [Entry, number]>
}

/** How long the loop runs tasklets back to back before letting the thread's event loop turn. */
const SLICE_MS = 4
/** Results are sent at least this often while a thread works (every result, for tasklets longer than this). */
const FLUSH_EVERY_MS = 1
const MAX_RESULTS = 256

const data = workerData as P.WorkerData
const me = data.thread
const control = new Int32Array(data.control)
const slots = new Int32Array(data.slots)
const port = data.port
const lowWater = Math.max(1, data.localQueue >> 1)

const local = [new Deque<Entry>(), new Deque<Entry>(), new Deque<Entry>()] as const
let localCount = 0
let received = 0
let running = 0
let inSafePoint = 0
let safeWaiters: Array<() => void> = []
// A fresh thread (first or replacement) parks for a barrier still forming.
let lastParked = Atomics.load(control, P.GC_RELEASED)
const tasks = new Map<number, Task>()
const fibers = new Map<number, { readonly fiber: Fiber.Fiber<unknown, unknown>; readonly seq: number }>()

let results: Array<unknown> = []
let lastFlushAt = 0
let awaitingRefill = false
let reportedIdle = false
let pumping = false
let yieldScheduled = false

// ---- heap collection while parked

declare const globalThis: { gc?: () => void }

const forcedGcOnce = (): (() => void) | undefined => {
  // V8 reads --expose-gc when a context is created: a context made while the
  // flag is on has `gc`, which collects this thread's whole isolate. The flag
  // is process-wide, so it is switched off again at once.
  try {
    v8.setFlagsFromString("--expose-gc")
    return vm.runInNewContext("gc") as () => void
  } catch {
    return undefined
  } finally {
    v8.setFlagsFromString("--no-expose-gc")
  }
}

// Threads starting together race on the process-wide flag: another thread
// may switch it off between this one's set and its context. The window is a
// few instructions wide, so a few more tries always get through.
const forcedGc = (): (() => void) | undefined => {
  for (let attempt = 0; attempt < 20; attempt++) {
    const gc = forcedGcOnce()
    if (gc !== undefined) return gc
  }
  return undefined
}

const heapGc: (() => void) | undefined = data.heapCollection === "off"
  ? undefined
  : typeof globalThis.gc === "function"
  ? globalThis.gc
  : data.heapCollection === "force"
  ? forcedGc()
  : undefined

// ---- commands to the main thread's event loop

const commandError = (reason: "System" | "Unsupported" | "Closed", detail: string, errno?: string) =>
  new Platform.PlatformError(
    errno === undefined
      ? { operation: "command", reason, detail }
      : { operation: "command", reason, detail, errno }
  )

const oneByte = Buffer.alloc(1)

const sendCommand = (byte: number): Platform.PlatformError | undefined => {
  if (!Platform.isCommandByte(byte)) return Platform.invalidByte(byte)
  const route = data.commands
  switch (route._tag) {
    case "Fd": {
      oneByte[0] = byte
      try {
        fs.writeSync(route.fd, oneByte)
        return undefined
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        return code === "EAGAIN"
          ? commandError("System", "the command pipe is full: the event loop does not consume commands", code)
          : code === "EBADF"
          ? commandError("Closed", "the platform's command pipe is closed; close the ThreadAgenda before its platform")
          : commandError("System", String(error), code)
      }
    }
    case "Relay":
      port.postMessage({ k: P.T_COMMAND, byte } satisfies P.CommandMessage)
      return undefined
    case "None":
      return commandError(
        "Unsupported",
        "the ThreadAgenda was built without a Platform in its context; provide one (e.g. LinuxPlatform.layer()) " +
          "before building the agenda"
      )
  }
}

// ---- GC barrier

const gcPending = (): boolean => Atomics.load(control, P.GC_WANTED) > lastParked

/** Parks when a barrier is wanted and every running tasklet is at a safe point. */
const tryPark = (): boolean => {
  const epoch = Atomics.load(control, P.GC_WANTED)
  if (epoch <= lastParked || running !== inSafePoint) return false
  flush()
  Atomics.store(control, P.activity(me), P.PARKED)
  let collected = false
  if (heapGc !== undefined) {
    heapGc()
    collected = true
  }
  Atomics.store(control, P.parked(me), epoch)
  port.postMessage({ k: P.T_PARKED, epoch, collected } satisfies P.ParkedMessage)
  for (;;) {
    const released = Atomics.load(control, P.GC_RELEASED)
    if (released >= epoch) break
    Atomics.wait(control, P.GC_RELEASED, released)
  }
  lastParked = epoch
  Atomics.store(control, P.activity(me), running > 0 ? P.RUN : P.IDLE)
  const waiters = safeWaiters
  safeWaiters = []
  for (const wake of waiters) wake()
  return true
}

const safePoint: Effect.Effect<void> = Effect.suspend(() => {
  if (!gcPending()) return Effect.void
  inSafePoint++
  if (tryPark()) {
    inSafePoint--
    return Effect.void
  }
  // Other tasklets of this thread are still running: the last one to reach a
  // safe point (or to end) parks the thread, then wakes this one.
  return Effect.callback<void>((resume) => {
    const wake = () => resume(Effect.void)
    safeWaiters.push(wake)
    return Effect.sync(() => {
      const i = safeWaiters.indexOf(wake)
      if (i >= 0) safeWaiters.splice(i, 1)
    })
  }).pipe(Effect.ensuring(Effect.sync(() => inSafePoint--)))
})

// ---- the contexts tasklets run under

const service = {
  thread: me,
  send: (byte: number) =>
    Effect.suspend(() => {
      const error = sendCommand(byte)
      return error === undefined ? Effect.void : Effect.fail(error)
    }),
  safePoint
}

const scheduler = PriorityScheduler.make()
const base = Context.make(ThreadContext, service)
/** Per level (0 High, 1 Normal, 2 Low): the context of a tasklet whose submitter carried nothing. */
const levels = (["High", "Normal", "Low"] as const).map((priority) =>
  Context.add(base, Scheduler.Scheduler, scheduler.scheduler(priority))
)

// Entries of one dispatch message submitted from one context share one
// carried object (structured cloning keeps shared references within a
// message): the context built for it is kept per level until another comes.
const lastCarried: Array<Carried | undefined> = [undefined, undefined, undefined]
const lastContext: Array<Context.Context<ThreadContext>> = [...levels]

const contextOf = (entry: Entry): Context.Context<ThreadContext> => {
  const carried = entry.carried
  if (carried === undefined) return levels[entry.level]
  if (lastCarried[entry.level] !== carried) {
    lastCarried[entry.level] = carried
    lastContext[entry.level] = restore(levels[entry.level], carried)
  }
  return lastContext[entry.level]
}

// ---- results

const pushResult = (entry: Entry, kind: number, value: unknown, startedAt: number): void => {
  results.push(entry.slot, entry.seq, kind, value, startedAt, P.now())
}

const flush = (): void => {
  const idle = running === 0 && localCount === 0
  if (results.length === 0) {
    if (!idle || reportedIdle) return
  }
  reportedIdle = idle
  lastFlushAt = performance.now()
  const r = results
  results = []
  try {
    port.postMessage({ k: P.T_RESULTS, r, idle } satisfies P.ResultsMessage)
  } catch {
    // A value passed its Schema but cannot be structured-cloned (a function,
    // a Symbol): nothing was posted. Only its own tasklet fails; the batch
    // goes again with the others' real outcomes.
    repairResults(r)
    port.postMessage({ k: P.T_RESULTS, r, idle } satisfies P.ResultsMessage)
  }
}

/** Replaces, in place, every result value that cannot be cloned with a codec error (or a described defect). */
const repairResults = (r: Array<unknown>): void => {
  for (let i = 0; i < r.length; i += P.RESULT_FIELDS) {
    const found = findUncloneable(r[i + 3])
    if (found === undefined) continue
    const kind = r[i + 2]
    const detail = uncloneableDetail(found)
    if (kind === P.R_DEFECT) {
      r[i + 3] = { name: "Error", message: `the tasklet died with a defect that cannot cross threads: ${detail}` }
    } else {
      r[i + 2] = P.R_CODEC
      r[i + 3] = [kind === P.R_FAILURE ? "encodeFailure" : "encodeSuccess", detail, found.path]
    }
  }
}

/** Sends results early enough that the main thread refills before this thread runs dry. */
const maybeFlush = (): void => {
  if (results.length === 0) return
  if (!awaitingRefill && localCount <= lowWater) {
    awaitingRefill = true
    return flush()
  }
  if (results.length >= MAX_RESULTS * P.RESULT_FIELDS || performance.now() - lastFlushAt > FLUSH_EVERY_MS) flush()
}

const ended = (): void => {
  running--
  if (running === 0) Atomics.store(control, P.activity(me), P.IDLE)
}

const finishRaw = (entry: Entry, kind: number, value: unknown, startedAt: number): void => {
  pushResult(entry, kind, value, startedAt)
  ended()
}

const finishExit = (entry: Entry, codec: Codec, exit: Exit.Exit<unknown, unknown>, startedAt: number): void => {
  if (Exit.isSuccess(exit)) {
    const encoded = codec.encodeSuccess(exit.value)
    if (encoded.ok) pushResult(entry, P.R_SUCCESS, encoded.value, startedAt)
    else pushResult(entry, P.R_CODEC, ["encodeSuccess", encoded.detail], startedAt)
  } else {
    const failure = Cause.findErrorOption(exit.cause)
    if (Option.isSome(failure)) {
      const encoded = codec.encodeFailure(failure.value)
      if (encoded.ok) pushResult(entry, P.R_FAILURE, encoded.value, startedAt)
      else pushResult(entry, P.R_CODEC, ["encodeFailure", encoded.detail], startedAt)
    } else if (Cause.hasInterruptsOnly(exit.cause)) {
      pushResult(entry, P.R_INTERRUPTED, undefined, startedAt)
    } else {
      pushResult(entry, P.R_DEFECT, encodeDefect(Cause.squash(exit.cause)), startedAt)
    }
  }
  ended()
}

const isThenable = (u: unknown): u is PromiseLike<unknown> =>
  typeof u === "object" && u !== null && typeof (u as { then?: unknown }).then === "function"

const exec = (entry: Entry, task: Task, startedAt: number): void => {
  const codec = task.codec!
  const args = codec.decodeArgs(entry.args)
  if (!args.ok) return finishRaw(entry, P.R_CODEC, ["decodeArgs", args.detail], startedAt)
  let out: unknown
  try {
    out = task.impl!.run(args.value)
  } catch (error) {
    return finishRaw(entry, P.R_DEFECT, encodeDefect(error), startedAt)
  }
  // A plain value needs no fiber: the fast path for small synchronous tasks.
  if (!Effect.isEffect(out) && !isThenable(out)) return finishExit(entry, codec, Exit.succeed(out), startedAt)
  const effect = Effect.isEffect(out)
    ? out as Effect.Effect<unknown, unknown, ThreadContext>
    : Effect.promise(() => out as PromiseLike<unknown>)
  // The fiber's first steps run here, synchronously: a tasklet that does not suspend is done on return.
  const fiber = Effect.runForkWith(contextOf(entry))(effect)
  const exit = fiber.pollUnsafe()
  if (exit !== undefined) return finishExit(entry, codec, exit, startedAt)
  fibers.set(entry.slot, { fiber, seq: entry.seq })
  fiber.addObserver((exit) => {
    fibers.delete(entry.slot)
    finishExit(entry, codec, exit, startedAt)
    pump()
  })
}

const load = (task: Task): void => {
  if (task.loading) return
  task.loading = true
  import(task.module).then(
    (ns: Record<string, unknown>) => {
      const impl = ns[task.export]
      if (isImplementation(impl)) {
        task.impl = impl
        task.codec = codecOf(impl)
      } else {
        task.error = impl === undefined
          ? `the module has no export named ${task.export}`
          : `the export ${task.export} is not a ThreadTask implementation (made with ThreadTask.implement)`
      }
    },
    (error: unknown) => {
      task.error = `importing the module failed: ${error instanceof Error ? error.message : String(error)}`
    }
  ).then(() => {
    const waiting = task.waiting
    task.waiting = []
    for (const [entry, startedAt] of waiting) {
      if (task.impl !== undefined) exec(entry, task, startedAt)
      else finishRaw(entry, P.R_LOAD, task.error, startedAt)
    }
    pump()
  })
}

const start = (entry: Entry): void => {
  const startedAt = P.now()
  if (entry.obsoleteAt >= 0 && startedAt >= entry.obsoleteAt) {
    return pushResult(entry, P.R_OBSOLETE, undefined, -1)
  }
  running++
  if (running === 1) Atomics.store(control, P.activity(me), P.RUN)
  const task = tasks.get(entry.task)!
  if (task.impl !== undefined) exec(entry, task, startedAt)
  else if (task.error !== undefined) finishRaw(entry, P.R_LOAD, task.error, startedAt)
  else {
    task.waiting.push([entry, startedAt])
    load(task)
  }
}

const describeThrown = (error: unknown): string => {
  if (typeof error === "object" && error !== null && typeof (error as Error).message === "string") {
    const { message, name } = error as Error
    return `${typeof name === "string" && name !== "" ? name : "Error"}: ${message}`
  }
  try {
    return `uncaught ${typeof error}: ${typeof error === "object" ? JSON.stringify(error) : String(error)}`
  } catch {
    return `uncaught ${typeof error}`
  }
}

// ---- the local queue and the loop

/** Takes the next entry this thread wins the claim for, highest priority first. */
const take = (): Entry | undefined => {
  for (let level = 0; level < 3; level++) {
    const queue = local[level]
    while (queue.length > 0) {
      const entry = queue.shift()!
      localCount--
      const queued = (entry.seq << 2) | P.QUEUED
      if (Atomics.compareExchange(slots, entry.slot, queued, (entry.seq << 2) | P.RUNNING) === queued) return entry
      // Stolen by another thread or reclaimed by the main thread: skip it.
    }
  }
  return undefined
}

const onMessage = (message: P.ToThread): void => {
  received++
  switch (message.k) {
    case P.M_DISPATCH: {
      if (message.reg !== undefined) {
        for (const [id, module, name] of message.reg) {
          if (!tasks.has(id)) {
            tasks.set(id, {
              module,
              export: name,
              impl: undefined,
              codec: undefined,
              error: undefined,
              loading: false,
              waiting: []
            })
          }
        }
      }
      const e = message.e
      for (let i = 0; i < e.length; i += P.ENTRY_FIELDS) {
        const level = e[i + 3] as 0 | 1 | 2
        local[level].push({
          slot: e[i] as number,
          seq: e[i + 1] as number,
          task: e[i + 2] as number,
          level,
          obsoleteAt: e[i + 4] as number,
          args: e[i + 5],
          carried: e[i + 6] as Carried | undefined
        })
        localCount++
      }
      awaitingRefill = false
      reportedIdle = false
      return
    }
    case P.M_INTERRUPT: {
      const running = fibers.get(message.slot)
      if (running !== undefined && running.seq === message.seq) running.fiber.interruptUnsafe()
      return
    }
    case P.M_WAKE:
      return
  }
}

const drain = (): void => {
  let message = receiveMessageOnPort(port)
  while (message !== undefined) {
    onMessage(message.message as P.ToThread)
    message = receiveMessageOnPort(port)
  }
}

const resume = (): void => {
  yieldScheduled = false
  pump()
}

function pump(): void {
  if (pumping) return
  pumping = true
  const sliceEnd = performance.now() + SLICE_MS
  let sliced = false
  try {
    for (;;) {
      if (Atomics.load(control, P.posted(me)) !== received) drain()
      if (gcPending()) {
        if (tryPark()) continue
        break
      }
      if (running >= data.concurrency) break
      const entry = take()
      if (entry === undefined) break
      start(entry)
      maybeFlush()
      if (performance.now() > sliceEnd) {
        // Let timers, I/O and async tasklets of this thread run.
        sliced = true
        if (!yieldScheduled) {
          yieldScheduled = true
          setImmediate(resume)
        }
        break
      }
    }
  } finally {
    pumping = false
  }
  if (!sliced) flush()
}

// ---- start-up and shutdown

Atomics.store(control, P.activity(me), P.IDLE)
// The main thread's "error" event receives a thrown non-Error (a
// DOMException, a plain object) as an empty object: say what it was first.
process.on("uncaughtExceptionMonitor", (error) => {
  try {
    port.postMessage({ k: P.T_FATAL, detail: describeThrown(error) } satisfies P.FatalMessage)
  } catch {
    // The thread dies anyway; the main thread falls back to the event's cause.
  }
})
port.on("message", (message: P.ToThread) => {
  onMessage(message)
  pump()
})
parentPort!.on("message", (message: readonly [number, ...Array<unknown>]) => {
  if (message[0] !== 1) return
  // Closing both channels leaves nothing to keep the thread alive: it ends.
  parentPort!.close()
  port.close()
})
parentPort!.postMessage([0])
pump()
