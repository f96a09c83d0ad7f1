import { describe, expect, it } from "@effect/vitest"
import { Platform } from "@refpersys/core"
import { TestPlatform } from "@refpersys/testkit"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Clock, Effect, Fiber, Option, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as NodePlatform from "../src/NodePlatform.js"
import { exited, puller } from "./util.js"
import { closedFd, fifo, fifos } from "./fifos.js"

/** The error of an effect that must fail with a PlatformError. */
const failure = <A, R>(effect: Effect.Effect<A, Platform.PlatformError, R>) =>
  Effect.matchEffect(effect, {
    onFailure: (error) => Effect.succeed(error),
    onSuccess: () => Effect.die(new Error("expected a PlatformError, but the operation succeeded"))
  })

/** Reads every byte of a watch until its hang-up, taking the bytes after each report. */
const readAll = (platform: NodePlatform.NodePlatform, fd: number, reports: Stream.Stream<Platform.Readiness, Platform.PlatformError>) =>
  Effect.gen(function*() {
    const seen: Array<Platform.Readiness> = []
    let text = ""
    yield* Stream.runForEach(reports, (r) =>
      Effect.map(platform.read(fd), (bytes) => {
        seen.push(r)
        text += Buffer.from(bytes).toString()
      }))
    return { seen, text }
  })

