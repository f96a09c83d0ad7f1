/**
 * A per-second budget for output that input can trigger once per byte or
 * per line (log lines, dumps): everything is counted, at most `perSecond`
 * items go out in each one-second window, and what was held back in a window
 * is reported once, as a summary, when the next window opens or on
 * {@link RateLimit.takeSummary} once it is over. Output is then bounded by
 * `(perSecond + 1)` items per second whatever the input rate.
 *
 * @internal
 */

/** @internal */
export interface Summary {
  /** Items held back since the last summary. */
  readonly suppressed: number
  /** Items held back in total. */
  readonly total: number
  readonly perSecond: number
}

/** @internal */
export class RateLimit {
  private windowStart = Number.NEGATIVE_INFINITY
  private inWindow = 0
  private unreported = 0
  /** Items let through. */
  admitted = 0
  /** Items held back. */
  suppressed = 0

  constructor(readonly perSecond: number, private readonly now: () => number = () => performance.now()) {}

  /**
   * Whether one more item may go out now. When this call opens a new window
   * after one that held items back, `summary` says how many: print it first.
   */
  admit(): { readonly admit: boolean; readonly summary: Summary | undefined } {
    const now = this.now()
    let summary: Summary | undefined = undefined
    if (now - this.windowStart >= 1000) {
      summary = this.takeSummary(true)
      this.windowStart = now
      this.inWindow = 0
    }
    if (this.inWindow < this.perSecond) {
      this.inWindow++
      this.admitted++
      return { admit: true, summary }
    }
    this.suppressed++
    this.unreported++
    return { admit: false, summary }
  }

  /**
   * The items held back and not yet reported, if any (and forgets them);
   * only once their window is over unless `force` (at the end), so that
   * summaries too come at most once a second however often this is asked.
   */
  takeSummary(force = false): Summary | undefined {
    if (this.unreported === 0) return undefined
    if (!force && this.now() - this.windowStart < 1000) return undefined
    const summary = { suppressed: this.unreported, total: this.suppressed, perSecond: this.perSecond }
    this.unreported = 0
    return summary
  }
}
