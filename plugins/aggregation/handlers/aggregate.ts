/**
 * `aggregate`: accept entries from every given source, validate them all (valibot, SPEC §4),
 * append the new ones durably to the journal, then apply the flush triggers (SPEC §5).
 * A call with any invalid entry is rejected whole (InputError, exit 2) before the store is
 * touched.
 */
import * as path from 'node:path';
import * as v from 'valibot';
import type { HandlerDefinition } from '../../../src/core/handler.js';
import type { HandlerContext } from '../../../src/core/context.js';
import { InputError, LockedError, UsageError } from '../../../src/core/errors.js';
import { withStore } from '../aggregator.js';
import { INBOX_AFTER_MS, queueInInbox } from '../inbox.js';
import { storeLayout } from '../layout.js';
import { MIN_TIMESTAMP_MS, parseEntryText, validateEntries } from '../entry.js';
import type { RawSourceEntry } from '../sources/git-commit.js';
import type { FlushedBatch } from '../types.js';

export const SOURCES = ['sessions', 'git-commit', 'git-checkout', 'git-log'] as const;

const optionalString = v.optional(v.string());
const AggregateInput = v.object({
  entry: v.optional(v.array(v.string()), []),
  input: optionalString,
  source: v.optional(v.array(v.picklist(SOURCES, `--source must be one of: ${SOURCES.join(', ')}`)), []),
  prev: optionalString,
  new: optionalString,
  flag: optionalString,
  repo: optionalString,
  since: optionalString,
  until: optionalString,
});
export type AggregateInput = v.InferOutput<typeof AggregateInput>;

/**
 * Result of `aggregate` (SPEC §3). `batchAgeMs` in milliseconds; `flushed[].file` relative to
 * the data root. When the store stayed busy for INBOX_AFTER_MS, the entries were queued durably
 * in the inbox instead: `queued` names the file, `pending` and `batchAgeMs` are null (unknown
 * without the lock), and duplicates among them are dropped when the inbox is merged.
 */
export interface AggregateResult {
  accepted: number;
  duplicates: number;
  pending: number | null;
  batchAgeMs: number | null;
  flushed: FlushedBatch[];
  /** Batches whose flush failed every attempt and were parked in recovery/ (data safe). */
  failed: Array<{ batchId: string; file: string; entryCount: number; error: string }>;
  /** Inbox file (relative to the data root) when the entries were queued, see above. */
  queued?: string;
  /** Git entries left out because their date is outside the accepted range (by entry id = sha). */
  skipped: SkippedEntry[];
}

/**
 * Git facts are facts: a commit whose author date lies outside the accepted range (a colleague's
 * wrong clock, a history from before 2000) is skipped and reported by sha, instead of failing a
 * hook or a whole `git-log` import. Entries given by a caller are validated strictly.
 */
function splitGitEntries(entries: RawSourceEntry[], ctx: HandlerContext, skipped: SkippedEntry[]): RawSourceEntry[] {
  const latest = ctx.now() + ctx.config.maxClockSkew;
  return entries.filter((e) => {
    if (e.timestamp >= MIN_TIMESTAMP_MS && e.timestamp <= latest) return true;
    const reason = e.timestamp < MIN_TIMESTAMP_MS ? 'author date before 2000-01-01' : `author date more than ${ctx.config.maxClockSkew} ms in the future (check the committer's clock)`;
    skipped.push({ entryId: e.entryId, timestamp: e.timestamp, reason });
    return false;
  });
}

/** An entry from a git source left out because its date is outside the accepted range. */
export interface SkippedEntry {
  entryId: string;
  /** Epoch ms. */
  timestamp: number;
  reason: string;
}

