const MAX_CHUNK = 1024

class Chunk<A> {
  readonly items: Array<A | undefined>
  next: Chunk<A> | undefined = undefined
  constructor(size: number) {
    this.items = new Array(size)
  }
}

/**
 * A growable FIFO. `Array#shift` is O(n) once V8 leaves its fast path, and the
 * agenda and scheduler shift on every task, so they use this.
 *
 * It is a list of chunks (at most 1,024 slots each) rather than one ring that
 * doubles: growing never copies the queued items, and no single array gets
 * big enough for V8's large-object space, where every store of a fresh item
 * costs a remembered-set entry (measured: a tenth of the agenda's time with
 * 100,000 queued tasklets went to copying and those stores).
 *
 * @internal
 */
export class RingQueue<A> {
  private head: Chunk<A>
  private tail: Chunk<A>
  private headIndex = 0
  private tailIndex = 0
  length = 0

  constructor(initialCapacity = 16) {
    let capacity = 16
    while (capacity < initialCapacity && capacity < MAX_CHUNK) capacity *= 2
    this.head = this.tail = new Chunk(capacity)
  }

  push(item: A): void {
    let tail = this.tail
    if (this.tailIndex === tail.items.length) {
      const next = new Chunk<A>(Math.min(MAX_CHUNK, tail.items.length * 2))
      tail.next = next
      this.tail = tail = next
      this.tailIndex = 0
    }
    tail.items[this.tailIndex++] = item
    this.length++
  }

  shift(): A | undefined {
    if (this.length === 0) return undefined
    const head = this.head
    const item = head.items[this.headIndex]
    // Release the slot so a drained queue does not keep its items alive.
    head.items[this.headIndex++] = undefined
    this.length--
    if (this.length === 0) {
      // Empty: start over in this chunk; later chunks (none) are dropped.
      head.next = undefined
      this.tail = head
      this.headIndex = this.tailIndex = 0
    } else if (this.headIndex === head.items.length) {
      this.head = head.next!
      head.next = undefined
      this.headIndex = 0
    }
    return item
  }

  peek(): A | undefined {
    return this.length === 0 ? undefined : this.head.items[this.headIndex]
  }

  /** Removes every item and returns them in FIFO order. */
  drain(): Array<A> {
    const out: Array<A> = []
    while (this.length > 0) out.push(this.shift()!)
    return out
  }
}
