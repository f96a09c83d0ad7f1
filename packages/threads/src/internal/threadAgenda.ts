/**
 * The main-thread side of a `ThreadAgenda` (see ../ThreadAgenda.ts for the
 * contract and docs/threads.md for the design).
 *
 * The main thread owns every tasklet's bookkeeping: a global queue per
 * priority, and per worker thread a bounded set of local slots (its local
 * queue) mirrored in shared memory. All of it is synchronous JavaScript run
 * from message callbacks; Effect is used at the suspension points (waiting
 * for room, an outcome, a barrier or a drain) and for worker lifecycles.
 *
 * @internal
 */
import * as NodeWorker from "@effect/platform-node/NodeWorker"
import { AgendaClosed, AgendaFull, GcTimeout, InvalidOptions } from "@refpersys/core/AgendaError"
import { AgendaStats, PriorityStats, ShutdownReport } from "@refpersys/core/AgendaStats"
import type * as Platform from "@refpersys/core/Platform"
import * as OptionSchemas from "@refpersys/core/Options"
import * as Priority from "@refpersys/core/Priority"
import type * as Tasklet from "@refpersys/core/Tasklet"
import { TaskletDropped, TaskletObsolete } from "@refpersys/core/Tasklet"
import { WorkerState } from "@refpersys/core/WorkerState"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Worker from "effect/workers/Worker"
import { WorkerError, WorkerSpawnError } from "effect/workers/WorkerError"
import * as fs from "node:fs"
import { fileURLToPath } from "node:url"
import * as util from "node:util"
import * as WT from "node:worker_threads"
import { TaskCodecError, TaskLoadError, ThreadCrashed, type ThreadTaskError } from "../ThreadAgendaError.js"
import { ThreadInfo, ThreadStats } from "../ThreadStats.js"
import type { ThreadTask } from "../ThreadTask.js"
import { type Carried, capture } from "./carry.js"
import { type Codec, codecOf, decodeDefect, findUncloneable, uncloneableDetail } from "./codec.js"
import { Deque } from "./deque.js"
import * as P from "./protocol.js"
import { Summary } from "./summary.js"

type Level = 0 | 1 | 2

/** Run states: in the global queue, sent to a thread, then the outcomes. */
const QUEUED = 0
const DISPATCHED = 1
const COMPLETED = 2
const FAILED = 3
const INTERRUPTED = 4
const DROPPED = 5
const OBSOLETE = 6
const DONE_BASE = COMPLETED
const OUTCOMES: ReadonlyArray<Tasklet.Outcome> = ["Completed", "Failed", "Interrupted", "Dropped", "Obsolete"]

/** @internal */
export interface Config {
  readonly name: string
  readonly threads: number
  readonly localQueue: number
  readonly concurrency: number
  readonly capacity: readonly [number, number, number]
  readonly aging: number
  readonly logFailures: boolean
  readonly onClose: "quit" | "exit"
  readonly closeTimeout: Duration.Duration | undefined
  readonly gcTimeout: Duration.Duration | undefined
  readonly resourceLimits: WT.ResourceLimits | undefined
  readonly heapCollection: "exposed" | "force" | "off"
}

type Handle<A, E> = Tasklet.TaskletHandle<A, E | ThreadTaskError>
type AnyRun = ThreadRun<any, any>
type AnyExit = Exit.Exit<any, any>

const constVoid = () => {}

/**
 * A submitted thread tasklet: queue entry and the caller's handle.
 *
 * @internal
 */
export class ThreadRun<A, E> implements Handle<A, E> {
  state: number = QUEUED
  thread: Thread | undefined = undefined
  /** Local slot index on `thread`, and the sequence number written there. */
  slot = -1
  seq = 0
  /** Dispatch order, so reclaimed tasklets go back in the order they would have run. */
  order = 0
  /** Its thread's `reports` when it was sent there, and when (ms). */
  sentAtReport = 0
  sentAt = 0
  startedAt: number | undefined = undefined
  exit: Exit.Exit<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError> | undefined = undefined
  observers: Array<(exit: Exit.Exit<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError>) => void> | undefined =
    undefined

  constructor(
    readonly agenda: ThreadAgendaImpl,
    readonly id: number,
    readonly level: Level,
    readonly explicitLabel: string | undefined,
    readonly task: ThreadTask<any, A, E>,
    readonly taskId: number,
    readonly codec: Codec,
    public args: unknown,
    readonly createdAt: number,
    readonly obsoleteAt: number | undefined,
    /** What the submitter's context gives the tasklet on its thread. */
    readonly carried: Carried | undefined
  ) {}

  get label(): string {
    return this.explicitLabel ?? `${this.task.export}#${this.id}`
  }
  get priority(): Priority.Priority {
    return Priority.fromIndex(this.level)
  }
  /** Whether its thread has claimed it (it started and has not reported yet). */
  get claimed(): boolean {
    return this.state === DISPATCHED && this.agenda.slotState(this) === P.RUNNING
  }
  get status(): Tasklet.Status {
    return this.state === QUEUED ? "Queued" : this.state === DISPATCHED ? (this.claimed ? "Running" : "Queued") : "Done"
  }
  get outcome(): Tasklet.Outcome | undefined {
    return this.state >= DONE_BASE ? OUTCOMES[this.state - DONE_BASE] : undefined
  }
  get attempts(): number {
    return this.startedAt !== undefined || this.claimed ? 1 : 0
  }

  info(): Tasklet.Info {
    return {
      id: this.id,
      label: this.label,
      priority: this.priority,
      status: this.status,
      outcome: this.outcome,
      createdAt: this.createdAt,
      startedAt: this.startedAt,
      attempts: this.attempts,
      obsoleteAt: this.obsoleteAt
    }
  }

  toJSON(): Tasklet.Info {
    return this.info()
  }

  toString(): string {
    return `ThreadTasklet#${this.id}(${this.label}, ${this.priority}, ${this.outcome ?? this.status})`
  }

  unsafeAddObserver(f: (exit: Exit.Exit<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError>) => void): () => void {
    if (this.exit !== undefined) {
      f(this.exit)
      return constVoid
    }
    if (this.observers === undefined) this.observers = [f]
    else this.observers.push(f)
    return () => {
      const i = this.observers?.indexOf(f) ?? -1
      if (i >= 0) this.observers!.splice(i, 1)
    }
  }

  get await(): Effect.Effect<Exit.Exit<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError>> {
    return Effect.callback((resume) => {
      const remove = this.unsafeAddObserver((exit) => resume(Effect.succeed(exit)))
      return Effect.sync(remove)
    })
  }

  get join(): Effect.Effect<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError> {
    return Effect.flatten(this.await)
  }

  get poll(): Effect.Effect<Option.Option<Exit.Exit<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError>>> {
    return Effect.sync(() => Option.fromNullishOr(this.exit))
  }

  get interruptFork(): Effect.Effect<void> {
    return Effect.flatMap(Effect.fiberId, (id) => Effect.sync(() => this.agenda.interruptRun(this, id)))
  }

  get interrupt(): Effect.Effect<Exit.Exit<A, E | ThreadTaskError | Tasklet.AgendaOutcomeError>> {
    return Effect.andThen(this.interruptFork, this.await)
  }
}

/**
 * One place in the pool. Its worker thread may be replaced after a crash;
 * the place keeps its id, slots and counters.
 *
 * @internal
 */
