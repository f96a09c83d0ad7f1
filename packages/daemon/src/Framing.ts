/**
 * Splits the bytes read from the command FIFO into command bytes and
 * JSON-RPC lines.
 *
 * Outside a line, every byte is a command byte (`D`, `G`, `Q`, `X`, or an
 * unknown one the event loop counts), except whitespace, which separates
 * them (`echo D > rps.cmd` sends `D` and a newline). A `{` or `[` starts a
 * JSON-RPC line, which runs to the next newline; its bytes are never taken
 * as commands. A line longer than the limit is discarded up to its newline
 * and reported as {@link Overlong}.
 *
 * @since 0.1.0
 */

/**
 * A command byte, outside any JSON line.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandByte {
  readonly _tag: "Command"
  readonly byte: number
}

/**
 * A complete JSON-RPC line, without its newline (and without a trailing `\r`).
 *
 * @since 0.1.0
 * @category models
 */
export interface Line {
  readonly _tag: "Line"
  readonly text: string
}

/**
 * A line that went past the limit; `bytes` is its full length.
 *
 * @since 0.1.0
 * @category models
 */
export interface Overlong {
  readonly _tag: "Overlong"
  readonly bytes: number
}

/**
 * What the framer recognised.
 *
 * @since 0.1.0
 * @category models
 */
export type Input = CommandByte | Line | Overlong

/**
 * Default longest line, in bytes (1 MiB).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxLine = 1 << 20

const LF = 0x0a
const isSeparator = (byte: number) => byte === 0x20 || byte === 0x09 || byte === LF || byte === 0x0d
const startsLine = (byte: number) => byte === 0x7b /* { */ || byte === 0x5b /* [ */

/**
 * A stateful framer: feed it chunks as they are read, in order; a line split
 * across chunks is put back together.
 *
 * @example
 * ```ts
 * import { Framing } from "@refpersys/daemon"
 *
 * const framer = new Framing.Framer()
 * framer.feed(Buffer.from('D\n{"jsonrpc":"2.0",'))       // [{ _tag: "Command", byte: 68 }]
 * framer.feed(Buffer.from('"method":"stats","id":1}\n')) // [{ _tag: "Line", text: '{"jsonrpc":...}' }]
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export class Framer {
  private chunks: Array<Uint8Array> = []
  private length = 0
  private inLine = false
  private discarding = false

  constructor(readonly maxLine: number = defaultMaxLine) {}

  /** Bytes of an unfinished line held so far. */
  get pending(): number {
    return this.length
  }

  /** Forgets an unfinished line (e.g. when the FIFO is reopened). */
  reset(): void {
    this.chunks = []
    this.length = 0
    this.inLine = false
    this.discarding = false
  }

  feed(bytes: Uint8Array): Array<Input> {
    const out: Array<Input> = []
    let i = 0
    while (i < bytes.length) {
      if (!this.inLine) {
        const byte = bytes[i]
        if (startsLine(byte)) {
          this.inLine = true
        } else {
          if (!isSeparator(byte)) out.push({ _tag: "Command", byte })
          i++
        }
        continue
      }
      const end = bytes.indexOf(LF, i)
      const stop = end < 0 ? bytes.length : end
      this.take(bytes.subarray(i, stop))
      if (end < 0) break
      this.finish(out)
      i = end + 1
    }
    return out
  }

  private take(part: Uint8Array): void {
    if (part.length === 0) return
    if (!this.discarding && this.length + part.length > this.maxLine) {
      this.discarding = true
      this.chunks = []
    }
    if (!this.discarding) this.chunks.push(Uint8Array.from(part))
    this.length += part.length
  }

  private finish(out: Array<Input>): void {
    if (this.discarding) out.push({ _tag: "Overlong", bytes: this.length })
    else {
      let text = Buffer.concat(this.chunks).toString("utf8")
      if (text.endsWith("\r")) text = text.slice(0, -1)
      out.push({ _tag: "Line", text })
    }
    this.reset()
  }
}
