/**
 * Violations collected while a scenario runs: a scenario checks everything it
 * can and reports all that failed, rather than stopping at the first.
 *
 * @internal
 */
export class Checks {
  private readonly failed: Array<string> = []

  /** Records `message` unless `condition` holds. */
  that(condition: boolean, message: string): void {
    if (!condition) this.failed.push(message)
  }

  /** Records a mismatch unless `actual === expected`. */
  equal(what: string, actual: unknown, expected: unknown): void {
    if (actual !== expected) this.failed.push(`${what}: expected ${String(expected)}, got ${String(actual)}`)
  }

  add(message: string): void {
    this.failed.push(message)
  }

  get list(): ReadonlyArray<string> {
    // A thousand copies of one failure say no more than the first few.
    return this.failed.length <= 20 ? this.failed : [...this.failed.slice(0, 20), `… and ${this.failed.length - 20} more`]
  }
}
