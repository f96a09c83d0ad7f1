#!/usr/bin/env node
/**
 * `rps-daemon` (`npm start`): see `docs/daemon.md`.
 *
 * @since 0.1.0
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as Cli from "../Cli.js"
import { runMain } from "../internal/runMain.js"

runMain(Effect.provide(Cli.daemon(process.argv), NodeContext.layer))
