import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import type * as Scheduler from "effect/Scheduler"
import { RingQueue } from "./ringQueue.js"

/** @internal */
export interface PrioritySchedulerOptions {
  readonly sliceSize: number
}

/**
 * One FIFO per level. A drain runs the highest non-empty level first and
 * re-checks after every task, because a task often schedules a higher one.
 * After `sliceSize` tasks the rest waits for `setImmediate`, so timers and
 * I/O callbacks run between slices.
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

  constructor(readonly options: PrioritySchedulerOptions) {}

  shouldYield(fiber: Fiber.RuntimeFiber<unknown, unknown>): number | false {
    return fiber.currentOpCount > fiber.getFiberRef(FiberRef.currentMaxOpsBeforeYield)
      ? fiber.getFiberRef(FiberRef.currentSchedulingPriority)
      : false
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
    try {
      this.runSlice()
    } finally {
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
    }
  }
}
