/**
 * The timeout manager behind `Timeouts`: an indexed binary min-heap of
 * entries plus the driver that keeps the platform's one timer armed to the
 * earliest of them.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Semaphore from "effect/Semaphore"
import { InvalidOptions } from "../AgendaError.js"
import { TimerFired } from "../Event.js"
import type * as Platform from "../Platform.js"
import type * as Timeouts from "../Timeouts.js"

/** What the heap needs of an item: its key, and a slot to remember where it sits. */
export interface HeapItem {
  readonly deadline: number
  readonly seq: number
  /** Position in the heap, or -1 when not in it; kept by the heap. */
  heapIndex: number
}

const before = (a: HeapItem, b: HeapItem): boolean =>
  a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq)

/**
 * A binary min-heap on `(deadline, seq)`. Each item records its own index so
 * that removing an arbitrary item (a cancel) is O(log n) instead of a scan,
 * and so that the heap never holds dead entries that `pending` would have to
 * filter out.
 *
 * @internal
 */
export class DeadlineHeap<A extends HeapItem> {
  readonly items: Array<A> = []

  get size(): number {
    return this.items.length
  }

  peek(): A | undefined {
    return this.items[0]
  }

  push(item: A): void {
    item.heapIndex = this.items.length
    this.items.push(item)
    this.up(item.heapIndex)
  }

  pop(): A | undefined {
    const top = this.items[0]
    if (top !== undefined) this.remove(top)
    return top
  }

  /** Removes `item`; returns false if it was not in the heap. */
  remove(item: A): boolean {
    const i = item.heapIndex
    if (i < 0 || this.items[i] !== item) return false
    const last = this.items.pop()!
    item.heapIndex = -1
    if (last !== item) {
      this.items[i] = last
      last.heapIndex = i
      // The moved item may belong above or below its new slot, never both.
      if (i > 0 && before(last, this.items[(i - 1) >> 1])) this.up(i)
      else this.down(i)
    }
    return true
  }

  private up(i: number): void {
    const items = this.items
    const item = items[i]
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(item, items[parent])) break
      items[i] = items[parent]
      items[i].heapIndex = i
      i = parent
    }
    items[i] = item
    item.heapIndex = i
  }

  private down(i: number): void {
    const items = this.items
    const n = items.length
    const item = items[i]
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && before(items[right], items[left]) ? right : left
      if (!before(items[child], item)) break
      items[i] = items[child]
      items[i].heapIndex = i
      i = child
    }
    items[i] = item
    item.heapIndex = i
  }
}

const PENDING = 0
const FIRED = 1
const CANCELLED = 2

/**
 * A scheduled timeout. It is both the heap entry and the user's handle, so a
 * pending timeout costs one object.
 *
 * @internal
 */
export class Entry implements Timeouts.TimeoutHandle, HeapItem {
  heapIndex = -1
  seq = 0
  state = PENDING
  fired = 0
  missed = 0
  /** For periodic entries: `deadline === start + tick * interval`. */
  tick = 1
  readonly cancel: Effect.Effect<boolean>

  constructor(
    impl: TimeoutsImpl,
    readonly id: number,
    readonly label: string,
    public deadline: number,
    readonly interval: number | undefined,
    readonly start: number,
    // Released once the entry can no longer fire, so a handle kept by the
    // user does not keep the effect's closure alive.
    public effect: Effect.Effect<void, unknown> | undefined
  ) {
    this.cancel = Effect.suspend(() => impl.cancel(this))
  }

  info(): Timeouts.TimeoutInfo {
    return {
      id: this.id,
      label: this.label,
      deadline: this.deadline,
      interval: this.interval,
      fired: this.fired,
      missed: this.missed
    }
  }

  /** Printing a handle shows its info, not the manager it points to. */
  toJSON(): Timeouts.TimeoutInfo {
    return this.info()
  }

  toString(): string {
    const state = this.state === PENDING ? "pending" : this.state === FIRED ? "fired" : "cancelled"
    return `Timeout#${this.id}(${this.label}, ${state}, deadline ${this.deadline})`
  }
}

const isNegativeInput = (input: unknown): boolean =>
  (typeof input === "number" && !(input >= 0)) ||
  (typeof input === "bigint" && input < BigInt(0)) ||
  (typeof input === "string" && /^\s*-/.test(input)) ||
  (Array.isArray(input) && input.some((n) => typeof n === "number" && !(n >= 0)))

/**
 * Milliseconds of a finite, non-negative duration, or `undefined`.
 * `Duration.fromInput` turns `NaN` into zero and keeps negative inputs as
 * negative durations, either of which would make a caller's mistake a
 * timeout that fires at once, so both are caught here.
 */
