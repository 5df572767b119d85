/**
 * FlowForge Aggregation config for this repository (SPEC §9).
 *
 * Loaded at run time by src/config/load.ts through a content-addressed cache: the TypeScript
 * compiler runs only when this file changes, never on every git hook. It is not part of
 * tsconfig.json's `include`; `defineConfig` resolves to this package's own build
 * (dist/src/index.js, via package.json `exports`), so run `npm run build` first.
 */
import { defineConfig } from 'flowforge-aggregation';

export default defineConfig({
  // Entries per batch file (size trigger).
  batchSize: 50,
  // Age trigger: flush when the oldest pending entry is older than 30 s (milliseconds).
  maxAge: 30000,
  // Threshold trigger: flush once pending reaches ceil(0.9 × batchSize) = 45 entries.
  flushThreshold: 0.9,
});
