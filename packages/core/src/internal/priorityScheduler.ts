import type * as Fiber from "effect/Fiber"
import * as Scheduler from "effect/Scheduler"
import { RingQueue } from "./ringQueue.js"

/** @internal */
export type Level = 0 | 1 | 2

/** @internal */
export interface PrioritySchedulerOptions {
  readonly sliceSize: number
  /** See `SLICE_MILLIS`, the default. */
  readonly sliceMillis: number
  readonly now: () => number
  /** The scheduler drains are scheduled on; `undefined`: Effect's default. */
  readonly parent: Scheduler.Scheduler | undefined
}

/**
 * Longest a slice runs, in milliseconds, give or take the task running when
 * it is reached. Effect bounds a fiber's run by operations (2,048) and the
 * slice bounds the runs by count (`sliceSize`), neither by time; with this
 * bound a timer due while the agenda is saturated fires about this late.
 * Measured on Effect 4: 0.1 ms slices kept the priority order and ran
 * trivial agenda tasklets about twice as fast as 2 ms slices.
 *
 * @internal
 */
export const SLICE_MILLIS = 0.1

/**
 * How long, in milliseconds, drains may start from microtasks in a row
 * before one waits for a turn of Node's event loop: microtasks run before
 * timers and I/O, so an unbroken chain of them (work that keeps waking
 * work, such as tasklets awaiting resolved promises) would starve both.
 */
const MICROTASK_CHAIN_MILLIS = 1

/**
 * The `Scheduler` of one level. Every fiber whose context holds it shares
 * one dispatcher (this object), which pushes on the level's FIFO of the
 * shared core. Effect passes a numeric priority only for `yieldNowWith`; the
 * level is the scheduler itself, so the number is ignored.
 *
 * @internal
 */
export class LevelScheduler implements Scheduler.Scheduler, Scheduler.SchedulerDispatcher {
  readonly executionMode = "async" as const
  constructor(readonly core: PrioritySchedulerImpl, readonly level: Level) {}

  shouldYield(fiber: Fiber.Fiber<unknown, unknown>): boolean {
    return fiber.currentOpCount >= fiber.cache.maxOpsBeforeYield
  }

  makeDispatcher(): Scheduler.SchedulerDispatcher {
    return this
  }

  scheduleTask(task: () => void, _priority: number): void {
    this.core.push(this.level, task)
  }

  flush(): void {
    this.core.flush()
  }
}

/**
 * One FIFO per level, shared by the three level schedulers. A drain runs the
 * highest non-empty level first and re-checks after every task, because a
 * task often schedules a higher one. After `sliceSize` tasks, or once the
 * slice ran `sliceMillis`, the rest waits for the next drain, which is
 * scheduled on the parent scheduler (`setImmediate` under Effect's default
 * one), so timers and I/O callbacks run between slices. Draining through the
 * parent also lets a `TestClock` track the work its wake-ups cause. Under
 * Effect's default scheduler, a drain for new work (not a cut slice) starts
 * from a microtask, as soon as the caller is done, for up to
 * `MICROTASK_CHAIN_MILLIS` in a row.
 *
 * @internal
 */
export class PrioritySchedulerImpl {
  readonly queues: readonly [RingQueue<() => void>, RingQueue<() => void>, RingQueue<() => void>] = [
    new RingQueue<() => void>(256),
    new RingQueue<() => void>(256),
    new RingQueue<() => void>(256)
  ]
  readonly levels: readonly [LevelScheduler, LevelScheduler, LevelScheduler]
  private scheduled = false
  /** Tasks run since creation, per level, for tests and diagnostics. */
  readonly ran = [0, 0, 0]
  /** Number of slices that ended with work left over. */
  slicesCut = 0

  private readonly now: () => number
  private dispatcher: Scheduler.SchedulerDispatcher | undefined = undefined

  /** Whether new work is drained from a microtask (the parent is Effect's default scheduler). */
  private readonly microtasks: boolean
  /** When the current chain of microtask drains began; `undefined`: none since the last event-loop turn. */
  private chainStart: number | undefined = undefined

  constructor(readonly options: PrioritySchedulerOptions) {
    this.now = options.now
    this.microtasks = options.parent === undefined ||
      (options.parent instanceof Scheduler.MixedScheduler && options.parent.executionMode === "async")
    this.levels = [new LevelScheduler(this, 0), new LevelScheduler(this, 1), new LevelScheduler(this, 2)]
  }

  /** When the current slice must end (on `now`); infinite outside a slice. */
  private sliceEnd = Infinity

  /**
   * For code that does many small pieces of work inside one task (the
   * agenda's worker loops): whether the current slice's time is up, in which
   * case the caller should re-queue itself so the slice can end.
   */
  sliceOver(): boolean {
    return this.now() > this.sliceEnd
  }

  /** Whether a drain is running now (the caller is inside a slice). */
  get inSlice(): boolean {
    return this.sliceEnd !== Infinity
  }

  push(level: Level, task: () => void): void {
    this.queues[level].push(task)
    if (!this.scheduled) {
      this.scheduled = true
      if (this.microtasks && this.chainAllows()) {
        queueMicrotask(this.drain)
      } else {
        this.parentDispatcher().scheduleTask(this.drain, 0)
      }
    }
  }

  /** Whether the chain of microtask drains since the last event-loop turn may go on. */
  private chainAllows(): boolean {
    const now = this.now()
    if (this.chainStart === undefined) {
      this.chainStart = now
      setImmediate(this.endChain)
      return true
    }
    return now - this.chainStart < MICROTASK_CHAIN_MILLIS
  }

  /** A turn of Node's event loop came: the next microtask drain starts a new chain. */
  private readonly endChain = (): void => {
    this.chainStart = undefined
  }

  get pending(): number {
    return this.queues[0].length + this.queues[1].length + this.queues[2].length
  }

  private parentDispatcher(): Scheduler.SchedulerDispatcher {
    return this.dispatcher ??= (this.options.parent ?? new Scheduler.MixedScheduler()).makeDispatcher()
  }

  /** Runs every queued task now, slices aside (`SchedulerDispatcher.flush`). */
  flush(): void {
    while (this.runSlice(Infinity)) {
      // keep going until empty
    }
  }

  private readonly drain = (): void => {
    this.sliceEnd = this.now() + this.options.sliceMillis
    try {
      this.runSlice(this.options.sliceSize)
    } finally {
      this.sliceEnd = Infinity
      // Also reached when a task throws, so the scheduler never wedges.
      if (this.pending > 0) {
        this.slicesCut++
        this.parentDispatcher().scheduleTask(this.drain, 0)
      } else {
        this.scheduled = false
      }
    }
  }

  /** Runs up to `budget` tasks; returns whether work is left. */
  private runSlice(budget: number): boolean {
    const [high, normal, low] = this.queues
    const ran = this.ran
    for (; budget > 0; budget--) {
      let task: (() => void) | undefined
      if ((task = high.shift()) !== undefined) ran[0]++
      else if ((task = normal.shift()) !== undefined) ran[1]++
      else if ((task = low.shift()) !== undefined) ran[2]++
      else return false
      task()
      if (this.now() > this.sliceEnd) break
    }
    return this.pending > 0
  }
}
