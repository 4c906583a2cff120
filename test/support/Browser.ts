import { chromium } from "playwright-core"

// As CI runs it: as root, without a GPU, with no network but the gateway's.
const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/** Debian's headless `chromium`; each launch gets a fresh temporary profile (playwright's default). */
export const launchChromium = () => chromium.launch({ executablePath: "/usr/bin/chromium", args: chromiumArgs })