export const decodeMillis = (input: unknown): number | undefined => {
  if (isNegativeInput(input)) return undefined
  const d = Duration.fromInput(input as Duration.Input)
  if (Option.isNone(d) || !Duration.isFinite(d.value) || Duration.isNegative(d.value)) return undefined
  return Duration.toMillis(d.value)
}

/** An entry taken from the heap for the current batch, with the tick it fires for. */
interface Due {
  readonly entry: Entry
  readonly deadline: number
  readonly missed: number
}

type OnFire = (event: TimerFired, effect: Effect.Effect<void, unknown>) => Effect.Effect<void>

/**
 * The state of one `Timeouts` instance.
 *
 * @internal
 */
export class TimeoutsImpl {
  readonly heap = new DeadlineHeap<Entry>()
  private nextId = 1
  private nextSeq = 0
  /**
   * The deadline the platform timer was last armed to and has not yet fired
   * for, or `undefined`. Assigned before the platform call so that a caller
   * racing an arm in progress sees the deadline it is about to get.
   */
  private armed: number | undefined = undefined
  private closed = false
  scheduled = 0
  firedCount = 0
  cancelled = 0
  missedTicks = 0
  failures = 0
  private readonly onFire: OnFire

  constructor(
    private readonly timer: Platform.Timer,
    private readonly clock: Clock.Clock,
    // Serialises arm/disarm calls: two fibers each arming the head they saw
    // could otherwise leave the timer on the later of two deadlines.
    private readonly lock: Semaphore.Semaphore,
    onFire: OnFire | undefined
  ) {
    this.onFire = onFire ?? this.runInline
  }

  private readonly runInline: OnFire = (event, effect) =>
    Effect.catchCause(effect, (cause) => {
      this.failures++
      return this.logFailure(event, "failed", cause)
    })

  private logFailure(event: TimerFired, what: string, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    return Effect.logError(`timeout #${event.id} (${event.label}) ${what}; the other timeouts go on`, cause).pipe(
      Effect.annotateLogs({ timeout: event.label, timeoutId: event.id })
    )
  }

  insert(
    deadline: unknown,
    interval: number | undefined,
    start: number,
    effect: unknown,
    options: { readonly label?: string } | undefined
  ): Entry | InvalidOptions {
    if (typeof deadline !== "number" || !Number.isFinite(deadline)) {
      return new InvalidOptions({ option: "deadline", value: deadline, expected: "a finite number of Clock milliseconds" })
    }
    if (!Effect.isEffect(effect)) {
      return new InvalidOptions({ option: "effect", value: effect, expected: "an Effect" })
    }
    const label = options?.label
    if (label !== undefined && typeof label !== "string") {
      return new InvalidOptions({ option: "label", value: label, expected: "a string" })
    }
    const id = this.nextId++
    const entry = new Entry(
      this,
      id,
      label ?? `timeout#${id}`,
      deadline,
      interval,
      start,
      effect as Effect.Effect<void, unknown>
    )
    entry.seq = this.nextSeq++
    this.heap.push(entry)
    this.scheduled++
    return entry
  }

  now(): number {
    return this.clock.currentTimeMillisUnsafe()
  }

  schedule(
    deadline: unknown,
    interval: number | undefined,
    start: number,
    effect: unknown,
    options: { readonly label?: string } | undefined
  ): Effect.Effect<Timeouts.TimeoutHandle, InvalidOptions> {
    const entry = this.insert(deadline, interval, start, effect, options)
    return entry instanceof Entry ? Effect.as(this.rearm, entry) : Effect.fail(entry)
  }

  cancel(entry: Entry): Effect.Effect<boolean> {
    if (entry.state !== PENDING) return Effect.succeed(false)
    const wasHead = this.heap.peek() === entry
    this.heap.remove(entry)
    entry.state = CANCELLED
    entry.effect = undefined
    this.cancelled++
    return wasHead ? Effect.as(this.rearm, true) : Effect.succeed(true)
  }

  /**
   * Brings the platform timer in line with the head of the heap, for callers
   * of `after`/`at`/`every`/`cancel`. Cheap when nothing changed, which is
   * the common case for inserts behind the head.
   *
   * The platform call runs on a fiber of its own that the caller joins: if
   * the caller is interrupted, the new entry is already in the heap and the
   * arm must still happen. Making the caller uninterruptible instead would
   * make every fiber the platform forks while arming uninterruptible too.
   */
  readonly rearm: Effect.Effect<void> = Effect.suspend(() =>
    this.inSync() ? Effect.void : Effect.flatMap(Effect.forkDetach(this.rearmLocked()), Fiber.join)
  )

