/**
 * A growable ring-buffer deque. The global queues take tasklets back at the
 * front (reclaimed from a thread, or left by a crashed one) so that they keep
 * their place, which a plain FIFO cannot do.
 *
 * @internal
 */
export class Deque<A> {
  private items: Array<A | undefined>
  private head = 0
  private mask: number
  length = 0

  constructor(initialCapacity = 16) {
    let capacity = 16
    while (capacity < initialCapacity) capacity *= 2
    this.items = new Array(capacity)
    this.mask = capacity - 1
  }

  push(item: A): void {
    if (this.length === this.items.length) this.grow()
    this.items[(this.head + this.length) & this.mask] = item
    this.length++
  }

  unshift(item: A): void {
    if (this.length === this.items.length) this.grow()
    this.head = (this.head - 1) & this.mask
    this.items[this.head] = item
    this.length++
  }

  shift(): A | undefined {
    if (this.length === 0) return undefined
    const item = this.items[this.head]
    // Release the slot so a drained queue does not keep its items alive.
    this.items[this.head] = undefined
    this.head = (this.head + 1) & this.mask
    this.length--
    return item
  }

  /** Removes every item and returns them in order. */
  drain(): Array<A> {
    const out: Array<A> = []
    let item = this.shift()
    while (item !== undefined) {
      out.push(item)
      item = this.shift()
    }
    return out
  }

  private grow(): void {
    const old = this.items
    const next: Array<A | undefined> = new Array(old.length * 2)
    for (let i = 0; i < this.length; i++) next[i] = old[(this.head + i) & this.mask]
    this.items = next
    this.head = 0
    this.mask = next.length - 1
  }
}
