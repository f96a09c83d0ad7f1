import { describe, it } from "@effect/vitest"
import { expect } from "vitest"
import { classify, LineSplitter } from "../src/internal/lines.js"

const split = (chunks: ReadonlyArray<string | Buffer>, maxLine = 16) => {
  const lines: Array<string> = []
  const splitter = new LineSplitter(maxLine, (line) => lines.push(line === "tooLong" ? "<too long>" : line.toString()))
  for (const chunk of chunks) splitter.feed(typeof chunk === "string" ? Buffer.from(chunk) : chunk)
  splitter.end()
  return lines
}

describe("LineSplitter", () => {
  it("splits across chunk boundaries, strips one CR, keeps empty lines, flushes the last line at the end", () => {
    expect(split(["ab", "c\nd", "e\r\n\n", "last"])).toEqual(["abc", "de", "", "last"])
  })

  it("reports an over-long line once and resumes after its newline", () => {
    expect(split(["0123456789", "0123456789", "01\nok\n"])).toEqual(["<too long>", "ok"])
    expect(split(["0123456789012345678"])).toEqual(["<too long>"])
  })
})

describe("classify", () => {
  const c = (s: string | Buffer) => classify(typeof s === "string" ? Buffer.from(s) : s)

  it("accepts JSON-RPC 2.0 requests and notifications", () => {
    expect(c("{\"jsonrpc\":\"2.0\",\"method\":\"status\",\"id\":1}")).toBe("valid")
    expect(c("{\"jsonrpc\":\"2.0\",\"method\":\"quit\",\"params\":[1]}")).toBe("valid")
  })

  it("rejects what is not one, and says so", () => {
    for (const bad of ["{\"jsonrpc\":\"2.0\"", "[1]", "{\"jsonrpc\":\"1.0\",\"method\":\"x\"}", "{\"jsonrpc\":\"2.0\",\"method\":5}"]) {
      expect(c(bad)).toBe("malformed")
    }
    expect(c(Buffer.from([0x7b, 0xff, 0x7d]))).toBe("malformed")
    expect(c(" \t")).toBe("empty")
  })
})