  private inSync(): boolean {
    return this.closed || this.heap.peek()?.deadline === this.armed
  }

  private rearmLocked(): Effect.Effect<void> {
    return this.lock.withPermits(1)(Effect.suspend(() => {
      // Look again: the head or the timer may have changed while waiting.
      if (this.inSync()) return Effect.void
      const head = this.heap.peek()?.deadline
      this.armed = head
      // `insert` admits finite deadlines only, the one thing `arm` refuses.
      return head === undefined ? this.timer.disarm : Effect.orDie(this.timer.arm(head))
    }))
  }

  /** Stops arming: the timer is about to be released with the scope. */
  close(): void {
    this.closed = true
  }

  /**
   * Pops every entry due at `now`, in `(deadline, seq)` order, re-queueing
   * periodic ones at their next tick. Nothing is fired yet.
   */
  private takeDue(now: number): Array<Due> {
    const due: Array<Due> = []
    for (let entry = this.heap.peek(); entry !== undefined && entry.deadline <= now; entry = this.heap.peek()) {
      this.heap.pop()
      const deadline = entry.deadline
      let missed = 0
      const interval = entry.interval
      if (interval !== undefined) {
        // Ticks are counted from the start rather than added to the previous
        // deadline, so that lateness and rounding never accumulate into drift.
        let latest = Math.max(entry.tick, Math.floor((now - entry.start) / interval))
        while (entry.start + (latest + 1) * interval <= now) latest++
        while (latest > entry.tick && entry.start + latest * interval > now) latest--
        missed = latest - entry.tick
        entry.tick = latest + 1
        entry.deadline = entry.start + entry.tick * interval
        entry.seq = this.nextSeq++
        this.heap.push(entry)
      }
      due.push({ entry, deadline, missed })
    }
    return due
  }

  /** Marks a taken entry fired; `undefined` if an earlier firing of its batch cancelled it. */
  private dispatch(due: Due, now: number): readonly [TimerFired, Effect.Effect<void, unknown>] | undefined {
    const { deadline, entry, missed } = due
    const effect = entry.effect
    if (entry.state !== PENDING || effect === undefined) return undefined
    if (entry.interval === undefined) {
      entry.state = FIRED
      entry.effect = undefined
    }
    entry.fired++
    entry.missed += missed
    this.firedCount++
    this.missedTicks += missed
    // Validation off: every field is a number or string built right here, and
    // validating costs more than the rest of a firing.
    return [new TimerFired({ id: entry.id, label: entry.label, deadline, missed, at: now }, { disableChecks: true }), effect]
  }

  private fire(event: TimerFired, effect: Effect.Effect<void, unknown>): Effect.Effect<void> {
    return Effect.catchCause(this.onFire(event, effect), (cause) => {
      // A custom `onFire` must not take the driver down with it.
      this.failures++
      return this.logFailure(event, "could not be dispatched (onFire failed)", cause)
    })
  }

  /**
   * One platform firing: everything due now, in `(deadline, seq)` order.
   *
   * The due entries are taken out of the heap before the first one fires, so
   * entries that firings schedule wait for the next platform firing (the
   * timer is re-armed to their past deadline, so it comes at once). A firing
   * that keeps scheduling timeouts in the past therefore cannot keep the
   * driver in one batch for ever, nor stand in front of entries that became
   * due meanwhile.
   */
  readonly onTimer: Effect.Effect<void> = Effect.suspend(() => {
    // The timer is one-shot: whatever it was armed to has been spent (or the
    // firing is stale, and re-arming the same deadline is harmless).
    this.armed = undefined
    const now = this.now()
    const due = this.takeDue(now)
    let next = 0
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      while (next < due.length) {
        const dispatched = this.dispatch(due[next++], now)
        if (dispatched !== undefined) return Effect.andThen(this.fire(dispatched[0], dispatched[1]), loop)
      }
      // The driver arms directly: it has no caller that could be interrupted.
      return this.inSync() ? Effect.void : this.rearmLocked()
    })
    return loop
  })

  pending(): ReadonlyArray<Timeouts.TimeoutInfo> {
    return this.heap.items
      .slice()
      .sort((a, b) => a.deadline - b.deadline || a.id - b.id)
      .map((entry) => entry.info())
  }

  stats(): Timeouts.TimeoutStats {
    return {
      scheduled: this.scheduled,
      fired: this.firedCount,
      cancelled: this.cancelled,
      missedTicks: this.missedTicks,
      failures: this.failures,
      pending: this.heap.size
    }
  }
}
