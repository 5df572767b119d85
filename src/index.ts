/** Public entry point of the package: config helpers and types for `flowforge.config.ts`. */
export { defineConfig, DEFAULT_REDACT_KEYS } from './config/schema.js';
export type { FlowForgeConfigInput, ResolvedConfig, Alert } from './config/schema.js';
