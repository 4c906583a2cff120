#!/usr/bin/env node
// The compiled admin CLI and gateway (`npm ci` builds dist/ through the prepare script).
await import("../dist/app/cli.js")
