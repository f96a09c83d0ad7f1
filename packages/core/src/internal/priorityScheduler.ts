import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as Scheduler from "effect/Scheduler"
import { RingQueue } from "./ringQueue.js"

/** @internal */
export interface PrioritySchedulerOptions {
  readonly sliceSize: number
  /** See `SLICE_MILLIS`, the default. */
  readonly sliceMillis: number
  readonly now: () => number
}

/**
 * Longest a slice runs, in milliseconds, give or take the task running when
 * it is reached. Effect bounds a fiber's run by operations (2,048) and the
 * slice bounds the runs by count (`sliceSize`), neither by time: a slice of
 * 256 agenda-worker runs of 2,048 operations each took over 100 ms, during
 * which no timer or I/O callback could run. With this bound a timer due while
 * the agenda is saturated fires about this late.
 *
 * Fibers are not made to yield for time (only slices end): a yield lands at
 * whatever operation the fiber is at, and inside `withSchedulingPriority(-1)`
 * it re-queues the fiber behind every Low fiber.
 */
export const SLICE_MILLIS = 2

/**
 * One FIFO per level. A drain runs the highest non-empty level first and
 * re-checks after every task, because a task often schedules a higher one.
 * After `sliceSize` tasks, or once the slice ran `sliceMillis` (`SLICE_MILLIS` by default), the rest
 * waits for `setImmediate`, so timers and I/O callbacks run between slices.
 *
 * @internal
 */
export class PrioritySchedulerImpl implements Scheduler.Scheduler {
  readonly high = new RingQueue<Scheduler.Task>(256)
  readonly normal = new RingQueue<Scheduler.Task>(256)
  readonly low = new RingQueue<Scheduler.Task>(256)
  private scheduled = false
  /** Tasks run since creation, per level, for tests and diagnostics. */
  readonly ran = [0, 0, 0]
  /** Number of slices that ended with work left over. */
  slicesCut = 0

  private readonly now: () => number
  constructor(readonly options: PrioritySchedulerOptions) {
    this.now = options.now
  }

  /** When the current slice must end (on `now`); infinite outside a slice. */
  private sliceEnd = Infinity

  shouldYield(fiber: Fiber.Fiber<unknown, unknown>): number | false {
    return fiber.currentOpCount > fiber.getFiberRef(FiberRef.currentMaxOpsBeforeYield)
      ? fiber.getFiberRef(FiberRef.currentSchedulingPriority)
      : false
  }

  /**
   * For code that does many small pieces of work inside one fiber step (the
   * agenda's synchronous tasklets): whether the current slice's time is up,
   * in which case the caller should yield so the slice can end.
   */
  sliceOver(): boolean {
    return this.now() > this.sliceEnd
  }

  scheduleTask(task: Scheduler.Task, priority: number): void {
    if (priority > 0) this.high.push(task)
    else if (priority < 0) this.low.push(task)
    else this.normal.push(task)
    if (!this.scheduled) {
      this.scheduled = true
      queueMicrotask(this.drain)
    }
  }

  get pending(): number {
    return this.high.length + this.normal.length + this.low.length
  }

  private readonly drain = (): void => {
    this.sliceEnd = this.now() + this.options.sliceMillis
    try {
      this.runSlice()
    } finally {
      this.sliceEnd = Infinity
      // Also reached when a task throws, so the scheduler never wedges.
      if (this.pending > 0) {
        this.slicesCut++
        setImmediate(this.drain)
      } else {
        this.scheduled = false
      }
    }
  }

  private runSlice(): void {
    for (let budget = this.options.sliceSize; budget > 0; budget--) {
      let task: Scheduler.Task | undefined
      if ((task = this.high.shift()) !== undefined) this.ran[0]++
      else if ((task = this.normal.shift()) !== undefined) this.ran[1]++
      else if ((task = this.low.shift()) !== undefined) this.ran[2]++
      else return
      task()
      if (this.now() > this.sliceEnd) return
    }
  }
}
