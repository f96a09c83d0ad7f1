/**
 * Running count/min/max/mean of durations in milliseconds, per instance.
 *
 * @internal
 */
export class Summary {
  count = 0
  min = Infinity
  max = 0
  sum = 0

  add(v: number): void {
    this.count++
    this.sum += v
    if (v < this.min) this.min = v
    if (v > this.max) this.max = v
  }

  static merge(summaries: ReadonlyArray<Summary>): { count: number; min: number; max: number; mean: number } {
    const s = new Summary()
    for (const x of summaries) {
      s.count += x.count
      s.sum += x.sum
      s.min = Math.min(s.min, x.min)
      s.max = Math.max(s.max, x.max)
    }
    return {
      count: s.count,
      min: s.count === 0 ? 0 : s.min,
      max: s.max,
      mean: s.count === 0 ? 0 : s.sum / s.count
    }
  }
}
