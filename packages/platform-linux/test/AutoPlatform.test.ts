import { describe, expect, it } from "@effect/vitest"
import { Platform } from "@refpersys/core"
import { Effect } from "effect"
import * as AutoPlatform from "../src/AutoPlatform.js"
import * as LinuxPlatform from "../src/LinuxPlatform.js"

describe("AutoPlatform", () => {
  it("chooses native exactly when the addon is available, and says why", () => {
    expect(AutoPlatform.choice.name).toBe(LinuxPlatform.isAvailable ? "linux-native" : "node-portable")
    if (!LinuxPlatform.isAvailable) expect(AutoPlatform.choice.reason).toContain("not available")
    if (process.env.REFPERSYS_REQUIRE_NATIVE === "1") expect(AutoPlatform.choice.name).toBe("linux-native")
  })

  it.effect("the layer provides the chosen platform", () =>
    Effect.gen(function*() {
      const platform = yield* Platform.Platform
      expect(platform.info.name).toBe(AutoPlatform.choice.name)
    }).pipe(Effect.provide(AutoPlatform.layer)))
})
