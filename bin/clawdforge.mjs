#!/usr/bin/env node
// There is no build step: run the TypeScript CLI through tsx's loader (a dependency).
import { register } from "tsx/esm/api"

register()
await import("../src/cli.ts")
