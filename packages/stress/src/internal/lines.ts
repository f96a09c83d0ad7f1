/**
 * A JSON-RPC-over-lines reader for the command-fuzz scenario: splits bytes
 * into lines (bounded length, CRLF tolerated) and classifies each line.
 *
 * @internal
 */
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"

/** A JSON-RPC 2.0 request or notification. */
export const Request = Schema.Struct({
  jsonrpc: Schema.Literal("2.0"),
  method: Schema.String,
  id: Schema.optional(Schema.Union([Schema.String, Schema.Number, Schema.Null])),
  params: Schema.optional(Schema.Union([Schema.Array(Schema.Unknown), Schema.Record(Schema.String, Schema.Unknown)]))
})

export type LineClass = "valid" | "malformed" | "empty" | "tooLong"

const decodeRequest = Schema.decodeUnknownExit(Schema.fromJsonString(Request))
const utf8 = new TextDecoder("utf-8", { fatal: true })

/** Classifies one complete line (without its newline). */
export const classify = (line: Uint8Array): Exclude<LineClass, "tooLong"> => {
  let text: string
  try {
    text = utf8.decode(line)
  } catch {
    return "malformed"
  }
  if (text.trim().length === 0) return "empty"
  return Exit.isSuccess(decodeRequest(text)) ? "valid" : "malformed"
}

/**
 * Splits a byte stream into lines of at most `maxLine` bytes. A longer line
 * is reported once as `tooLong` and skipped up to its newline, so one huge
 * line costs no more than `maxLine` bytes of memory.
 */
export class LineSplitter {
  private parts: Array<Buffer> = []
  private size = 0
  private skipping = false

  constructor(readonly maxLine: number, readonly onLine: (line: Buffer | "tooLong") => void) {}

  feed(chunk: Buffer): void {
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(0x0a, start)
      const end = nl < 0 ? chunk.length : nl
      if (!this.skipping) {
        if (this.size + (end - start) > this.maxLine) {
          this.skipping = true
          this.parts = []
          this.size = 0
          this.onLine("tooLong")
        } else if (end > start) {
          this.parts.push(chunk.subarray(start, end))
          this.size += end - start
        }
      }
      if (nl < 0) return
      if (this.skipping) this.skipping = false
      else this.emit()
      start = nl + 1
    }
  }

  /** At end of input: a last line without a newline still counts. */
  end(): void {
    if (!this.skipping && this.size > 0) this.emit()
    this.skipping = false
  }

  private emit(): void {
    let line = Buffer.concat(this.parts, this.size)
    this.parts = []
    this.size = 0
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1)
    this.onLine(line)
  }
}
