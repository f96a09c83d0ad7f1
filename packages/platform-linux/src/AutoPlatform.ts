/**
 * Picks the platform layer for this process: the native Linux layer when its
 * addon loaded, otherwise the portable Node layer, and says which is active.
 *
 * @since 0.1.0
 */
import { Platform } from "@refpersys/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as LinuxPlatform from "./LinuxPlatform.js"
import * as NodePlatform from "./NodePlatform.js"

/**
 * Which implementation {@link layer} chooses here, and why.
 *
 * @example
 * ```ts
 * import { AutoPlatform } from "@refpersys/platform-linux"
 *
 * console.log(AutoPlatform.choice.name) // "linux-native" or "node-portable"
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const choice: { readonly name: "linux-native" | "node-portable"; readonly reason: string } = LinuxPlatform
    .isAvailable
  ? { name: "linux-native", reason: "the native addon is loaded" }
  : {
    name: "node-portable",
    reason: `the native addon is not available (${LinuxPlatform.loadError ?? "unknown reason"}); run npm install on Linux with a C toolchain to build it`
  }

/**
 * The chosen platform layer; logs which one is active when it is built.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Platform } from "@refpersys/core"
 * import { AutoPlatform } from "@refpersys/platform-linux"
 *
 * const name = Effect.map(Platform.Platform, (p) => p.info.name).pipe(Effect.provide(AutoPlatform.layer))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Platform.Platform, Platform.PlatformError> = Layer.unwrap(
  Effect.as(
    Effect.logDebug(`platform: ${choice.name} (${choice.reason})`),
    choice.name === "linux-native" ? LinuxPlatform.layer() : NodePlatform.layer()
  )
)
