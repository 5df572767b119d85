/**
 * Hook failures made visible: a git hook never fails git (SPEC §8), so a hook call that could
 * not record its entry (a typo in the config, a broken install) only writes
 * `"msg":"hook invocation failed"` to `logs/aggregation.log`. Status and the health check read
 * those lines back, so a person sees that commits are going unrecorded.
 */
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';

/** Window looked at, ms (24 h). */
export const HOOK_FAILURE_WINDOW_MS = 86_400_000;

/** Failed hook calls in the current aggregation.log within the window; undefined when none. */
export function recentHookFailures(ctx: HandlerContext): { count: number; last: string; lastAt: number } | undefined {
  let text: string;
  try {
    text = ctx.fs.readFile(path.join(ctx.dataRoot, 'logs', 'aggregation.log')).toString('utf8');
  } catch {
    return undefined;
  }
  const since = ctx.now() - HOOK_FAILURE_WINDOW_MS;
  let count = 0;
  let last = '';
  let lastAt = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('"msg":"hook invocation failed"')) continue;
    try {
      const record = JSON.parse(line) as { ts: number; code?: string; message?: string };
      if (record.ts < since) continue;
      count++;
      if (record.ts >= lastAt) {
        lastAt = record.ts;
        last = `${record.code ?? 'error'}: ${record.message ?? ''}`.slice(0, 300);
      }
    } catch {
      /* a torn log line */
    }
  }
  return count > 0 ? { count, last, lastAt } : undefined;
}