/** Collects raw (unvalidated) entries from every source of the call, in argument order. */
async function collectRaw(input: AggregateInput, ctx: HandlerContext, skipped: SkippedEntry[]): Promise<unknown[]> {
  let raw: unknown[] = [];
  // concat, not push(...x): spreading 100k+ items into a call overflows the stack.
  const add = (items: unknown[]) => void (raw = raw.concat(items));
  input.entry.forEach((text, i) => {
    // An empty --entry is a slip (an unset shell variable), unlike `[]` or an empty --input file.
    if (text.trim() === '') throw new InputError(`--entry[${i}] holds no entry: nothing was accepted`, { details: [{ path: `--entry[${i}]`, message: 'empty' }] });
    add(parseEntryText(text, `--entry[${i}]`));
  });
  if (input.input !== undefined) {
    const origin = `--input=${input.input}`;
    const bytes = input.input === '-' ? await ctx.readStdin(MAX_INPUT_BYTES) : readInputFile(ctx, input.input);
    if (bytes === undefined) {
      throw new InputError(`${origin} is larger than ${MAX_INPUT_BYTES} bytes (64 MiB); split it into several calls: nothing was accepted`, {
        details: [{ path: origin, message: `more than ${MAX_INPUT_BYTES} bytes` }],
      });
    }
    add(parseEntryText(decodeUtf8(bytes, origin), origin));
  }
  for (const source of new Set(input.source)) {
    switch (source) {
      case 'sessions': {
        const { entriesFromSessions } = await import('../sources/sessions.js');
        add(await entriesFromSessions(ctx.dataRoot, ctx.fs));
        break;
      }
      case 'git-commit': {
        const { entriesFromGitCommit } = await import('../sources/git-commit.js');
        add(splitGitEntries(await entriesFromGitCommit(await ctx.git()), ctx, skipped));
        break;
      }
      case 'git-checkout': {
        const { entriesFromGitCheckout } = await import('../sources/git-checkout.js');
        add(splitGitEntries(await entriesFromGitCheckout({ prev: input.prev, next: input.new, flag: input.flag }, await ctx.git(), ctx.now(), ctx.env), ctx, skipped));
        break;
      }
      case 'git-log': {
        const { entriesFromGitLog } = await import('../sources/git-log.js');
        add(splitGitEntries(await entriesFromGitLog(await ctx.git(input.repo), { since: input.since, until: input.until }), ctx, skipped));
        break;
      }
    }
  }
  return raw;
}

/** Largest `--input` accepted in one call, bytes: memory stays bounded whatever is piped in. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024;

/**
 * Decodes UTF-8 strictly: invalid bytes are an InputError naming the first bad line, never
 * silently turned into U+FFFD replacement characters that would then be stored.
 */
export function decodeUtf8(bytes: Buffer, origin: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    let line = 1;
    let start = 0;
    const strict = new TextDecoder('utf-8', { fatal: true });
    for (;;) {
      const nl = bytes.indexOf(0x0a, start);
      const end = nl === -1 ? bytes.length : nl;
      try {
        strict.decode(bytes.subarray(start, end));
      } catch {
        break;
      }
      if (nl === -1) break;
      line++;
      start = nl + 1;
    }
    throw new InputError(`${origin} is not valid UTF-8: nothing was accepted`, { details: [{ path: `${origin}:line ${line}`, message: 'invalid UTF-8 byte sequence' }] });
  }
}

