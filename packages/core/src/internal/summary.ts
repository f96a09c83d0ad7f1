/**
 * Running count/min/max/mean of durations, per instance. Effect metrics are
 * global, so snapshots of one agenda or loop keep their own.
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

  /** Folds another summary into this one. */
  merge(other: Summary): this {
    this.count += other.count
    this.sum += other.sum
    this.min = Math.min(this.min, other.min)
    this.max = Math.max(this.max, other.max)
    return this
  }

  toJSON(): { count: number; min: number; max: number; mean: number } {
    return {
      count: this.count,
      min: this.count === 0 ? 0 : this.min,
      max: this.max,
      mean: this.count === 0 ? 0 : this.sum / this.count
    }
  }
}