export class Thread {
  worker: WT.Worker | undefined = undefined
  port: WT.MessagePort | undefined = undefined
  ready = false
  everReady = false
  stopping = false
  fiber: Fiber.Fiber<void, never> | undefined = undefined
  readonly firstStart = Deferred.makeUnsafe<void, WorkerError>()
  /** Runs by local slot; `free` lists the empty slots. */
  readonly runs: Array<AnyRun | undefined>
  free: Array<number>
  /** Task ids this worker has been told about. */
  known = new Set<number>()
  batch: Array<unknown> = []
  reg: Array<readonly [number, string, string]> | undefined = undefined
  /** Result messages received from it, and when the last one came (ms). */
  reports = 0
  lastReportAt = 0
  /** What the thread said it died of (see `P.FatalMessage`), read when it is down. */
  fatal: string | undefined = undefined
  /** The exit code of its last worker, once it exited. */
  exitCode: number | undefined = undefined
  /** Set for one dispatch round: it is running one tasklet for a while (see `stuckThreads`). */
  stuck = false
  // Counters for WorkerState and ThreadInfo.
  started = 0
  completed = 0
  failed = 0
  interrupted = 0
  gcParks = 0
  crashes = 0
  received = 0
  stolenFrom = 0
  stolenBy = 0
  heapCollections = 0

  constructor(readonly index: number, readonly size: number) {
    this.runs = new Array(size).fill(undefined)
    this.free = freeSlots(size)
  }

  get base(): number {
    return this.index * this.size
  }
  get outstanding(): number {
    return this.size - this.free.length
  }
}

const freeSlots = (size: number): Array<number> => Array.from({ length: size }, (_, i) => size - 1 - i)

interface BlockedSubmitter {
  readonly run: AnyRun
  resume: ((effect: Effect.Effect<AnyRun, AgendaClosed>) => void) | undefined
}

interface GcRequest {
  readonly collector: Effect.Effect<void, unknown>
  readonly resume: (effect: Effect.Effect<void, unknown>) => void
  /** Resumed (or abandoned by its caller): nothing may resume it again. */
  settled: boolean
}

const settleGc = (request: GcRequest, exit: Exit.Exit<void, unknown>): void => {
  if (request.settled) return
  request.settled = true
  request.resume(exit)
}

const settleOutcomes = (
  outcomes: ReadonlyArray<readonly [ReadonlyArray<GcRequest>, Exit.Exit<void, unknown>]>
): void => {
  for (const [requests, exit] of outcomes) for (const r of requests) settleGc(r, exit)
}

/** The agenda whose barrier the current fiber collects for (set on collector fibers). */
const insideBarrier = Context.Reference<unknown>("@refpersys/threads/internal/insideBarrier", {
  defaultValue: () => undefined
})

const counters = (): [number, number, number] => [0, 0, 0]

/** A thread that ran one tasklet this long without reporting is busy in it (threads report every millisecond while they work). */
const STUCK_MS = 2

/** The worker entry: next to this module in dist, or in dist when this module runs from src (tests). */
const workerEntry = (): URL | undefined => {
  const candidates = [new URL("./worker.js", import.meta.url), new URL("../../dist/internal/worker.js", import.meta.url)]
  return candidates.find((url) => fs.existsSync(fileURLToPath(url)))
}

const describeCause = (cause: Cause.Cause<unknown>, exitCode: number | undefined): string => {
  const failure = Cause.findErrorOption(cause)
  const error = Option.isSome(failure) ? failure.value : Cause.squash(cause)
  if (!(error instanceof WorkerError)) return describeError(error)
  if (error.reason.cause !== undefined) return describeError(error.reason.cause)
  // A thread that exits is reported by its code only; say it as Node does.
  return exitCode !== undefined ? `exited with code ${exitCode}` : error.message
}

/** Readable text for what a worker reported; a thrown non-Error arrives as a plain object. */
const describeError = (error: unknown): string => {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  if (typeof error === "object" && error !== null) {
    const { message, name } = error as { message?: unknown; name?: unknown }
    if (typeof message === "string") return `${typeof name === "string" ? name : "Error"}: ${message}`
    return `the thread threw a value that is not an Error: ${util.inspect(error, { depth: 2, breakLength: Infinity })}`
  }
  return String(error)
}

/** @internal */
export class ThreadAgendaImpl {
  lifecycle: "running" | "quitting" | "stopped" = "running"
  readonly threads: Array<Thread> = []
  readonly control: Int32Array
  readonly slots: Int32Array
  private readonly seqs: Int32Array
  readonly queues: [Deque<AnyRun>, Deque<AnyRun>, Deque<AnyRun>] = [new Deque(), new Deque(), new Deque()]
  /** Live runs in the global queues, per level. */
  readonly queued = counters()
  /** Runs sent to threads and not ended, per level (local queues and running). */
  readonly dispatched = counters()
  readonly blocked: [Deque<BlockedSubmitter>, Deque<BlockedSubmitter>, Deque<BlockedSubmitter>] = [
    new Deque(),
    new Deque(),
    new Deque()
  ]
  readonly blockedCount = counters()
  readonly submitted = counters()
  /** Ended runs that had started, per level. */
  readonly startedEnded = counters()
  readonly ended: Array<[number, number, number]> = [counters(), counters(), counters(), counters(), counters()]
  readonly waitSummary = [new Summary(), new Summary(), new Summary()]
  readonly runSummary = [new Summary(), new Summary(), new Summary()]
  private nextId = 1
  private nextOrder = 1
  private sinceNormal = 0
  private sinceLow = 0
  agingPicks = 0
  private readonly taskIds = new Map<string, number>()
  private readonly taskIdOf = new WeakMap<ThreadTask<any, any, any>, number>()
  private dispatchScheduled = false
  private pendingBatches: Array<Thread> = []
  private busy = false
  // ThreadStats counters.
  batches = 0
  sent = 0
  resultBatches = 0
  steals = 0
  stolen = 0
  displaced = 0
  crashes = 0
  relayedCommands = 0

  private gcRequests: Array<GcRequest> = []
  private gcEpoch = 0
  private gcForming = false
  gcRunning = false
  /** The requests whose collectors run now, the collectors' fiber, and the bound's timer. */
  private gcBatch: Array<GcRequest> = []
  /** Outcomes of the collectors of the running barrier that have ended, not yet given to their requests. */
  private gcOutcomes: Array<readonly [ReadonlyArray<GcRequest>, Exit.Exit<void, unknown>]> = []
  private gcCollector: Fiber.Fiber<void, never> | undefined = undefined
  private gcTimer: ReturnType<typeof setTimeout> | undefined = undefined
  gcCycles = 0

  private drainWaiters: Array<(effect: Effect.Effect<void>) => void> = []
  private stopped: Deferred.Deferred<ShutdownReport> | undefined = undefined
  private readonly entry: URL | undefined

  constructor(
    readonly config: Config,
    /** The context the agenda was made in: its lifecycles, logs and collectors run under it. */
    readonly context: Context.Context<never>,
    readonly platform: Platform.Platform | undefined
  ) {
    this.control = new Int32Array(new SharedArrayBuffer(P.controlWords(config.threads) * 4))
    this.slots = new Int32Array(new SharedArrayBuffer(config.threads * config.localQueue * 4))
    this.seqs = new Int32Array(config.threads * config.localQueue)
    for (let i = 0; i < config.threads; i++) this.threads.push(new Thread(i, config.localQueue))
    this.entry = workerEntry()
  }

  readonly now = P.now

  // ---- worker lifecycles ------------------------------------------------