/** The file's bytes; undefined when it is larger than MAX_INPUT_BYTES (then it is not read). */
function readInputFile(ctx: HandlerContext, file: string): Buffer | undefined {
  const full = path.resolve(ctx.cwd, file);
  if ((ctx.fs.stat(full)?.size ?? 0) > MAX_INPUT_BYTES) return undefined;
  try {
    return ctx.fs.readFile(full);
  } catch (error) {
    throw new UsageError(`Cannot read --input=${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
      details: [{ path: '--input', message: (error as Error).message, value: file }],
    });
  }
}

export const aggregate: HandlerDefinition<typeof AggregateInput, AggregateResult> = {
  name: 'aggregate',
  summary: 'accept entries, store them durably, flush batches when a trigger fires',
  help: `Usage: provider-bridge aggregate [sources…] [options]

Sources (combinable; at least one):
  --entry=JSON            one entry or a JSON array/NDJSON text (repeatable)
  --input=FILE|-          a JSON array or NDJSON file, or - for stdin
  --source=sessions       FlowForge sessions in <data root>/user/*/time.json
  --source=git-commit     the HEAD commit of the current repository (post-commit hook)
  --source=git-checkout --prev=SHA --new=SHA --flag=0|1   (post-checkout hook)
  --source=git-log [--repo=DIR] [--since=DATE] [--until=DATE]   import a history

An entry is {entryId?, userId, action, timestamp, metadata?}; timestamp in epoch ms,
epoch seconds, or ISO-8601 with offset. Entries already stored (same entryId) are counted
as duplicates and not stored again.

Examples:
  provider-bridge aggregate --entry='{"userId":"ana","action":"review","timestamp":"2026-11-30T09:00:00Z"}'
  git log … | provider-bridge aggregate --input=-
  provider-bridge aggregate --source=git-log --repo=../other-repo`,
  options: {
    entry: { type: 'string', multiple: true },
    input: { type: 'string' },
    source: { type: 'string', multiple: true },
    prev: { type: 'string' },
    new: { type: 'string' },
    flag: { type: 'string' },
    repo: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
  },
  input: AggregateInput,
  async run(input, ctx) {
    if (input.entry.length === 0 && input.input === undefined && input.source.length === 0) {
      throw new UsageError('aggregate needs at least one source: --entry, --input or --source (see provider-bridge aggregate --help)');
    }
    const skipped: SkippedEntry[] = [];
    let raw = await collectRaw(input, ctx, skipped);
    if (ctx.config.privacy.anonymizeUsers) {
      const { anonymizeRaw, loadOrCreateSecret } = await import('../privacy.js');
      raw = anonymizeRaw(raw, loadOrCreateSecret(ctx));
    }
    if (skipped.length > 0) ctx.log.warn('git entries skipped: date out of range', { skipped });
    const entries = validateEntries(raw, { now: ctx.now(), maxClockSkew: ctx.config.maxClockSkew, redactKeys: ctx.config.privacy.redactKeys });
    // withStore may run this more than once (a lock lost mid-way): entries appended by an
    // earlier attempt are this call's, not duplicates.
    const acceptedIds = new Set<string>();
    try {
      return await withStore(
        ctx,
        async (store) => {
          const { accepted } = store.ingest(entries.filter((e) => !acceptedIds.has(e.entryId)));
          for (const je of accepted) acceptedIds.add(je.entry.entryId);
          const outcome = await store.flush();
          const { pending, batchAgeMs } = store.pendingSummary();
          return {
            accepted: acceptedIds.size,
            duplicates: entries.length - acceptedIds.size,
            pending,
            batchAgeMs,
            flushed: [...store.resumed, ...outcome.flushed],
            failed: outcome.failed,
            skipped,
          };
        },
        { lockTimeoutMs: INBOX_AFTER_MS },
      );
    } catch (error) {
      // The store stayed busy: acknowledge through the inbox instead of failing (see inbox.ts).
      if (!(error instanceof LockedError)) throw error;
      const rest = entries.filter((e) => !acceptedIds.has(e.entryId));
      const layout = storeLayout(ctx.dataRoot);
      const queued = rest.length > 0 ? queueInInbox(ctx, layout, rest) : undefined;
      ctx.log.info('store busy; entries queued in the inbox', { file: queued, entries: rest.length });
      return { accepted: acceptedIds.size + rest.length, duplicates: 0, pending: null, batchAgeMs: null, flushed: [], failed: [], skipped, queued };
    }
  },
  formatText: (r) =>
    (r.queued
      ? `accepted ${r.accepted}: the store was busy, so they were queued in ${r.queued} (merged by the next call)`
      : `accepted ${r.accepted}, duplicates ${r.duplicates}, pending ${r.pending} (oldest ${Math.round((r.batchAgeMs ?? 0) / 1000)} s)`) +
    r.flushed.map((f) => `\nflushed ${f.entryCount} entries (${f.trigger}) → ${f.file}`).join('') +
    r.skipped.map((k) => `\nskipped ${k.entryId}: ${k.reason}`).join('') +
    r.failed.map((f) => `\nflush FAILED, ${f.entryCount} entries parked in ${f.file}: ${f.error}`).join(''),
};
