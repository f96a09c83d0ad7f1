/**
 * Writes JSON-RPC replies to `rps.out` without ever blocking, and within a
 * bounded buffer.
 *
 * A reply is written at once when the FIFO has room. When it is full
 * (EAGAIN), the unwritten rest waits in `pending` and the caller retries
 * {@link ReplyWriter.flush}; after `stallMs` without progress the writer
 * empties the FIFO of the replies nobody read (counted in `discardedBytes`).
 * At most `maxPendingBytes` wait besides the newest reply: to make room, the
 * oldest whole replies are dropped first (counted in `repliesDropped`), as a
 * client still waiting is waiting for a recent one. Any other write error
 * (EPIPE when the FIFO has no reader, EBADF...) drops what is pending rather
 * than retrying for ever; later replies are tried again, one by one.
 *
 * Invariant: `pendingBytes` is the sum of the lengths of `pending`; only
 * `pending[0]` can be partly written (`headPartial`), and it is never
 * dropped to make room, since the FIFO already holds its first bytes.
 *
 * @internal
 */
import * as fs from "node:fs"

/** @internal */
export const defaultMaxPendingBytes = 4 * 1024 * 1024

const READ_CHUNK = 64 * 1024

const codeOf = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code

/** @internal */
export class ReplyWriter {
  private pending: Array<Buffer> = []
  private pendingBytes = 0
  /** Whether the head of `pending` is the rest of a line already partly written. */
  private headPartial = false
  private lastProgress = 0
  retrying = false
  /** Replies handed to the writer. */
  replies = 0
  /** Replies never written in full: dropped for room, or lost to a write error. */
  repliesDropped = 0
  /** Bytes dropped: from the FIFO when stale, and of dropped replies. */
  discardedBytes = 0
  /** The last write error other than EAGAIN, if any. */
  lastError: string | undefined = undefined

  /** `fd` is `-1` while the FIFO is closed (between a close and a reopen): replies wait. */
  constructor(
    public fd: number,
    readonly stallMs: number,
    readonly maxPendingBytes: number = defaultMaxPendingBytes
  ) {}

  get blocked(): boolean {
    return this.pending.length > 0
  }

  /** Bytes waiting to be written. */
  get waiting(): number {
    return this.pendingBytes
  }

  write(line: string): void {
    this.replies++
    const bytes = Buffer.from(line + "\n")
    this.makeRoom(bytes.length)
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
    if (this.pending.length === 1) this.lastProgress = performance.now()
    this.flush()
  }

  /** Writes what it can; `true` when nothing is left. */
  flush(): boolean {
    if (this.fd < 0) return this.pending.length === 0
    while (this.pending.length > 0) {
      const head = this.pending[0]
      let written: number
      try {
        written = fs.writeSync(this.fd, head)
      } catch (error) {
        if (codeOf(error) === "EAGAIN") break
        this.lastError = codeOf(error) ?? String(error)
        this.dropAll()
        return true
      }
      this.lastProgress = performance.now()
      this.pendingBytes -= written
      if (written < head.length) {
        this.pending[0] = head.subarray(written)
        this.headPartial = true
        break
      }
      this.pending.shift()
      this.headPartial = false
    }
    if (this.pending.length === 0) return true
    if (performance.now() - this.lastProgress >= this.stallMs) {
      this.discardStale()
      return this.flush()
    }
    return false
  }

  /** Drops the oldest whole replies until `incoming` more bytes fit (or none is left to drop). */
  private makeRoom(incoming: number): void {
    const first = this.headPartial ? 1 : 0
    while (this.pending.length > first && this.pendingBytes + incoming > this.maxPendingBytes) {
      const [dropped] = this.pending.splice(first, 1)
      this.pendingBytes -= dropped.length
      this.discardedBytes += dropped.length
      this.repliesDropped++
    }
  }

  private dropAll(): void {
    this.repliesDropped += this.pending.length
    this.discardedBytes += this.pendingBytes
    this.pending = []
    this.pendingBytes = 0
    this.headPartial = false
  }

  /** Empties the FIFO of replies nobody read, and drops a half-written line. */
  private discardStale(): void {
    const buffer = Buffer.allocUnsafe(READ_CHUNK)
    for (;;) {
      let n: number
      try {
        n = fs.readSync(this.fd, buffer, 0, buffer.length, null)
      } catch {
        break
      }
      if (n <= 0) break
      this.discardedBytes += n
    }
    if (this.headPartial) {
      const head = this.pending.shift()!
      this.pendingBytes -= head.length
      this.discardedBytes += head.length
      this.repliesDropped++
      this.headPartial = false
    }
    this.lastProgress = performance.now()
  }
}
