/**
 * The order test files start in (vitest's `sequence.sequencer`). With durations from an earlier
 * run in vitest's cache, vitest's own order: longest first. Without them (a fresh clone, as CI
 * runs) vitest starts the largest files first, which left small but slow ones (the cluster's
 * start-up, the load test, durability) for the end with the other worker idle: the files that
 * take longest start first, then vitest's order.
 */
import { relative } from "node:path"
import { BaseSequencer, type TestSpecification } from "vitest/node"

/**
 * Longest first, as measured in full runs from a fresh clone (each in both projects where it runs
 * in both); a path prefix stands for the files it starts (the cluster's start gateway processes).
 */
const slowest = [
  "test/cluster.test.ts",
  "test/webhooks.test.ts",
  "test/acpx-driver.test.ts",
  "test/cluster-start.test.ts",
  "test/bad-input-generated.test.ts",
  "test/cluster",
  "test/idempotency.test.ts",
  "test/load.test.ts",
  "test/server-process.test.ts",
  "test/tenancy-cli.test.ts",
  "test/delivery.test.ts",
  "test/durability.test.ts"
]

export class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const root = this.ctx.config.root
    const key = (file: TestSpecification) => `${file.project.name}:${relative(root, file.moduleId)}`
    const sorted = await super.sort(files)
    if (files.every((file) => this.ctx.cache.getFileTestResults(key(file)) !== undefined)) return sorted
    const rank = (file: TestSpecification) => {
      const path = relative(root, file.moduleId)
      const index = slowest.findIndex((slow) => path.startsWith(slow))
      return index === -1 ? slowest.length : index
    }
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b))
  }
}