  /** Starts every thread and waits until each has started once. */
  start(): Effect.Effect<void, WorkerError> {
    return Effect.suspend(() => {
      if (this.entry === undefined) {
        return Effect.fail(
          spawnError(
            "the worker entry dist/internal/worker.js of @refpersys/threads was not found; build the package (tsc -b)"
          )
        )
      }
      this.starting = this.threads.length
      this.updateBusy()
      for (const thread of this.threads) {
        thread.fiber = Effect.runForkWith(this.context)(this.threadLoop(thread))
      }
      return Effect.forEach(this.threads, (t) => Deferred.await(t.firstStart), { discard: true }).pipe(
        Effect.ensuring(Effect.sync(() => this.afterEnd()))
      )
    })
  }

  private spawn(thread: Thread): WT.Worker {
    const { port1, port2 } = new WT.MessageChannel()
    // A new thread has read no message yet.
    Atomics.store(this.control, P.posted(thread.index), 0)
    const commandFd = this.platform?.commands.writeFd
    const commands: P.CommandRoute = this.platform === undefined
      ? { _tag: "None" }
      : commandFd !== undefined
      ? { _tag: "Fd", fd: commandFd }
      : { _tag: "Relay" }
    const data: P.WorkerData = {
      thread: thread.index,
      localQueue: this.config.localQueue,
      concurrency: this.config.concurrency,
      control: this.control.buffer as SharedArrayBuffer,
      slots: this.slots.buffer as SharedArrayBuffer,
      port: port2,
      commands,
      heapCollection: this.config.heapCollection
    }
    const worker = new WT.Worker(this.entry!, {
      workerData: data,
      transferList: [port2],
      name: `${this.config.name}#${thread.index}`,
      ...(this.config.resourceLimits !== undefined ? { resourceLimits: this.config.resourceLimits } : {})
    })
    port1.on("message", (message: P.FromThread) => {
      if (thread.port === port1) this.onMessage(thread, message)
    })
    thread.exitCode = undefined
    // Registered before effect/workers' own listener, so the code is known when its run ends.
    worker.once("exit", (code) => {
      if (thread.worker === worker) thread.exitCode = code
    })
    // The worker handle keeps the process alive only while needed (see updateBusy).
    port1.unref()
    if (!this.busy) worker.unref()
    thread.port = port1
    thread.worker = worker
    return worker
  }