describe("NodePlatform", () => {
  it.live("describes itself as node-portable without real-time signals", () =>
    Effect.gen(function*() {
      const platform = yield* NodePlatform.make()
      expect(platform.info).toEqual({ name: "node-portable", maxFds: 128, realtimeSignals: false })
      expect((yield* NodePlatform.make({ maxFds: 3 })).info.maxFds).toBe(3)
    }))

  describe("signals", () => {
    it.live("real SIGUSR2 and SIGHUP sent to this process arrive through a claim, once each", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const next = yield* puller(yield* platform.signals(["SIGUSR2", "SIGHUP"]))
        process.kill(process.pid, "SIGUSR2")
        expect(yield* next).toBe("SIGUSR2")
        process.kill(process.pid, "SIGHUP")
        expect(yield* next).toBe("SIGHUP")
        // Were SIGHUP delivered twice, the duplicate would come before this.
        process.kill(process.pid, "SIGUSR2")
        expect(yield* next).toBe("SIGUSR2")
      }))

    it.live("two claims of one signal both get each delivery; closing a claim removes its listener", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const before = process.listenerCount("SIGUSR2")
        const first = yield* puller(yield* platform.signals(["SIGUSR2"]))
        yield* Effect.scoped(Effect.gen(function*() {
          const second = yield* puller(yield* platform.signals(["SIGUSR2"]))
          expect(process.listenerCount("SIGUSR2")).toBe(before + 2)
          process.kill(process.pid, "SIGUSR2")
          expect(yield* first).toBe("SIGUSR2")
          expect(yield* second).toBe("SIGUSR2")
        }))
        expect(process.listenerCount("SIGUSR2")).toBe(before + 1)
        // The remaining claim still keeps the process alive and informed.
        process.kill(process.pid, "SIGUSR2")
        expect(yield* first).toBe("SIGUSR2")
      }))

    it.live("SIGCHLD can be claimed, and a real child's exit delivers it", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const next = yield* puller(yield* platform.signals(["SIGCHLD"]))
        const child = spawn("true", { stdio: "ignore" })
        expect(yield* next).toBe("SIGCHLD")
        expect(yield* exited(child)).toBe(0)
      }))

    it.live("signals Node would make fatal on release keep a no-op listener after the claim", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        yield* Effect.scoped(platform.signals(["SIGPIPE", "SIGUSR1"]))
        // Without a listener libuv resets them to SIG_DFL, which kills.
        expect(process.listenerCount("SIGPIPE")).toBeGreaterThanOrEqual(1)
        expect(process.listenerCount("SIGUSR1")).toBeGreaterThanOrEqual(1)
      }))

    it.live("real-time signals, SIGKILL, SIGSTOP and unknown names fail with InvalidSignal and claim nothing", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const rt = yield* failure(Effect.scoped(platform.signals(["SIGRTMIN+1"])))
        expect(rt.reason).toBe("InvalidSignal")
        expect(rt.detail).toContain("linux-native")
        for (const name of ["SIGKILL", "SIGSTOP", "SIGSEGV", "SIGNOPE"]) {
          const error = yield* failure(Effect.scoped(platform.signals([name])))
          expect(error.reason).toBe("InvalidSignal")
          expect(error.detail).toContain(name)
        }
        const before = process.listenerCount("SIGTERM")
        const mixed = yield* failure(Effect.scoped(platform.signals(["SIGTERM", "SIGRTMAX-2"])))
        expect(mixed.detail).toContain("SIGRTMAX-2")
        expect(process.listenerCount("SIGTERM")).toBe(before)
      }))
  })

  describe("watch", () => {
    it.live("a pipe written by a child process is readable, its bytes readable, and hangs up when the child exits", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const f = yield* fifo
        const reports = yield* platform.watch(f.readFd, { read: true })
        // The child's stdout is the only writer left once the test's copy is closed.
        const child = spawn("sh", ["-c", "printf hello; printf ' world'"], { stdio: ["ignore", f.writeFd, "inherit"] })
        NodePlatform.trackChild(child)
        f.closeWriter()
        const { seen, text } = yield* readAll(platform, f.readFd, reports)
        expect(text).toBe("hello world")
        expect(seen[0].read).toBe(true)
        expect(seen.filter((r) => r.hup)).toHaveLength(1)
        expect(seen[seen.length - 1].hup).toBe(true)
        expect(seen.every((r) => !r.write && !r.error)).toBe(true)
        const status = yield* Stream.runHead(Stream.filter(platform.childExits, (s) => s.pid === child.pid))
        expect(Option.getOrThrow(status)).toEqual({ pid: child.pid, code: 0, signal: null })
        // The watch read through its own file description: the test's fd is still open.
        expect(fs.fstatSync(f.readFd).isFIFO()).toBe(true)
      }))

    it.live("a FIFO written by path by a child is read through readiness; bytes held past the hang-up stay readable", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const f = yield* fifo
        const next = yield* puller(yield* platform.watch(f.readFd, { read: true }))
        const child = spawn("sh", ["-c", `printf 'from the child' > '${f.path}'`], { stdio: "ignore" })
        expect(yield* exited(child)).toBe(0)
        expect(yield* next).toEqual({ read: true, write: false, hup: false, error: false })
        // One report until the bytes are taken: unread, nothing more arrives.
        f.write("!")
        f.closeWriter()
        const last = yield* next
        expect(last.hup).toBe(true)
        expect(last.read).toBe(true)
        expect(Buffer.from(yield* platform.read(f.readFd)).toString()).toBe("from the child!")
        expect((yield* platform.read(f.readFd)).length).toBe(0)
      }))

    it.live("a closed fd fails with BadFd and EBADF; a regular file with BadFd explaining why", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const closed = yield* failure(Effect.scoped(platform.watch(yield* closedFd, { read: true })))
        expect(closed.reason).toBe("BadFd")
        expect(closed.errno).toBe("EBADF")
        const file = yield* Effect.acquireRelease(
          // The node binary: a regular file that surely exists.
          Effect.sync(() => fs.openSync(process.execPath, "r")),
          (fd) => Effect.sync(() => fs.closeSync(fd))
        )
        const regular = yield* failure(Effect.scoped(platform.watch(file, { read: true })))
        expect(regular.reason).toBe("BadFd")
        expect(regular.detail).toContain("regular file")
        expect(regular.detail).toContain("always ready")
      }))

    it.live("a second watch fails with AlreadyWatched; write interest fails with Unsupported", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const f = yield* fifo
        yield* platform.watch(f.readFd, { read: true })
        expect((yield* failure(Effect.scoped(platform.watch(f.readFd, { read: true })))).reason).toBe("AlreadyWatched")
        const other = yield* fifo
        const write = yield* failure(Effect.scoped(platform.watch(other.readFd, { read: true, write: true })))
        expect(write.reason).toBe("Unsupported")
        expect(write.detail).toContain("write readiness")
      }))

    it.live("a socket Node already polls (a net.Socket) fails with AlreadyWatched naming Node as the poller", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const dir = yield* Effect.acquireRelease(
          Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rps-eexist-"))),
          (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
        )
        const socketPath = path.join(dir, "s")
        const server = net.createServer((peer) => peer.on("error", () => {}))
        yield* Effect.acquireRelease(
          Effect.callback<void>((resume) => void server.listen(socketPath, () => resume(Effect.void))),
          () => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
        )
        const client = yield* Effect.acquireRelease(
          Effect.callback<net.Socket>((resume) => {
            // Resumed after the connect callback: Node starts reading (polling
            // the fd) only when that callback returns, and the fiber resumed
            // by `resume` runs at once, inside it.
            const socket = net.connect(socketPath, () => setImmediate(() => resume(Effect.succeed(socket))))
          }),
          (socket) => Effect.sync(() => socket.destroy())
        )
        const fd = (client as unknown as { _handle: { fd: number } })._handle.fd
        expect(fd).toBeGreaterThan(2)
        const error = yield* failure(Effect.scoped(platform.watch(fd, { read: true })))
        expect(error.reason).toBe("AlreadyWatched")
        expect(error.errno).toBe("EEXIST")
        expect(error.detail).toContain("already polled by Node itself")
        expect(error.detail).toContain("net.Socket")
        expect(error.detail).not.toContain("only pipes, FIFOs and stream sockets")
      }))

    it.live("a character device such as /dev/null fails with Unsupported saying what it is", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const fd = yield* Effect.acquireRelease(
          Effect.sync(() => fs.openSync("/dev/null", "r")),
          (fd) => Effect.sync(() => fs.closeSync(fd))
        )
        const error = yield* failure(Effect.scoped(platform.watch(fd, { read: true })))
        expect(error.reason).toBe("Unsupported")
        expect(error.detail).toContain("a character device")
        expect(error.detail).toContain("/dev/null")
      }))

    it.live("the 129th watch fails with TooManyFds", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const all = yield* fifos(129)
        for (const f of all.slice(0, 128)) yield* platform.watch(f.readFd, { read: true })
        const error = yield* failure(Effect.scoped(platform.watch(all[128].readFd, { read: true })))
        expect(error.reason).toBe("TooManyFds")
        expect(error.detail).toContain("128")
      }))

    it.live("closing the watch's scope leaves the caller's fd open and watchable again", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const f = yield* fifo
        yield* Effect.scoped(platform.watch(f.readFd, { read: true }))
        expect(fs.fstatSync(f.readFd).isFIFO()).toBe(true)
        const next = yield* puller(yield* platform.watch(f.readFd, { read: true }))
        f.write("again")
        expect((yield* next).read).toBe(true)
        expect(Buffer.from(yield* platform.read(f.readFd)).toString()).toBe("again")
      }))

    it.live("NodePlatform.read fails with Unsupported on another platform, BadFd on an unwatched fd", () =>
      Effect.gen(function*() {
        const other = yield* failure(Effect.provide(NodePlatform.read(3), TestPlatform.layer()))
        expect(other.reason).toBe("Unsupported")
        const unwatched = yield* failure(Effect.provide(NodePlatform.read(3), NodePlatform.layer()))
        expect(unwatched.reason).toBe("BadFd")
      }))
  })

  describe("timer", () => {
    it.live("on the live clock it fires with its deadline and not before it", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const timer = yield* platform.timer
        for (const delay of [1, 7, 25]) {
          const deadline = (yield* Clock.currentTimeMillis) + delay
          const receipt = yield* Effect.forkChild(Stream.runHead(Stream.mapEffect(timer.fired, (d) =>
            Effect.sync(() => ({ deadline: d, at: Date.now() })))))
          yield* timer.arm(deadline)
          const fired = Option.getOrThrow(yield* Fiber.join(receipt))
          expect(fired.deadline).toBe(deadline)
          expect(fired.at).toBeGreaterThanOrEqual(deadline)
        }
      }))

    it.effect("it sleeps on the program's Clock, so TestClock moves it", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const timer = yield* platform.timer
        const receipt = yield* Effect.forkChild(Stream.runHead(timer.fired))
        const deadline = (yield* Clock.currentTimeMillis) + 1000
        yield* timer.arm(deadline)
        yield* TestClock.adjust(999)
        expect(receipt.pollUnsafe()).toBeUndefined()
        yield* TestClock.adjust(1)
        expect(yield* Fiber.join(receipt)).toEqual(Option.some(deadline))
      }))
  })

  describe("commands and children", () => {
    it.live("unsafeSend from a Node callback and send keep order; bad bytes fail; a closed platform refuses", () =>
      Effect.gen(function*() {
        const platform = yield* Effect.scoped(Effect.gen(function*() {
          const platform = yield* NodePlatform.make()
          const received = yield* Effect.forkChild(Stream.runCollect(Stream.take(platform.commands.received, 3)))
          yield* platform.commands.send(1)
          yield* Effect.callback<void>((resume) => {
            setTimeout(() => {
              platform.commands.unsafeSend(2)
              resume(Effect.void)
            }, 0)
          })
          yield* platform.commands.send(255)
          expect(yield* Fiber.join(received)).toEqual([1, 2, 255])
          expect((yield* failure(platform.commands.send(256))).reason).toBe("InvalidByte")
          expect(() => platform.commands.unsafeSend(-1)).toThrow(/InvalidByte/)
          return platform
        }))
        expect((yield* failure(platform.commands.send(1))).reason).toBe("Closed")
        expect((yield* failure(Effect.scoped(platform.watch(0, {})))).reason).toBe("Closed")
      }))

    it.live("trackChild reports exit codes and killing signals, also of children that already exited", () =>
      Effect.gen(function*() {
        const platform = yield* NodePlatform.make()
        const exits = yield* puller(platform.childExits)
        const three = spawn("sh", ["-c", "exit 3"], { stdio: "ignore" })
        NodePlatform.trackChild(three)
        expect(yield* exits).toEqual({ pid: three.pid, code: 3, signal: null })
        const killed = spawn("sleep", ["30"], { stdio: "ignore" })
        NodePlatform.trackChild(killed)
        killed.kill("SIGTERM")
        expect(yield* exits).toEqual({ pid: killed.pid, code: null, signal: "SIGTERM" })
        const early = spawn("true", { stdio: "ignore" })
        yield* exited(early)
        NodePlatform.trackChild(early)
        expect(yield* exits).toEqual({ pid: early.pid, code: 0, signal: null })
      }))
  })
})
