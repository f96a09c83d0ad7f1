#!/usr/bin/env node
/**
 * `rps-daemon` (`npm start`): see `docs/daemon.md`.
 *
 * @since 0.1.0
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Effect from "effect/Effect"
import * as Cli from "../Cli.js"
import { runMain } from "../internal/runMain.js"

runMain(Effect.provide(Cli.daemon(process.argv), NodeServices.layer))
