/**
 * Every scenario, in the order `npm run stress` runs them.
 *
 * @since 0.1.0
 */
import type { Scenario } from "../Scenario.js"
import * as commandFuzz from "./commandFuzz.js"
import * as fdFaults from "./fdFaults.js"
import * as hostileRuntimeDir from "./hostileRuntimeDir.js"
import * as handlerGarbage from "./handlerGarbage.js"
import * as memoryPressure from "./memoryPressure.js"
import * as outputEpipe from "./outputEpipe.js"
import * as properties from "./properties.js"
import * as selfStop from "./selfStop.js"
import * as shutdownUnderLoad from "./shutdownUnderLoad.js"
import * as signalStorm from "./signalStorm.js"
import * as stuckCollector from "./stuckCollector.js"
import * as taskletFaults from "./taskletFaults.js"
import * as threadCodecFaults from "./threadCodecFaults.js"

/**
 * @since 0.1.0
 * @category scenarios
 */
export const all: ReadonlyArray<Scenario> = [
  signalStorm.scenario,
  commandFuzz.scenario,
  handlerGarbage.scenario,
  fdFaults.scenario,
  taskletFaults.scenario,
  memoryPressure.scenario,
  shutdownUnderLoad.scenario,
  properties.scenario,
  hostileRuntimeDir.scenario,
  outputEpipe.scenario,
  selfStop.scenario,
  stuckCollector.scenario,
  threadCodecFaults.scenario
]

/**
 * The scenario of that name, if any.
 *
 * @since 0.1.0
 * @category scenarios
 */
export const byName = (name: string): Scenario | undefined => all.find((s) => s.name === name)
