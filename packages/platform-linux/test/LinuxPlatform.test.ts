import { describe, expect, it } from "@effect/vitest"
import { Platform } from "@refpersys/core"
import { Cause, Clock, Deferred, Effect, Exit, Fiber, Layer, Option, Stream } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import * as LinuxPlatform from "../src/LinuxPlatform.js"
import * as Native from "../src/internal/native.js"
import { exited, pipeInScope, puller } from "./util.js"

const addon = Native.addon

// The PlatformError an effect failed with (a success fails the test).
const failure = <A, R>(effect: Effect.Effect<A, Platform.PlatformError, R>) =>
  Effect.flip(effect)

if (addon !== undefined) {
  describe("LinuxPlatform (native addon)", () => {
    it.live("reports itself as linux-native with real-time signals and 128 fds", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        expect(platform.info).toEqual({ name: "linux-native", maxFds: 128, realtimeSignals: true })
      }))

    it.live("command bytes round trip in order through the real pipe", () =>
      Effect.gen(function*() {
        const { commands } = yield* LinuxPlatform.make()
        const bytes = Array.from({ length: 3000 }, (_, i) => (i * 7) % 256)
        const received = yield* Effect.forkChild(Stream.runCollect(Stream.take(commands.received, bytes.length)))
        for (const [i, byte] of bytes.entries()) {
          if (i % 2 === 0) yield* commands.send(byte)
          else commands.unsafeSend(byte)
        }
        expect(yield* Fiber.join(received)).toEqual(bytes)
      }))

    it.live("one-byte writes from a worker thread arrive in order", () =>
      Effect.gen(function*() {
        const pipe = yield* pipeInScope(addon)
        const count = 500
        const done = yield* Deferred.make<Array<number>>()
        const seen: Array<number> = []
        const poll = addon.pollOpen(pipe.readFd, () => {
          for (;;) {
            const bytes = addon.readBytes(pipe.readFd, 4096)
            if (bytes === null || bytes.length === 0) break
            seen.push(...bytes)
          }
          if (seen.length >= count) Deferred.doneUnsafe(done, Exit.succeed(seen))
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => addon.pollClose(poll)))
        addon.pollStart(poll, true, false)
        const worker = new Worker(
          `const addon = require(${JSON.stringify(Native.addonPath)});
           for (let i = 0; i < ${count}; i++) addon.sendByte(${pipe.writeFd}, i % 256);`,
          { eval: true }
        )
        yield* Effect.addFinalizer(() => Effect.promise(() => worker.terminate()))
        const all = yield* Deferred.await(done)
        expect(all).toEqual(Array.from({ length: count }, (_, i) => i % 256))
      }))

    it.live("SIGUSR1, SIGUSR2 and SIGHUP from process.kill arrive once each, and the process lives", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const names = ["SIGUSR1", "SIGUSR2", "SIGHUP"]
        const next = yield* puller(yield* platform.signals(names))
        for (const name of names) {
          process.kill(process.pid, name)
          expect(yield* next).toBe(name)
        }
        // A duplicate of any of them would come before this one.
        process.kill(process.pid, "SIGUSR2")
        expect(yield* next).toBe("SIGUSR2")
      }))

    it.live("releasing a claim restores the previous disposition (here Node's own listener)", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        let heardByNode = 0
        const heard = yield* Deferred.make<void>()
        const listener = () => {
          heardByNode++
          Deferred.doneUnsafe(heard, Exit.void)
        }
        process.on("SIGUSR2", listener)
        yield* Effect.addFinalizer(() => Effect.sync(() => process.off("SIGUSR2", listener)))
        yield* Effect.scoped(Effect.gen(function*() {
          const signals = yield* platform.signals(["SIGUSR2"])
          process.kill(process.pid, "SIGUSR2")
          expect(yield* Stream.runHead(signals)).toEqual(Option.some("SIGUSR2"))
        }))
        expect(heardByNode).toBe(0)
        process.kill(process.pid, "SIGUSR2")
        yield* Deferred.await(heard)
        expect(heardByNode).toBe(1)
      }))

    it.live("a worker thread that leaves a poll handle open ends cleanly", () =>
      Effect.gen(function*() {
        const worker = new Worker(
          `const addon = require(${JSON.stringify(Native.addonPath)});
           const { readFd } = addon.pipe();
           const poll = addon.pollOpen(readFd, () => {});
           addon.pollStart(poll, true, false);
           addon.pollRef(poll, true);
           globalThis.keep = poll;
           require("node:worker_threads").parentPort.postMessage("polling");`,
          { eval: true }
        )
        yield* Effect.callback<void>((resume) => {
          worker.once("message", () => resume(Effect.void))
        })
        // The handle keeps the worker's loop alive: terminate tears it down.
        yield* Effect.promise(() => worker.terminate())
        expect(process.pid).toBeGreaterThan(0)
      }))

    it.live("a 1 ms periodic timerfd loses no ticks over 1,000 of them", () =>
      Effect.gen(function*() {
        const fd = yield* Effect.acquireRelease(Effect.sync(() => addon.timerCreate(false)), (fd) =>
          Effect.sync(() => addon.close(fd)))
        const target = 1000
        let sum = 0
        let wakeups = 0
        const done = yield* Deferred.make<void>()
        const poll = addon.pollOpen(fd, () => {
          wakeups++
          sum += addon.timerRead(fd)
          if (sum >= target) Deferred.doneUnsafe(done, Exit.void)
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => addon.pollClose(poll)))
        addon.timerSet(fd, 1, 1, false)
        const start = performance.now()
        addon.pollStart(poll, true, false)
        yield* Deferred.await(done)
        const elapsed = performance.now() - start
        // Ticks not yet read are still counted by the kernel.
        const total = sum + addon.timerRead(fd)
        expect(total).toBeGreaterThanOrEqual(Math.floor(elapsed))
        expect(wakeups).toBeGreaterThan(0)
        expect(wakeups).toBeLessThanOrEqual(sum)
      }))

    it.live("the platform's timer is armed one chunk (2^31-1 ms) ahead for a deadline 25 or 30 days away", () =>
      Effect.gen(function*() {
        // The kernel's own view of every timerfd of the process: fd and ms until expiry.
        const timerfds = () =>
          fs.readdirSync("/proc/self/fd").flatMap((name) => {
            try {
              if (fs.readlinkSync(`/proc/self/fd/${name}`) !== "anon_inode:[timerfd]") return []
              const info = fs.readFileSync(`/proc/self/fdinfo/${name}`, "utf8")
              const m = /it_value: \((\d+), (\d+)\)/.exec(info)
              const ino = /ino:\s*(\d+)/.exec(info)?.[1]
              return m === null ? [] : [{ fd: name, ino, ms: Number(m[1]) * 1000 + Number(m[2]) / 1e6 }]
            } catch {
              return []
            }
          })
        const before = new Set(timerfds().map((t) => t.fd))
        const platform = yield* LinuxPlatform.make()
        const timer = yield* platform.timer
        // New armed timers, one per open file (the addon polls a duplicate fd of its timerfd).
        const armed = () => {
          const byFile = new Map<string | undefined, number>()
          for (const t of timerfds()) if (!before.has(t.fd) && t.ms > 0) byFile.set(t.ino, t.ms)
          return [...byFile.values()]
        }
        expect(armed()).toEqual([])
        for (const days of [25, 30]) {
          yield* timer.arm(Date.now() + days * 86_400_000)
          const [ms, ...others] = armed()
          expect(others).toEqual([])
          expect(ms).toBeLessThanOrEqual(Platform.maxTimerChunkMillis)
          expect(ms).toBeGreaterThan(Platform.maxTimerChunkMillis - 60_000)
        }
        yield* timer.disarm
      }))

    it.live("the timer arms the delay to its deadline from the Clock's nanoseconds, not its whole milliseconds", () =>
      Effect.gen(function*() {
        // A Clock stopped 0.9 ms past a whole millisecond, as the live one is
        // most of the time: its milliseconds say 1000, its nanoseconds 1000.9.
        // A deadline of 2000 is then 999.1 ms away; read from the whole
        // milliseconds it was armed 1000 ms away, up to 1 ms late.
        const frozen: Clock.Clock = {
          currentTimeMillisUnsafe: () => 1000,
          currentTimeMillis: Effect.succeed(1000),
          currentTimeNanosUnsafe: () => BigInt(1_000_900_000),
          currentTimeNanos: Effect.succeed(BigInt(1_000_900_000)),
          monotonicTimeNanosUnsafe: () => BigInt(1_000_900_000),
          monotonicTimeNanos: Effect.succeed(BigInt(1_000_900_000)),
          sleep: () => Effect.never
        }
        const timerfds = () =>
          fs.readdirSync("/proc/self/fd").flatMap((name) => {
            try {
              if (fs.readlinkSync(`/proc/self/fd/${name}`) !== "anon_inode:[timerfd]") return []
              const m = /it_value: \((\d+), (\d+)\)/.exec(fs.readFileSync(`/proc/self/fdinfo/${name}`, "utf8"))
              return m === null ? [] : [Number(m[1]) * 1000 + Number(m[2]) / 1e6]
            } catch {
              return []
            }
          })
        const platform = yield* LinuxPlatform.make()
        const timer = yield* Effect.provideService(platform.timer, Clock.Clock, frozen)
        yield* timer.arm(2000)
        // The kernel counts down from the armed delay, so what it shows is at
        // most that delay whenever it is read.
        const armed = timerfds().filter((ms) => ms > 0)
        yield* timer.disarm
        expect(armed.length).toBeGreaterThan(0)
        for (const ms of armed) expect(ms).toBeLessThanOrEqual(999.1 + 0.001)
      }))

    it.live("timerSetDelay arms the monotonic timerfd for a delay, firing once, not before it", () =>
      Effect.gen(function*() {
        const fd = yield* Effect.acquireRelease(Effect.sync(() => addon.timerCreate(false)), (fd) =>
          Effect.sync(() => addon.close(fd)))
        const fired = yield* Deferred.make<{ at: number; count: number }>()
        const poll = addon.pollOpen(fd, () => {
          const count = addon.timerRead(fd)
          if (count > 0) Deferred.doneUnsafe(fired, Exit.succeed({ at: performance.now(), count }))
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => addon.pollClose(poll)))
        const start = performance.now()
        addon.timerSetDelay(fd, 40, Platform.maxTimerChunkMillis)
        addon.pollStart(poll, true, false)
        const { at, count } = yield* Deferred.await(fired)
        expect(at - start).toBeGreaterThanOrEqual(39)
        expect(count).toBe(1)
      }))

    it.live("timerSetDelay clamps any delay: a past one (-1e300 too) fires at once, a far one arms one chunk", () =>
      Effect.gen(function*() {
        const fd = yield* Effect.acquireRelease(Effect.sync(() => addon.timerCreate(false)), (fd) =>
          Effect.sync(() => addon.close(fd)))
        const chunk = Platform.maxTimerChunkMillis
        // Far: armed, for one chunk at most (the caller chains the rest).
        for (const delay of [25 * 86_400_000, 30 * 86_400_000, 1e300, Number.MAX_VALUE]) {
          addon.timerSetDelay(fd, delay, chunk)
          const remaining = addon.timerGet(fd)
          expect(remaining).toBeGreaterThan(chunk - 60_000)
          expect(remaining).toBeLessThanOrEqual(chunk)
        }
        addon.timerSetDelay(fd, 30 * 86_400_000, 50)
        expect(addon.timerGet(fd)).toBeGreaterThan(0)
        expect(addon.timerGet(fd)).toBeLessThanOrEqual(50)
        // Past, however far (a wall deadline in 1700 minus now, -1e300): due at once, never disarmed.
        for (const delay of [Date.UTC(1700, 0, 1) - Date.now(), -1e300, -Number.MAX_VALUE, 0]) {
          const expired = yield* Deferred.make<number>()
          const poll = addon.pollOpen(fd, () => {
            const count = addon.timerRead(fd)
            if (count > 0) Deferred.doneUnsafe(expired, Exit.succeed(count))
          })
          addon.timerSetDelay(fd, delay, chunk)
          addon.pollStart(poll, true, false)
          const count = yield* Deferred.await(expired).pipe(Effect.ensuring(Effect.sync(() => addon.pollClose(poll))))
          expect(count).toBe(1)
        }
        // NaN has no deadline to clamp to: a typed refusal, not a timer that never fires.
        expect(() => addon.timerSetDelay(fd, Number.NaN, chunk)).toThrow(expect.objectContaining({ code: "EINVAL" }))
      }))

    it.live("a pipe written by a child process is seen readable, then hung up", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const pipe = yield* pipeInScope(addon)
        const child = spawn(
          process.execPath,
          ["-e", "process.stdout.write('hi'); process.stdin.once('data', () => process.exit(0))"],
          { stdio: ["pipe", pipe.writeFd, "inherit"] }
        )
        yield* Effect.addFinalizer(() => Effect.sync(() => child.kill()))
        // The child has its own copy now; ours would hide the hang-up.
        pipe.closeWrite()
        const pull = yield* Stream.toPull(yield* platform.watch(pipe.readFd, { read: true }))
        const first = yield* pull
        expect(first).toEqual([{ read: true, write: false, hup: false, error: false }])
        expect(addon.readBytes(pipe.readFd, 16)?.toString()).toBe("hi")
        child.stdin!.end("go\n")
        const rest: Array<Platform.Readiness> = []
        yield* Effect.forever(Effect.map(pull, (chunk) => rest.push(...chunk))).pipe(
          Effect.catch((end) => Cause.isDone(end) ? Effect.void : Effect.fail(end))
        )
        expect(rest.length).toBeGreaterThan(0)
        expect(rest[rest.length - 1].hup).toBe(true)
        expect(addon.readBytes(pipe.readFd, 16)).toBeNull()
      }))

    it.live("two consumers of one watch both end at the hang-up, which is reported once", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const pipe = yield* pipeInScope(addon)
        const reports = yield* platform.watch(pipe.readFd, { read: true })
        const first = yield* Effect.forkChild(Stream.runCollect(reports))
        const second = yield* Effect.forkChild(Stream.runCollect(reports))
        yield* Effect.yieldNow
        pipe.closeWrite()
        const all = [...(yield* Fiber.join(first)), ...(yield* Fiber.join(second))]
        expect(all.filter((r) => r.hup)).toHaveLength(1)
      }))

    it.live("the 129th watch fails with TooManyFds", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const pipes = yield* Effect.forEach(Array.from({ length: 129 }), () => pipeInScope(addon))
        for (const pipe of pipes.slice(0, 128)) yield* platform.watch(pipe.readFd, { read: true })
        const error = yield* failure(platform.watch(pipes[128].readFd, { read: true }))
        expect(error.reason).toBe("TooManyFds")
        expect(error.detail).toContain("128")
      }))

    it.live("a closed fd and a regular file fail with BadFd", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const { readFd, writeFd } = addon.pipe()
        addon.close(readFd)
        addon.close(writeFd)
        const closed = yield* failure(platform.watch(readFd, { read: true }))
        expect(closed).toMatchObject({ reason: "BadFd", errno: "EBADF" })

        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rps-linux-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const file = fs.openSync(path.join(dir, "regular"), "w+")
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.closeSync(file)))
        const regular = yield* failure(platform.watch(file, { read: true }))
        expect(regular.reason).toBe("BadFd")
        expect(regular.detail).toContain("regular file")
      }))

    it.live("a timer deadline fires not before it, with its deadline", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const timer = yield* platform.timer
        const deadline = Date.now() + 20
        yield* timer.arm(deadline)
        const fired = yield* Stream.runHead(timer.fired)
        expect(Date.now()).toBeGreaterThanOrEqual(deadline)
        expect(fired).toEqual(Option.some(deadline))
      }))

    it.live("childExits reports a tracked real child, which node:child_process also sees exit", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const exits = yield* puller(platform.childExits)
        const child = spawn(process.execPath, ["-e", "process.exit(7)"], { stdio: "ignore" })
        LinuxPlatform.trackChild(child)
        expect(yield* exits).toEqual({ pid: child.pid, code: 7, signal: null })
        expect(yield* exited(child)).toBe(7)
        // Killed by a signal: the status names it.
        const slept = spawn("sleep", ["30"], { stdio: "ignore" })
        LinuxPlatform.trackChild(slept)
        slept.kill("SIGTERM")
        expect(yield* exits).toEqual({ pid: slept.pid, code: null, signal: "SIGTERM" })
      }))

    it.live("claiming SIGKILL fails with InvalidSignal and claims nothing", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const error = yield* failure(Effect.scoped(platform.signals(["SIGUSR2", "SIGKILL"])))
        expect(error.reason).toBe("InvalidSignal")
        expect(error.detail).toContain("SIGKILL")
      }))

    it.live("SIGCHLD from a real child and from process.kill arrives beside native claims; child_process still reaps", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const next = yield* puller(yield* platform.signals(["SIGCHLD", "SIGUSR2"]))
        const child = spawn(process.execPath, ["-e", "process.exit(7)"], { stdio: "ignore" })
        expect(yield* next).toBe("SIGCHLD")
        expect(yield* exited(child)).toBe(7)
        process.kill(process.pid, "SIGUSR2")
        expect(yield* next).toBe("SIGUSR2")
        process.kill(process.pid, "SIGCHLD")
        expect(yield* next).toBe("SIGCHLD")
      }))

    it.live("a worker_thread's claim fails with Unsupported, and the main thread's claim is untouched", () =>
      Effect.gen(function*() {
        const platform = yield* LinuxPlatform.make()
        const next = yield* puller(yield* platform.signals(["SIGUSR2"]))
        // The worker loads the built package, as a user's worker would.
        const worker = new Worker(
          `const { parentPort } = require("node:worker_threads");
           (async () => {
             const { Effect } = await import("effect");
             const { LinuxPlatform } = await import("@refpersys/platform-linux");
             const exit = await Effect.runPromiseExit(
               Effect.scoped(Effect.flatMap(LinuxPlatform.make(), (p) => p.signals(["SIGUSR2"]))));
             let direct = "";
             try { require(${JSON.stringify(Native.addonPath)}).signalInit() } catch (e) { direct = e.code }
             const failed = exit._tag === "Failure" ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined;
             parentPort.postMessage({ reason: exit._tag === "Failure" ? failed?.error.reason : "claimed", direct });
           })();`,
          { eval: true }
        )
        yield* Effect.addFinalizer(() => Effect.promise(() => worker.terminate()))
        const reply = yield* Effect.callback<{ reason: string; direct: string }>((resume) => {
          worker.once("message", (m) => resume(Effect.succeed(m)))
          worker.once("error", (e) => resume(Effect.die(e)))
        })
        expect(reply).toEqual({ reason: "Unsupported", direct: "ERR_WRONG_THREAD" })
        process.kill(process.pid, "SIGUSR2")
        expect(yield* next).toBe("SIGUSR2")
      }))

    it.live("the layer provides the platform", () =>
      Effect.gen(function*() {
        const platform = yield* Platform.Platform
        expect(platform.info.name).toBe("linux-native")
      }).pipe(Effect.provide(Layer.fresh(LinuxPlatform.layer()))))
  })
} else {
  describe("LinuxPlatform (native addon not loaded)", () => {
    it("is not required here, and the reason is reported", () => {
      expect(process.env.REFPERSYS_REQUIRE_NATIVE, `native addon required but not loaded: ${Native.loadError}`).not.toBe("1")
      expect(LinuxPlatform.isAvailable).toBe(false)
      expect(LinuxPlatform.loadError).toMatch(/\S/)
    })

    it.effect("the layer fails with Unsupported, naming the reason", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(LinuxPlatform.make()))
        expect(error.reason).toBe("Unsupported")
        expect(error.detail).toContain(LinuxPlatform.loadError!)
      }))
  })
}
