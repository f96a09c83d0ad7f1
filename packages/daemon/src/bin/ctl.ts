#!/usr/bin/env node
/**
 * `rps-ctl` (`npm run ctl -- <command>`): see `docs/daemon.md`.
 *
 * @since 0.1.0
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Effect from "effect/Effect"
import * as Cli from "../Cli.js"
import { runMain } from "../internal/runMain.js"

runMain(Effect.provide(Cli.ctl(process.argv), NodeServices.layer))
