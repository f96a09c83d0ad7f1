/**
 * The runtime the scenarios push on: the native platform, an agenda and an
 * event loop, all in the caller's scope.
 *
 * @internal
 */
import { Agenda, EventLoop, Platform } from "@refpersys/core"
import { LinuxPlatform } from "@refpersys/platform-linux"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as net from "node:net"

export interface Runtime {
  readonly platform: Platform.Platform
  readonly agenda: Agenda.Agenda
  readonly loop: EventLoop.EventLoop
}

/** Fails with a clear message when the native addon is not loaded: the scenarios need real kernel objects. */
export const nativePlatform = (options: LinuxPlatform.Options = {}) =>
  LinuxPlatform.isAvailable
    ? LinuxPlatform.make(options)
    : Effect.die(new Error(`this scenario needs the native Linux platform: ${LinuxPlatform.loadError ?? "not loaded"}`))

export const make = (options: {
  readonly platform?: LinuxPlatform.Options
  readonly agenda?: Agenda.Options
  readonly loop?: EventLoop.Options
} = {}): Effect.Effect<Runtime, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    // Referenced handles: a scenario waiting only on platform events must keep
    // the process alive, and a handle leaked past the scope would keep it alive too.
    const platform = yield* nativePlatform({ ref: true, ...options.platform })
    const agenda = yield* Agenda.make(options.agenda)
    const loop = yield* EventLoop.make(options.loop).pipe(
      Effect.provideService(Platform.Platform, platform),
      Effect.provideService(Agenda.Agenda, agenda)
    )
    return { platform, agenda, loop }
  })

let warmedUp = false

/**
 * Creates, once per process, what lives for the rest of the process once
 * used: the native layer's signalfd and forwarding pipe (kept for the next
 * claim by design), libuv's signal pipe (Node signal listeners, and
 * child_process's SIGCHLD handling), the DNS resolver that the first TCP
 * listen sets up. Leak checks measure after this, so they count only what a
 * scenario leaves behind.
 */
export const warmUp: Effect.Effect<void> = Effect.suspend(() => {
  if (warmedUp) return Effect.void
  warmedUp = true
  return Effect.gen(function*() {
    if (LinuxPlatform.isAvailable) {
      yield* Effect.scoped(Effect.flatMap(LinuxPlatform.make(), (platform) => platform.signals(["SIGWINCH"])))
    }
    const listener = () => {}
    process.on("SIGWINCH", listener)
    process.off("SIGWINCH", listener)
    yield* Effect.callback<void>((resume) => {
      spawn(process.execPath, ["-e", ""], { stdio: "ignore" }).on("close", () => resume(Effect.void))
    })
    yield* Effect.callback<void>((resume) => {
      const server = net.createServer((socket) => socket.destroy())
      server.listen(0, "127.0.0.1", () => {
        const client = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
        client.on("error", () => {})
        client.on("close", () => server.close(() => resume(Effect.void)))
      })
    })
  }).pipe(Effect.orDie)
})
