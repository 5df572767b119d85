/**
 * The configuration schema (SPEC §9), a valibot `strictObject` so an unknown key is an error,
 * never silently ignored. Defaults come from the seed: batchSize 50 entries, maxAge 30 000 ms,
 * flushThreshold 0.9, performance {targetTime 500 ms, maxTime 1000 ms}, recovery
 * {scheduleInterval 300 000 ms, batchRetryLimit 5, healthCheckInterval 60 000 ms,
 * cleanupAge 604 800 000 ms (7 days)}.
 */
import * as v from 'valibot';

/** Keys whose metadata values are replaced by "[REDACTED]" before anything is written (SPEC §4). */
export const DEFAULT_REDACT_KEYS = ['token', 'password', 'secret', 'apiKey', 'authorization', 'cookie'] as const;

const positiveInt = (what: string) =>
  v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be an integer`), v.minValue(1, `${what} must be at least 1`));
const nonNegativeInt = (what: string) =>
  v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be an integer`), v.minValue(0, `${what} must be at least 0`));

/** The alert object passed to `onAlert` (health alerts, SPEC §7). */
export interface Alert {
  type: string;
  severity: 'info' | 'warning' | 'critical';
  message: string;
  timestamp: number;
  details?: Record<string, unknown>;
}

/** Valibot schema of a config file's exported object. */
export const ConfigSchema = v.strictObject({
  /**
   * Entries per batch file (1–10 000), or `"auto"`: sized from the average serialized entry so
   * a batch file is about 64 KB, between 10 and 500 entries (the seed's dynamic batch sizing).
   */
  batchSize: v.optional(
    v.union(
      [v.literal('auto'), v.pipe(positiveInt('batchSize'), v.maxValue(10_000, 'batchSize must be at most 10000'))],
      'batchSize must be a whole number from 1 to 10000, or "auto"',
    ),
    50,
  ),
  /** Age trigger, milliseconds since the oldest pending entry was appended. */
  maxAge: v.optional(positiveInt('maxAge'), 30_000),
  /** Threshold trigger as a fraction of batchSize, in (0, 1]. */
  flushThreshold: v.optional(
    v.pipe(v.number('flushThreshold must be a number'), v.gtValue(0, 'flushThreshold must be greater than 0'), v.maxValue(1, 'flushThreshold must be at most 1')),
    0.9,
  ),
  /** Data root; relative paths resolve against the config file's folder. */
  dataPath: v.optional(v.pipe(v.string('dataPath must be a string'), v.minLength(1, 'dataPath must not be empty'))),
  /** Atomic writes for batch files (temp file + fsync + rename + directory fsync). */
  atomicOperations: v.optional(v.boolean('atomicOperations must be true or false'), true),
  performance: v.optional(
    v.strictObject({
      targetTime: v.optional(positiveInt('performance.targetTime'), 500),
      maxTime: v.optional(positiveInt('performance.maxTime'), 1000),
    }),
    {},
  ),
  recovery: v.optional(
    v.strictObject({
      scheduleInterval: v.optional(positiveInt('recovery.scheduleInterval'), 300_000),
      batchRetryLimit: v.optional(positiveInt('recovery.batchRetryLimit'), 5),
      healthCheckInterval: v.optional(positiveInt('recovery.healthCheckInterval'), 60_000),
      cleanupAge: v.optional(positiveInt('recovery.cleanupAge'), 604_800_000),
    }),
    {},
  ),
  /** How far in the future (ms) an entry timestamp may be before it is rejected. */
  maxClockSkew: v.optional(nonNegativeInt('maxClockSkew'), 300_000),
  privacy: v.optional(
    v.strictObject({
      anonymizeUsers: v.optional(v.boolean('privacy.anonymizeUsers must be true or false'), false),
      redactKeys: v.optional(v.array(v.pipe(v.string(), v.minLength(1))), [...DEFAULT_REDACT_KEYS]),
    }),
    {},
  ),
  /**
   * Per-user rate limit: at most `entriesPerMinute` new entries per user in each clock minute
   * (0 = no limit, the default). A call that would go over is rejected whole (E_RATE_LIMIT).
   */
  rateLimit: v.optional(
    v.strictObject({
      entriesPerMinute: v.optional(nonNegativeInt('rateLimit.entriesPerMinute'), 0),
    }),
    {},
  ),
  /** Called with each health alert; errors it throws are logged, never fatal. */
  onAlert: v.optional(v.custom<(alert: Alert) => unknown>((x) => typeof x === 'function', 'onAlert must be a function')),
});

/** What a config file may export (all keys optional). */
export type FlowForgeConfigInput = v.InferInput<typeof ConfigSchema>;
/** A validated config with every default filled in. */
export type ResolvedConfig = v.InferOutput<typeof ConfigSchema>;

/**
 * Typed identity helper for `flowforge.config.ts`: `export default defineConfig({ batchSize: 100 })`.
 * Validation happens when the config is loaded, not here.
 */
export function defineConfig(config: FlowForgeConfigInput): FlowForgeConfigInput {
  return config;
}
