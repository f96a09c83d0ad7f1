import { it } from "@effect/vitest"
import { describe, expect } from "vitest"
import * as Framing from "../src/Framing.js"

const feed = (framer: Framing.Framer, text: string) => framer.feed(Buffer.from(text))
const command = (c: string): Framing.Input => ({ _tag: "Command", byte: c.charCodeAt(0) })

describe("Framing.Framer", () => {
  it("takes bytes outside lines as commands and skips whitespace", () => {
    const framer = new Framing.Framer()
    expect(feed(framer, "D\nG Q\r\n\tXZ")).toEqual([command("D"), command("G"), command("Q"), command("X"), command("Z")])
    expect(framer.feed(Uint8Array.of(0, 255))).toEqual([{ _tag: "Command", byte: 0 }, { _tag: "Command", byte: 255 }])
  })

  it("takes a line starting with { or [ as JSON, commands inside it included", () => {
    const framer = new Framing.Framer()
    expect(feed(framer, 'D{"method":"QX"}\n[1]\nG')).toEqual([
      command("D"),
      { _tag: "Line", text: '{"method":"QX"}' },
      { _tag: "Line", text: "[1]" },
      command("G")
    ])
  })

  it("joins a line split across chunks, and drops a trailing CR", () => {
    const framer = new Framing.Framer()
    expect(feed(framer, '{"jsonrpc":')).toEqual([])
    expect(framer.pending).toBe(11)
    expect(feed(framer, '"2.0"')).toEqual([])
    expect(feed(framer, "}\r\nQ")).toEqual([{ _tag: "Line", text: '{"jsonrpc":"2.0"}' }, command("Q")])
    expect(framer.pending).toBe(0)
  })

  it("keeps multi-byte characters split across chunks whole", () => {
    const framer = new Framing.Framer()
    const bytes = Buffer.from('{"label":"é"}\n')
    const cut = bytes.indexOf(0xc3) + 1
    expect(framer.feed(bytes.subarray(0, cut))).toEqual([])
    expect(framer.feed(bytes.subarray(cut))).toEqual([{ _tag: "Line", text: '{"label":"é"}' }])
  })

  it("discards an overlong line up to its newline and reports its length", () => {
    const framer = new Framing.Framer(16)
    const long = `{${"x".repeat(40)}}`
    expect(feed(framer, long.slice(0, 20))).toEqual([])
    expect(feed(framer, `${long.slice(20)}\nD{}\n`)).toEqual([
      { _tag: "Overlong", bytes: long.length },
      command("D"),
      { _tag: "Line", text: "{}" }
    ])
  })

  it("reset forgets an unfinished line", () => {
    const framer = new Framing.Framer()
    feed(framer, '{"half')
    framer.reset()
    expect(feed(framer, 'D"}\n')).toEqual([command("D"), command('"'), command("}")])
  })
})