  /**
   * Runs one place of the pool: spawns its worker through `effect/workers`
   * (which reports readiness through `onSpawn`, and closes the worker
   * politely when this fiber is interrupted), and replaces the worker
   * whenever it dies.
   */
  private threadLoop(thread: Thread): Effect.Effect<void> {
    const self = this
    return Effect.gen(function*() {
      const platform = yield* Worker.WorkerPlatform
      const backing = yield* platform.spawn<never, never>(thread.index)
      const onSpawn = Effect.sync(() => self.onReady(thread))
      let delay = 10
      for (;;) {
        // The threads send no data messages on this channel (tasklets use their own port).
        const exit = yield* Effect.exit(backing.run(() => Effect.void, { onSpawn }))
        const wasReady = thread.ready
        const detail = Exit.isFailure(exit) ? describeCause(exit.cause, thread.exitCode) : "the worker stopped"
        self.onDown(thread, detail)
        if (thread.stopping || self.lifecycle === "stopped") return
        if (!thread.everReady) {
          self.starting--
          const cause = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
          Deferred.doneUnsafe(
            thread.firstStart,
            Exit.fail(
              Option.isSome(cause) && cause.value instanceof WorkerError
                ? cause.value
                : spawnError(detail)
            )
          )
          return
        }
        self.crashes++
        thread.crashes++
        yield* Effect.logWarning(`thread ${thread.index} of ${self.config.name} died (${detail}); replacing it`)
        // A worker that dies before it starts is retried with a growing delay.
        if (!wasReady) {
          yield* liveSleep(delay)
          delay = Math.min(delay * 2, 1000)
        } else delay = 10
      }
    }).pipe(
      // Worker lifecycles run on real time, whatever clock the caller uses.
      Effect.provideService(Clock.Clock, liveClock),
      Effect.provide(NodeWorker.layer(() => this.spawn(thread))),
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError("thread supervisor failed", cause)
      )
    )
  }

  private onReady(thread: Thread): void {
    thread.ready = true
    thread.lastReportAt = this.now()
    if (!thread.everReady) {
      thread.everReady = true
      this.starting--
      Deferred.doneUnsafe(thread.firstStart, Exit.void)
      this.updateBusy()
    }
    this.scheduleDispatch()
    this.checkGc()
  }

  /** The worker of `thread` ended (crash, or a stop): settle or give back its tasklets. */
  private onDown(thread: Thread, reported: string): void {
    // Not ready first: the results read below must not send it more work.
    thread.ready = false
    const port = thread.port
    if (port !== undefined) {
      // Results the thread sent before it died are still in the channel.
      let message = WT.receiveMessageOnPort(port)
      while (message !== undefined) {
        this.onMessage(thread, message.message as P.FromThread)
        message = WT.receiveMessageOnPort(port)
      }
      port.close()
    }
    const detail = thread.fatal ?? reported
    thread.fatal = undefined
    thread.port = undefined
    thread.worker = undefined
    const giveBack: Array<AnyRun> = []
    for (let local = 0; local < thread.size; local++) {
      const run = thread.runs[local]
      const k = thread.base + local
      const claimed = run !== undefined && Atomics.load(this.slots, k) === ((run.seq << 2) | P.RUNNING)
      Atomics.store(this.slots, k, P.FREE)
      if (run === undefined) continue
      thread.runs[local] = undefined
      this.dispatched[run.level]--
      run.thread = undefined
      if (!claimed) {
        giveBack.push(run)
        continue
      }
      run.startedAt = this.now()
      this.startedEnded[run.level]++
      thread.started++
      if (thread.stopping) {
        // Terminated by exit, not crashed.
        thread.interrupted++
        this.settle(run, INTERRUPTED, Exit.interrupt())
      } else {
        thread.failed++
        const error = new ThreadCrashed({ thread: thread.index, id: run.id, label: run.label, detail })
        this.logFailure(run, Cause.fail(error))
        this.settle(run, FAILED, Exit.fail(error))
      }
    }
    thread.free = freeSlots(thread.size)
    thread.known = new Set()
    thread.batch = []
    thread.reg = undefined
    Atomics.store(this.control, P.activity(thread.index), P.IDLE)
    if (this.lifecycle === "stopped") {
      // Only an exit stops threads with work out: what did not start is dropped.
      for (const run of giveBack) {
        this.settle(run, DROPPED, Exit.fail(new TaskletDropped({ id: run.id, label: run.label })))
      }
    } else {
      this.giveBack(giveBack)
      this.scheduleDispatch()
    }
    this.afterEnd()
    this.checkGc()
  }

  /** Puts runs back at the front of their global queues, in the order they would have run. */
  private giveBack(runs: Array<AnyRun>): void {
    runs.sort((a, b) => b.order - a.order)
    for (const run of runs) {
      run.state = QUEUED
      run.thread = undefined
      this.queues[run.level].unshift(run)
      this.queued[run.level]++
    }
  }

  /** Threads still starting for the first time. */
  private starting = 0

  /**
   * The worker handles keep the process alive while the pool starts, has
   * work out or holds a GC barrier; an idle pool does not, like an idle
   * platform.
   */
  private updateBusy(): void {
    const busy = this.starting > 0 || this.gcForming || this.gcRunning || !this.isDrained()
    if (busy === this.busy || this.lifecycle === "stopped" && busy) return
    this.busy = busy
    for (const thread of this.threads) {
      if (busy) thread.worker?.ref()
      else thread.worker?.unref()
    }
  }

  // ---- submission ------------------------------------------------------

  makeRun<A, E>(
    task: ThreadTask<any, A, E>,
    args: unknown,
    options: Tasklet.Options | undefined,
    context: Context.Context<never> | undefined
  ): ThreadRun<A, E> | InvalidOptions | TaskCodecError {
    if (task === null || typeof task !== "object" || typeof task.module !== "string") {
      return new InvalidOptions({ option: "task", value: task, expected: "a ThreadTask (ThreadTask.make)" })
    }
    let level: Level = 1
    let label: string | undefined = undefined
    let obsoleteAt: number | undefined = undefined
    const createdAt = this.now()
    if (options !== undefined) {
      // The core agenda's decoder: the same options get the same typed error.
      const decoded = OptionSchemas.decodeTaskletOptions(options)
      if (Result.isFailure(decoded)) return decoded.failure
      const o = decoded.success
      level = Priority.toIndex(o.priority)
      label = o.label
      if (o.obsoleteAfter !== undefined) obsoleteAt = createdAt + Duration.toMillis(o.obsoleteAfter)
    }
    const codec = codecOf(task)
    const encoded = codec.encodeArgs(args)
    if (!encoded.ok) return new TaskCodecError({ task: task.export, stage: "encodeArgs", detail: encoded.detail })
    let taskId = this.taskIdOf.get(task)
    if (taskId === undefined) {
      // Two definitions of one export share its id: the thread loads it once.
      const key = `${task.module}#${task.export}`
      taskId = this.taskIds.get(key) ?? this.taskIds.size
      this.taskIds.set(key, taskId)
      this.taskIdOf.set(task, taskId)
    }
    return new ThreadRun(
      this,
      this.nextId++,
      level,
      label,
      task,
      taskId,
      codec,
      encoded.value,
      createdAt,
      obsoleteAt,
      capture(context)
    )
  }

  closedError(): AgendaClosed {
    return new AgendaClosed({ state: this.lifecycle === "quitting" ? "quitting" : "stopped" })
  }

  /** Queued here counts tasklets in the global queue and on threads (local queues and running). */
  isFull(level: Level): boolean {
    return this.queued[level] + this.dispatched[level] >= this.config.capacity[level] || this.blockedCount[level] > 0
  }

  fullError(level: Level): AgendaFull {
    return new AgendaFull({ priority: Priority.fromIndex(level), capacity: this.config.capacity[level] })
  }

  enqueue(run: AnyRun): void {
    this.queues[run.level].push(run)
    this.queued[run.level]++
    this.submitted[run.level]++
    this.updateBusy()
    this.scheduleDispatch()
  }

  waitForRoom<A, E>(run: ThreadRun<A, E>): Effect.Effect<ThreadRun<A, E>, AgendaClosed> {
    return Effect.callback<ThreadRun<A, E>, AgendaClosed>((resume) => {
      const entry: BlockedSubmitter = { run, resume: resume as BlockedSubmitter["resume"] }
      this.blocked[run.level].push(entry)
      this.blockedCount[run.level]++
      return Effect.sync(() => {
        if (entry.resume !== undefined) {
          entry.resume = undefined
          this.blockedCount[run.level]--
          this.admitBlocked(run.level)
        }
      })
    })
  }

  private admitBlocked(level: Level): void {
    const blocked = this.blocked[level]
    while (blocked.length > 0 && this.queued[level] + this.dispatched[level] < this.config.capacity[level]) {
      const entry = blocked.shift()!
      const resume = entry.resume
      if (resume === undefined) continue
      entry.resume = undefined
      this.blockedCount[level]--
      this.enqueue(entry.run)
      resume(Effect.succeed(entry.run))
    }
  }

  private rejectBlocked(): void {
    const error = this.closedError()
    for (const level of [0, 1, 2] as const) {
      for (const entry of this.blocked[level].drain()) {
        const resume = entry.resume
        if (resume === undefined) continue
        entry.resume = undefined
        this.blockedCount[level]--
        resume(Effect.fail(error))
      }
    }
  }

  // ---- dispatch --------------------------------------------------------

  slotState(run: AnyRun): number {
    const thread = run.thread
    if (thread === undefined) return P.FREE
    const word = Atomics.load(this.slots, thread.base + run.slot)
    return word >>> 2 === run.seq ? word & 3 : P.FREE
  }

  scheduleDispatch(): void {
    if (this.dispatchScheduled) return
    this.dispatchScheduled = true
    queueMicrotask(this.dispatch)
  }

  private chooseLevel(): Level {
    const [h, n, l] = this.queued
    if (this.config.aging > 0) {
      if (l > 0 && this.sinceLow >= this.config.aging) {
        if (h + n > 0) this.agingPicks++
        return 2
      }
      if (n > 0 && this.sinceNormal >= this.config.aging) {
        if (h > 0) this.agingPicks++
        return 1
      }
    }
    return h > 0 ? 0 : n > 0 ? 1 : 2
  }

  private popGlobal(level: Level): AnyRun {
    if (level === 2) this.sinceLow = 0
    else if (this.queued[2] > 0) this.sinceLow++
    if (level === 1) this.sinceNormal = 0
    else if (level === 0 && this.queued[1] > 0) this.sinceNormal++
    const queue = this.queues[level]
    let run = queue.shift()!
    // Skip runs interrupted while queued (already settled and uncounted).
    while (run.state !== QUEUED) run = queue.shift()!
    this.queued[level]--
    return run
  }

  /** The ready thread with the fewest tasklets out and a free slot. */
  /**
   * The ready thread with a free slot and the fewest tasklets out, preferring
   * threads that are not stuck in one tasklet: work sent there would wait
   * until another thread goes idle and steals it.
   */
  private leastLoaded(): Thread | undefined {
    let best: Thread | undefined = undefined
    for (const thread of this.threads) {
      if (!thread.ready || thread.stopping || thread.free.length === 0) continue
      if (
        best === undefined || (best.stuck && !thread.stuck) ||
        (best.stuck === thread.stuck && thread.outstanding < best.outstanding)
      ) best = thread
    }
    return best
  }

  /**
   * Marks the threads that have been running a tasklet without reporting
   * for longer than `STUCK_MS`: a working thread reports at least every
   * millisecond (every result, for tasklets longer than that).
   */
  private markStuck(now: number): void {
    for (const thread of this.threads) {
      thread.stuck = false
      if (now - thread.lastReportAt <= STUCK_MS) continue
      for (const run of thread.runs) {
        if (run !== undefined && this.slotState(run) === P.RUNNING) {
          thread.stuck = true
          break
        }
      }
    }
  }

  private readonly dispatch = (): void => {
    this.dispatchScheduled = false
    if (this.lifecycle === "stopped") return
    if (this.queued[0] + this.queued[1] + this.queued[2] > 0) this.markStuck(this.now())
    while (this.queued[0] + this.queued[1] + this.queued[2] > 0) {
      let target = this.leastLoaded()
      let level: Level
      if (target !== undefined) level = this.chooseLevel()
      else {
        // Every local queue is full: a higher level takes the place of a
        // queued lower one, so it never waits behind it.
        level = this.queued[0] > 0 ? 0 : this.queued[1] > 0 ? 1 : 2
        if (level === 2) break
        target = this.displaceFor(level)
        if (target === undefined) break
      }
      const run = this.popGlobal(level)
      if (run.obsoleteAt !== undefined && this.now() >= run.obsoleteAt) {
        this.settle(run, OBSOLETE, Exit.fail(new TaskletObsolete({ id: run.id, label: run.label, deadline: run.obsoleteAt })))
        this.afterEnd()
        continue
      }
      this.assign(target, run)
    }
    this.flushBatches()
  }

  private assign(thread: Thread, run: AnyRun): void {
    const local = thread.free.pop()!
    const k = thread.base + local
    const seq = (this.seqs[k] + 1) & P.SEQ_MASK
    this.seqs[k] = seq
    Atomics.store(this.slots, k, (seq << 2) | P.QUEUED)
    run.state = DISPATCHED
    run.thread = thread
    run.slot = local
    run.seq = seq
    run.order = this.nextOrder++
    run.sentAtReport = thread.reports
    run.sentAt = this.now()
    thread.runs[local] = run
    this.dispatched[run.level]++
    if (!thread.known.has(run.taskId)) {
      thread.known.add(run.taskId)
      ;(thread.reg ??= []).push([run.taskId, run.task.module, run.task.export])
    }
    if (thread.batch.length === 0) this.pendingBatches.push(thread)
    thread.batch.push(k, seq, run.taskId, run.level, run.obsoleteAt ?? -1, run.args, run.carried)
    thread.received++
  }

  private flushBatches(): void {
    const pending = this.pendingBatches
    if (pending.length === 0) return
    this.pendingBatches = []
    for (const thread of pending) {
      const port = thread.port
      const e = thread.batch
      const reg = thread.reg
      thread.batch = []
      thread.reg = undefined
      if (port === undefined || e.length === 0) continue
      try {
        port.postMessage({ k: P.M_DISPATCH, reg, e } satisfies P.DispatchMessage)
      } catch {
        // Arguments passed their Schema but cannot be structured-cloned:
        // nothing was posted. Those tasklets fail; the rest go again.
        this.rejectUncloneable(thread, e)
        // The registrations go even with no entry left: the thread counts as knowing those tasks.
        if (e.length === 0 && reg === undefined) continue
        port.postMessage({ k: P.M_DISPATCH, reg, e } satisfies P.DispatchMessage)
      }
      // After the post: a thread that sees the count move finds the message.
      Atomics.add(this.control, P.posted(thread.index), 1)
      this.batches++
      this.sent += e.length / P.ENTRY_FIELDS
    }
  }

  /**
   * Removes from the batch `e` (in place) the entries whose arguments cannot
   * be cloned, frees their slots and fails them with `TaskCodecError`
   * (`encodeArgs`, with the value's path): they never started.
   */
  private rejectUncloneable(thread: Thread, e: Array<unknown>): void {
    let kept = 0
    for (let i = 0; i < e.length; i += P.ENTRY_FIELDS) {
      const found = findUncloneable(e[i + 5])
      if (found === undefined) {
        for (let f = 0; f < P.ENTRY_FIELDS; f++) e[kept + f] = e[i + f]
        kept += P.ENTRY_FIELDS
        continue
      }
      const local = (e[i] as number) - thread.base
      const run = thread.runs[local]!
      Atomics.store(this.slots, e[i] as number, P.FREE)
      thread.runs[local] = undefined
      thread.free.push(local)
      thread.received--
      this.dispatched[run.level]--
      run.thread = undefined
      const error = new TaskCodecError({
        task: run.task.export,
        stage: "encodeArgs",
        detail: uncloneableDetail(found),
        path: found.path
      })
      this.logFailure(run, Cause.fail(error))
      this.settle(run, FAILED, Exit.fail(error))
    }
    e.length = kept
    this.afterEnd()
  }

  private post(thread: Thread, message: P.ToThread): void {
    if (thread.port === undefined) return
    thread.port.postMessage(message)
    Atomics.add(this.control, P.posted(thread.index), 1)
  }

  /** Takes a queued entry back from its thread; fails when the thread has claimed it. */
  private reclaim(run: AnyRun): boolean {
    const thread = run.thread!
    const k = thread.base + run.slot
    const queued = (run.seq << 2) | P.QUEUED
    if (Atomics.compareExchange(this.slots, k, queued, (run.seq << 2) | P.FREE) !== queued) return false
    thread.runs[run.slot] = undefined
    thread.free.push(run.slot)
    this.dispatched[run.level]--
    run.thread = undefined
    return true
  }

  /** Frees a slot for `level` by sending a queued lower-level entry back to the global queue. */
  private displaceFor(level: Level): Thread | undefined {
    let victim: AnyRun | undefined = undefined
    for (const thread of this.threads) {
      if (!thread.ready || thread.stopping) continue
      for (const run of thread.runs) {
        if (run === undefined || run.level <= level || this.slotState(run) !== P.QUEUED) continue
        if (victim === undefined || run.level > victim.level || (run.level === victim.level && run.order > victim.order)) {
          victim = run
        }
      }
    }
    if (victim === undefined) return undefined
    const thread = victim.thread!
    if (!this.reclaim(victim)) return this.displaceFor(level)
    this.displaced++
    this.giveBack([victim])
    return thread
  }

  /**
   * A busy thread that just reported (it is between tasklets) takes queued
   * entries of a higher level than anything it has queued, from threads that
   * have not reported since those entries arrived more than `STUCK_MS` ago
   * (busy in one tasklet), so a `High` tasklet does not wait on a stuck
   * thread while this one runs `Low` ones. Levels still in the global queue
   * are left to the dispatch.
   */
  private promote(thief: Thread): void {
    if (!thief.ready || thief.stopping || thief.free.length === 0) return
    let best: number = this.queued[0] > 0 ? 0 : this.queued[1] > 0 ? 1 : 3
    for (const run of thief.runs) {
      if (run !== undefined && run.level < best && this.slotState(run) === P.QUEUED) best = run.level
    }
    if (best === 0) return
    const now = this.now()
    const candidates: Array<AnyRun> = []
    for (const thread of this.threads) {
      if (thread === thief || !thread.ready) continue
      for (const run of thread.runs) {
        if (run === undefined || run.level >= best) continue
        if (run.sentAtReport !== thread.reports || now - run.sentAt <= STUCK_MS) continue
        if (this.slotState(run) === P.QUEUED) candidates.push(run)
      }
    }
    if (candidates.length === 0) return
    candidates.sort((a, b) => a.level - b.level || a.order - b.order)
    this.move(thief, candidates, Math.min(candidates.length, thief.free.length))
  }

  /** Reclaims up to `take` of `runs` (in order) and sends them to `thief`; counts a steal. */
  private move(thief: Thread, runs: ReadonlyArray<AnyRun>, take: number): void {
    let moved = 0
    for (let i = 0; i < runs.length && moved < take; i++) {
      const run = runs[i]
      const victim = run.thread!
      if (!this.reclaim(run)) continue
      this.assign(thief, run)
      victim.stolenFrom++
      moved++
    }
    if (moved === 0) return
    this.steals++
    this.stolen += moved
    thief.stolenBy += moved
    this.flushBatches()
  }

  /** An idle thread takes half of the busiest thread's local queue, in the order it would have run. */
  private steal(thief: Thread): void {
    if (!thief.ready || thief.stopping || thief.free.length === 0) return
    if (this.queued[0] + this.queued[1] + this.queued[2] > 0) return
    let victim: Thread | undefined = undefined
    let victimQueued: Array<AnyRun> = []
    for (const thread of this.threads) {
      if (thread === thief || !thread.ready) continue
      const queued: Array<AnyRun> = []
      let running = 0
      for (const run of thread.runs) {
        if (run === undefined) continue
        const state = this.slotState(run)
        if (state === P.QUEUED) queued.push(run)
        else if (state === P.RUNNING) running++
      }
      // A thread with nothing running is about to start its queue itself.
      if (running === 0 && queued.length < 2) continue
      if (queued.length > victimQueued.length) {
        victim = thread
        victimQueued = queued
      }
    }
    if (victim === undefined || victimQueued.length === 0) return
    victimQueued.sort((a, b) => a.level - b.level || a.order - b.order)
    this.move(thief, victimQueued, Math.min(Math.ceil(victimQueued.length / 2), thief.free.length))
  }

  // ---- messages from threads ---------------------------------------------

  private onMessage(thread: Thread, message: P.FromThread): void {
    switch (message.k) {
      case P.T_RESULTS: {
        this.resultBatches++
        const r = message.r
        for (let i = 0; i < r.length; i += P.RESULT_FIELDS) {
          const local = (r[i] as number) - thread.base
          const run = thread.runs[local]
          if (run === undefined || run.seq !== r[i + 1]) continue
          thread.runs[local] = undefined
          thread.free.push(local)
          this.dispatched[run.level]--
          run.thread = undefined
          this.onResult(thread, run, r[i + 2] as number, r[i + 3], r[i + 4] as number, r[i + 5] as number)
        }
        thread.reports++
        thread.lastReportAt = this.now()
        this.afterEnd()
        if (this.queued[0] + this.queued[1] + this.queued[2] > 0) this.scheduleDispatch()
        if (message.idle) this.steal(thread)
        else this.promote(thread)
        return
      }
      case P.T_PARKED: {
        thread.gcParks++
        if (message.collected) thread.heapCollections++
        this.checkGc()
        return
      }
      case P.T_FATAL: {
        thread.fatal = message.detail
        return
      }
      case P.T_COMMAND: {
        this.relayedCommands++
        try {
          this.platform?.commands.unsafeSend(message.byte)
        } catch (error) {
          Effect.runForkWith(this.context)(
            Effect.logWarning(`a command byte from thread ${thread.index} was not delivered`, error)
          )
        }
        return
      }
    }
  }

  private onResult(
    thread: Thread,
    run: AnyRun,
    kind: number,
    value: unknown,
    startedAt: number,
    endedAt: number
  ): void {
    const level = run.level
    if (startedAt >= 0) {
      run.startedAt = startedAt
      thread.started++
      this.startedEnded[level]++
      this.waitSummary[level].add(Math.max(0, startedAt - run.createdAt))
      this.runSummary[level].add(Math.max(0, endedAt - startedAt))
    }
    const task = run.task.export
    switch (kind) {
      case P.R_SUCCESS: {
        const decoded = run.codec.decodeSuccess(value)
        if (decoded.ok) {
          thread.completed++
          return this.settle(run, COMPLETED, Exit.succeed(decoded.value))
        }
        return this.fail(thread, run, new TaskCodecError({ task, stage: "decodeSuccess", detail: decoded.detail }))
      }
      case P.R_FAILURE: {
        const decoded = run.codec.decodeFailure(value)
        return this.fail(
          thread,
          run,
          decoded.ok ? decoded.value : new TaskCodecError({ task, stage: "decodeFailure", detail: decoded.detail })
        )
      }
      case P.R_DEFECT: {
        thread.failed++
        const cause = Cause.die(decodeDefect(value))
        this.logFailure(run, cause)
        return this.settle(run, FAILED, Exit.failCause(cause))
      }
      case P.R_INTERRUPTED:
        thread.interrupted++
        return this.settle(run, INTERRUPTED, Exit.interrupt())
      case P.R_OBSOLETE:
        return this.settle(
          run,
          OBSOLETE,
          Exit.fail(new TaskletObsolete({ id: run.id, label: run.label, deadline: run.obsoleteAt ?? 0 }))
        )
      case P.R_CODEC: {
        const [stage, detail, path] = value as [TaskCodecError["stage"], string, string | undefined]
        const error = path === undefined
          ? new TaskCodecError({ task, stage, detail })
          : new TaskCodecError({ task, stage, detail, path })
        return this.fail(thread, run, error)
      }
      default:
        return this.fail(
          thread,
          run,
          new TaskLoadError({ module: run.task.module, export: run.task.export, detail: String(value) })
        )
    }
  }

  private fail(thread: Thread, run: AnyRun, error: unknown): void {
    thread.failed++
    const cause = Cause.fail(error)
    this.logFailure(run, cause)
    this.settle(run, FAILED, Exit.failCause(cause))
  }

  private logFailure(run: AnyRun, cause: Cause.Cause<unknown>): void {
    if (!this.config.logFailures) return
    const what = Cause.hasDies(cause) ? "died with a defect" : "failed"
    Effect.runForkWith(this.context)(
      Effect.logWarning(`thread tasklet #${run.id} (${run.label}) ${what}`, cause).pipe(
        Effect.annotateLogs({ agenda: this.config.name, tasklet: run.label, priority: run.priority })
      )
    )
  }

  private settle(run: AnyRun, state: number, exit: AnyExit): void {
    run.state = state
    run.exit = exit
    run.args = undefined
    this.ended[state - DONE_BASE][run.level]++
    const observers = run.observers
    if (observers !== undefined) {
      run.observers = undefined
      for (let i = 0; i < observers.length; i++) observers[i](exit)
    }
  }

  /** After tasklets ended: admit blocked submitters, wake drain waiters, drop the keep-alive when idle. */
  private afterEnd(): void {
    for (const level of [0, 1, 2] as const) if (this.blockedCount[level] > 0) this.admitBlocked(level)
    if (this.isDrained()) {
      this.updateBusy()
      if (this.drainWaiters.length > 0) {
        const waiters = this.drainWaiters
        this.drainWaiters = []
        for (const resume of waiters) resume(Effect.void)
      }
    }
  }

  interruptRun(run: AnyRun, _by: number | undefined): void {
    if (run.state === QUEUED) {
      this.queued[run.level]--
      this.settle(run, INTERRUPTED, Exit.interrupt())
      this.afterEnd()
    } else if (run.state === DISPATCHED) {
      const thread = run.thread!
      if (this.reclaim(run)) {
        this.settle(run, INTERRUPTED, Exit.interrupt())
        this.afterEnd()
      } else {
        // Running: its thread interrupts its fiber; a synchronous body ends first.
        this.post(thread, { k: P.M_INTERRUPT, slot: thread.base + run.slot, seq: run.seq })
      }
    }
  }

  // ---- GC barrier --------------------------------------------------------

  /**
   * Invariants: at most one barrier is forming or collecting (`gcEpoch`
   * names it); each request is resumed exactly once (`settled`), by its
   * collector's end, the `gcTimeout` bound, or a stop, whichever comes first.
   */
  requestGc<E>(collector: Effect.Effect<void, E>): Effect.Effect<void, E | AgendaClosed | GcTimeout> {
    return Effect.withFiber((fiber) => {
      const inside = fiber.getRef(insideBarrier)
      // Called from a collector of this agenda's barrier: every thread is
      // parked already, so the request is served at once (waiting for the
      // next barrier would wait for the collector that waits for it).
      if (inside === this) return collector
      return Effect.callback<void, E | AgendaClosed | GcTimeout>((resume) => {
        if (this.lifecycle === "stopped") return resume(Effect.fail(this.gcClosedError()))
        const request: GcRequest = { collector, resume: resume as GcRequest["resume"], settled: false }
        this.gcRequests.push(request)
        this.formGc()
        return Effect.sync(() => {
          const i = this.gcRequests.indexOf(request)
          if (i >= 0) this.gcRequests.splice(i, 1)
          request.settled = true
        })
      })
    })
  }

  private formGc(): void {
    if (this.gcForming || this.gcRunning || this.gcRequests.length === 0) return
    this.gcForming = true
    const epoch = ++this.gcEpoch
    this.updateBusy()
    const bound = this.config.gcTimeout
    if (bound !== undefined) {
      // Real time, like the threads: a barrier that never forms or a
      // collector that never ends is abandoned after the bound.
      this.gcTimer = setTimeout(() => this.gcTimedOut(epoch), Math.min(Duration.toMillis(bound), 2 ** 31 - 1))
      this.gcTimer.unref()
    }
    Atomics.store(this.control, P.GC_WANTED, epoch)
    // Idle threads sleep in their event loop: a message wakes them to park.
    for (const thread of this.threads) this.post(thread, { k: P.M_WAKE })
    this.checkGc()
  }

  /** Runs the collectors once every thread has parked for the forming barrier. */
  private checkGc(): void {
    if (!this.gcForming) return
    if (this.gcRequests.length === 0) {
      // Every request left while it formed: release the threads that parked.
      this.gcForming = false
      return this.endGc(false)
    }
    for (const thread of this.threads) {
      if (Atomics.load(this.control, P.parked(thread.index)) < this.gcEpoch) return
    }
    this.gcForming = false
    this.gcRunning = true
    const epoch = this.gcEpoch
    const batch = this.gcRequests
    this.gcRequests = []
    this.gcBatch = batch
    const outcomes: Array<readonly [ReadonlyArray<GcRequest>, Exit.Exit<void, unknown>]> = []
    this.gcOutcomes = outcomes
    // The requests are resumed once the barrier has ended: a resumed fiber
    // runs inside the resume (Effect 4), and must find the threads released
    // and the cycle counted.
    const collect = Effect.forEach(uniqueCollectors(batch), ([collector, requests]) =>
      Effect.map(Effect.exit(collector), (exit) => {
        outcomes.push([requests, exit])
      }), { discard: true }).pipe(
        Effect.provideService(insideBarrier, this),
        Effect.ensuring(Effect.sync(() => {
          // Not when the bound or a stop already ended this barrier.
          if (this.gcRunning && this.gcEpoch === epoch) this.endGc(true)
          settleOutcomes(outcomes)
        }))
      )
    this.gcCollector = Effect.runForkWith(this.context)(collect)
  }

  private endGc(collected: boolean): void {
    this.gcRunning = false
    this.gcBatch = []
    this.gcOutcomes = []
    this.gcCollector = undefined
    if (this.gcTimer !== undefined) {
      clearTimeout(this.gcTimer)
      this.gcTimer = undefined
    }
    if (collected) this.gcCycles++
    Atomics.store(this.control, P.GC_RELEASED, this.gcEpoch)
    Atomics.notify(this.control, P.GC_RELEASED)
    if (this.gcRequests.length > 0 && this.lifecycle !== "stopped") this.formGc()
    else this.updateBusy()
  }

  /** The `gcTimeout` bound of barrier `epoch` passed: give it up, fail its requests, let the threads go. */
  private gcTimedOut(epoch: number): void {
    this.gcTimer = undefined
    if (epoch !== this.gcEpoch) return
    const timeoutMs = Duration.toMillis(this.config.gcTimeout!)
    if (this.gcForming) {
      const error = new GcTimeout({ phase: "forming", timeoutMs, busy: this.unparkedTasklets(epoch) })
      const requests = this.gcRequests
      this.gcRequests = []
      this.gcForming = false
      for (const r of requests) settleGc(r, Exit.fail(error))
      this.endGc(false)
    } else if (this.gcRunning) {
      const error = new GcTimeout({ phase: "collecting", timeoutMs, busy: [] })
      this.abandonCollector(error)
    }
  }

  /** Interrupts the running collector without waiting for it (it may ignore interruption), and fails its requests. */
  private abandonCollector(error: GcTimeout | AgendaClosed): void {
    const batch = this.gcBatch
    const outcomes = this.gcOutcomes
    const collector = this.gcCollector
    // Ended first: the interruption may run the collector's finalizers at once.
    this.endGc(false)
    collector?.interruptUnsafe()
    // Requests whose collector had ended get its outcome; the others the error.
    settleOutcomes(outcomes)
    for (const r of batch) settleGc(r, Exit.fail(error))
  }

  /** Labels of the tasklets running on threads that have not parked for barrier `epoch`. */
  private unparkedTasklets(epoch: number): Array<string> {
    const labels: Array<string> = []
    for (const thread of this.threads) {
      if (Atomics.load(this.control, P.parked(thread.index)) >= epoch) continue
      for (const run of thread.runs) {
        if (run !== undefined && this.slotState(run) === P.RUNNING) labels.push(run.label)
      }
    }
    return labels
  }

  private gcClosedError(): AgendaClosed {
    return new AgendaClosed({ state: this.lifecycle === "quitting" ? "quitting" : "stopped", action: "requestGc" })
  }

  /** Exit wins over any barrier: pending requests fail, a running collector is interrupted and left behind. */
  private failGcRequests(): void {
    const requests = this.gcRequests
    this.gcRequests = []
    const error = this.gcClosedError()
    for (const r of requests) settleGc(r, Exit.fail(error))
    if (this.gcForming) {
      this.gcForming = false
      this.endGc(false)
    } else if (this.gcRunning) {
      this.abandonCollector(error)
    }
  }

  // ---- shutdown --------------------------------------------------------

  private isDrained(): boolean {
    return this.queued[0] + this.queued[1] + this.queued[2] === 0 &&
      this.dispatched[0] + this.dispatched[1] + this.dispatched[2] === 0
  }

  readonly awaitIdle: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.isDrained()) return resume(Effect.void)
    this.drainWaiters.push(resume)
    return Effect.sync(() => {
      const i = this.drainWaiters.indexOf(resume)
      if (i >= 0) this.drainWaiters.splice(i, 1)
    })
  })

  quit(timeout: Duration.Duration | undefined): Effect.Effect<ShutdownReport> {
    return Effect.suspend(() => {
      if (this.stopped !== undefined) return Deferred.await(this.stopped)
      if (this.lifecycle === "running") {
        this.lifecycle = "quitting"
        this.rejectBlocked()
      }
      // The drain is interruptible even when quit runs as a finalizer (scope
      // close runs finalizers uninterruptibly): otherwise the timeout could
      // not interrupt it and a stuck tasklet would hold the close for ever.
      const drained = timeout === undefined
        ? Effect.as(this.awaitIdle, true)
        : Effect.map(Effect.timeoutOption(Effect.interruptible(this.awaitIdle), timeout), Option.isSome)
      return Effect.flatMap(drained, (ok) => this.stop(ok ? "quit" : "exit", !ok))
    })
  }

  exit(): Effect.Effect<ShutdownReport> {
    return this.stop("exit", false)
  }

  private stop(mode: "quit" | "exit", timedOut: boolean): Effect.Effect<ShutdownReport> {
    return Effect.suspend(() => {
      if (this.stopped !== undefined) return Deferred.await(this.stopped)
      const stopped = Deferred.makeUnsafe<ShutdownReport>()
      this.stopped = stopped
      // The stop holds the process alive until its report is out: once the
      // first thread is down the pool looks idle and unrefs the others, whose
      // termination promises hold nothing, so Node could exit mid-stop.
      const keepAlive = setInterval(constVoid, 1 << 30)
      const wasQuitting = this.lifecycle === "quitting"
      this.lifecycle = "stopped"
      if (!wasQuitting) this.rejectBlocked()
      this.failGcRequests()
      const droppedBefore = this.sumOutcome(DROPPED)
      const interruptedBefore = this.sumOutcome(INTERRUPTED)
      for (const level of [0, 1, 2] as const) {
        for (const run of this.queues[level].drain()) {
          if (run.state !== QUEUED) continue
          this.queued[level]--
          this.settle(run, DROPPED, Exit.fail(new TaskletDropped({ id: run.id, label: run.label })))
        }
      }
      for (const thread of this.threads) thread.stopping = true
      const anyOut = this.dispatched[0] + this.dispatched[1] + this.dispatched[2] > 0
      // With work still on the threads (exit), terminate them: running
      // tasklets are interrupted, tasklets still in local queues dropped.
      const terminate = anyOut
        ? Effect.forEach(this.threads, (thread) => this.terminate(thread), { discard: true })
        : Effect.void
      const close = Effect.forEach(
        this.threads,
        (thread) => thread.fiber === undefined ? Effect.void : Effect.asVoid(Effect.exit(interruptFiber(thread.fiber))),
        { discard: true, concurrency: "unbounded" }
      )
      return terminate.pipe(
        Effect.andThen(close),
        Effect.flatMap(() => {
          for (const thread of this.threads) {
            thread.port?.close()
            thread.port = undefined
          }
          this.afterEnd()
          this.updateBusy()
          const report = new ShutdownReport({
            mode,
            timedOut,
            dropped: this.sumOutcome(DROPPED) - droppedBefore,
            interrupted: this.sumOutcome(INTERRUPTED) - interruptedBefore,
            stats: this.stats()
          })
          Deferred.doneUnsafe(stopped, Exit.succeed(report))
          return Deferred.await(stopped)
        }),
        Effect.ensuring(Effect.sync(() => clearInterval(keepAlive)))
      )
    }).pipe(Effect.uninterruptible)
  }

  private terminate(thread: Thread): Effect.Effect<void> {
    return Effect.suspend(() => {
      // Queued entries the thread has not claimed are dropped without a race.
      for (const run of thread.runs) {
        if (run !== undefined && this.reclaim(run)) {
          this.settle(run, DROPPED, Exit.fail(new TaskletDropped({ id: run.id, label: run.label })))
        }
      }
      const worker = thread.worker
      if (worker === undefined) return Effect.void
      return Effect.promise(() => worker.terminate()).pipe(
        Effect.andThen(Effect.sync(() => {
          // Results sent before termination count; what was still running was interrupted.
          const port = thread.port
          if (port !== undefined) {
            let message = WT.receiveMessageOnPort(port)
            while (message !== undefined) {
              this.onMessage(thread, message.message as P.FromThread)
              message = WT.receiveMessageOnPort(port)
            }
          }
          for (let local = 0; local < thread.size; local++) {
            const run = thread.runs[local]
            if (run === undefined) continue
            thread.runs[local] = undefined
            thread.free.push(local)
            this.dispatched[run.level]--
            run.thread = undefined
            run.startedAt = this.now()
            this.startedEnded[run.level]++
            thread.started++
            thread.interrupted++
            this.settle(run, INTERRUPTED, Exit.interrupt())
          }
        }))
      )
    })
  }

  private sumOutcome(state: number): number {
    const xs = this.ended[state - DONE_BASE]
    return xs[0] + xs[1] + xs[2]
  }

  // ---- snapshots -------------------------------------------------------

  /** Per level: tasklets on threads still queued, and running. */
  private localCounts(): { queued: [number, number, number]; running: [number, number, number] } {
    const queued = counters()
    const running = counters()
    for (const thread of this.threads) {
      for (const run of thread.runs) {
        if (run === undefined) continue
        if (this.slotState(run) === P.RUNNING) running[run.level]++
        else queued[run.level]++
      }
    }
    return { queued, running }
  }

  private levelStats(
    levels: ReadonlyArray<Level>,
    local: { queued: [number, number, number]; running: [number, number, number] }
  ): PriorityStats {
    const sum = (xs: ReadonlyArray<number>) => levels.reduce((acc: number, l) => acc + xs[l], 0)
    return new PriorityStats({
      submitted: sum(this.submitted),
      started: sum(this.startedEnded) + sum(local.running),
      completed: sum(this.ended[COMPLETED - DONE_BASE]),
      failed: sum(this.ended[FAILED - DONE_BASE]),
      interrupted: sum(this.ended[INTERRUPTED - DONE_BASE]),
      dropped: sum(this.ended[DROPPED - DONE_BASE]),
      obsolete: sum(this.ended[OBSOLETE - DONE_BASE]),
      queued: sum(this.queued) + sum(local.queued),
      running: sum(local.running),
      blockedSubmitters: sum(this.blockedCount),
      waitTime: Summary.merge(levels.map((l) => this.waitSummary[l])),
      runTime: Summary.merge(levels.map((l) => this.runSummary[l]))
    })
  }

  stats(): AgendaStats {
    const local = this.localCounts()
    return new AgendaStats({
      name: this.config.name,
      state: this.lifecycle,
      byPriority: {
        High: this.levelStats([0], local),
        Normal: this.levelStats([1], local),
        Low: this.levelStats([2], local)
      },
      total: this.levelStats([0, 1, 2], local),
      workers: this.workerStates(),
      gcCycles: this.gcCycles,
      agingPicks: this.agingPicks
    })
  }

  workerStates(): Array<WorkerState> {
    return this.threads.map((thread) => {
      const activity = Atomics.load(this.control, P.activity(thread.index))
      const current = thread.runs.find((run) => run !== undefined && this.slotState(run) === P.RUNNING)
      return new WorkerState({
        id: thread.index,
        state: activity === P.PARKED ? "GC" : activity === P.RUN ? "Run" : "Idle",
        current: current === undefined ? undefined : { id: current.id, label: current.label, priority: current.priority },
        started: thread.started + thread.runs.filter((run) => run !== undefined && this.slotState(run) === P.RUNNING).length,
        completed: thread.completed,
        failed: thread.failed,
        interrupted: thread.interrupted,
        gcParks: thread.gcParks,
        respawns: thread.crashes
      })
    })
  }

  threadStats(): ThreadStats {
    return new ThreadStats({
      threads: this.threads.map((thread) => {
        let localQueued = 0
        let localRunning = 0
        for (const run of thread.runs) {
          if (run === undefined) continue
          if (this.slotState(run) === P.RUNNING) localRunning++
          else localQueued++
        }
        return new ThreadInfo({
          id: thread.index,
          ready: thread.ready,
          localQueued,
          localRunning,
          received: thread.received,
          stolenFrom: thread.stolenFrom,
          stolenBy: thread.stolenBy,
          crashes: thread.crashes,
          heapCollections: thread.heapCollections
        })
      }),
      batches: this.batches,
      dispatched: this.sent,
      resultBatches: this.resultBatches,
      steals: this.steals,
      stolen: this.stolen,
      displaced: this.displaced,
      crashes: this.crashes,
      relayedCommands: this.relayedCommands
    })
  }
}

/** Effect's live clock: the default of the `Clock` reference. */
const liveClock: Clock.Clock = Context.get(Context.empty(), Clock.Clock)

const spawnError = (message: string): WorkerError =>
  new WorkerError({ reason: new WorkerSpawnError({ message, cause: new Error(message) }) })

const liveSleep = (ms: number): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

const interruptFiber = (fiber: Fiber.Fiber<void, never>): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    fiber.addObserver(() => resume(Effect.void))
    fiber.interruptUnsafe()
  })

/** Groups requests by collector so a collector shared by several requests runs once. */
const uniqueCollectors = (
  requests: ReadonlyArray<GcRequest>
): Array<[Effect.Effect<void, unknown>, Array<GcRequest>]> => {
  const groups = new Map<Effect.Effect<void, unknown>, Array<GcRequest>>()
  for (const r of requests) {
    const group = groups.get(r.collector)
    if (group === undefined) groups.set(r.collector, [r])
    else group.push(r)
  }
  return Array.from(groups)
}
