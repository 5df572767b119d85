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
import { InputError, IoError, LockedError, UsageError } from '../../../src/core/errors.js';
import { openStoreIndex, toIoError, withStore } from '../aggregator.js';
import type { IdIndex } from '../id-index.js';
import { INBOX_AFTER_MS, queueInInbox } from '../inbox.js';
import { storeLayout } from '../layout.js';
import { MIN_TIMESTAMP_MS, parseEntryText, validateEntries } from '../entry.js';
import type { RawSourceEntry } from '../sources/git-commit.js';
import type { Entry, FlushedBatch } from '../types.js';
import { randomBytes } from 'node:crypto';

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
  /** Inbox file(s) (relative to the data root, comma-separated for a streamed input) when entries were queued, see above. */
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

/**
 * An `--input` too large to hold in memory, streamed instead (see stream-input.ts): `file` is
 * the input file or the scratch copy of stdin (`spool: true`, removed after the call), of which
 * the first `bytes` bytes are read.
 */
interface StreamedInput {
  file: string;
  origin: string;
  bytes: number;
  spool: boolean;
}

/**
 * Collects raw (unvalidated) entries from every source of the call, in argument order. A large
 * NDJSON `--input` is not read here: it is returned as `streamed`.
 */
async function collectRaw(input: AggregateInput, ctx: HandlerContext, skipped: SkippedEntry[]): Promise<{ raw: unknown[]; streamed?: StreamedInput }> {
  let raw: unknown[] = [];
  let streamed: StreamedInput | undefined;
  // concat, not push(...x): spreading 100k+ items into a call overflows the stack.
  const add = (items: unknown[]) => void (raw = raw.concat(items));
  input.entry.forEach((text, i) => {
    // An empty --entry is a slip (an unset shell variable), unlike `[]` or an empty --input file.
    if (text.trim() === '') throw new InputError(`--entry[${i}] holds no entry: nothing was accepted`, { details: [{ path: `--entry[${i}]`, message: 'empty' }] });
    add(parseEntryText(text, `--entry[${i}]`));
  });
  if (input.input !== undefined) {
    const origin = `--input=${input.input}`;
    // Loaded only with --input, so the hook path never pays for it.
    const { looksLikeJsonArray, streamTuning } = await import('../stream-input.js');
    const got = input.input === '-' ? await readStdinOrSpool(ctx, streamTuning.afterBytes) : readInputFile(ctx, input.input, streamTuning.afterBytes);
    if (Buffer.isBuffer(got)) add(parseEntryText(decodeUtf8(got, origin), origin));
    else {
      streamed = { ...got, origin };
      if (looksLikeJsonArray(got.file)) {
        if (got.bytes <= MAX_INPUT_BYTES) {
          // A JSON array from stdin that fits the whole-read limit: read it from the copy.
          streamed = undefined;
          try {
            add(parseEntryText(decodeUtf8(ctx.fs.readFile(got.file), origin), origin));
          } finally {
            if (got.spool) removeQuietly(ctx, got.file);
          }
        } else {
          if (got.spool) removeQuietly(ctx, got.file);
          throw new InputError(`${origin} is a JSON array larger than ${MAX_INPUT_BYTES} bytes (64 MiB): send it as NDJSON (one entry per line), which is streamed whatever its size: nothing was accepted`, {
          details: [{ path: origin, message: `JSON array of more than ${MAX_INPUT_BYTES} bytes` }],
        });
        }
      }
    }
  }
  try {
    await collectSources(input, ctx, skipped, add);
  } catch (error) {
    if (streamed?.spool) removeQuietly(ctx, streamed.file);
    throw error;
  }
  return { raw, streamed };
}

async function collectSources(input: AggregateInput, ctx: HandlerContext, skipped: SkippedEntry[], add: (items: unknown[]) => void): Promise<void> {
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
}

function removeQuietly(ctx: HandlerContext, file: string): void {
  try {
    ctx.fs.unlink(file);
  } catch {
    /* a scratch copy; cleanup removes leftovers */
  }
}

/**
 * Standard input: the bytes when they fit in STREAM_AFTER_BYTES (32 MiB; a JSON array or NDJSON), else a
 * scratch copy `<data root>/cache/stdin-<pid>-<hex>.ndjson` to stream from.
 */
async function readStdinOrSpool(ctx: HandlerContext, afterBytes: number): Promise<Buffer | Omit<StreamedInput, 'origin'>> {
  const { assertOwnDataRoot } = await import('../aggregator.js');
  assertOwnDataRoot(ctx);
  const cache = storeLayout(ctx.dataRoot).cache;
  const spill = path.join(cache, `stdin-${process.pid}-${randomBytes(4).toString('hex')}.ndjson`);
  let got;
  try {
    got = await ctx.readStdin(afterBytes, () => {
      ctx.fs.mkdirp(cache);
      return spill;
    });
  } catch (error) {
    removeQuietly(ctx, spill);
    throw toIoError(error, ctx.dataRoot);
  }
  if (got === undefined) throw new Error('unreachable: stdin spill file was given');
  return Buffer.isBuffer(got) ? got : { file: got.spilled, bytes: got.bytes, spool: true };
}

/**
 * Largest `--input` read whole, bytes (a JSON array can be no larger). Larger NDJSON files and
 * stdin are streamed in chunks (stream-input.ts), so memory stays bounded whatever the size.
 */
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

/** The file's bytes, or the file to stream when it is larger than `afterBytes` (STREAM_AFTER_BYTES). */
function readInputFile(ctx: HandlerContext, file: string, afterBytes: number): Buffer | Omit<StreamedInput, 'origin'> {
  const full = path.resolve(ctx.cwd, file);
  const size = ctx.fs.stat(full)?.size ?? 0;
  if (size > afterBytes && ctx.fs.stat(full)?.isFile()) return { file: full, bytes: size, spool: false };
  try {
    return ctx.fs.readFile(full);
  } catch (error) {
    throw new UsageError(`Cannot read --input=${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
      details: [{ path: '--input', message: (error as Error).message, value: file }],
    });
  }
}

/**
 * Stores validated entries: under the store lock (ingest, then the flush triggers), or — when
 * the store stays busy for INBOX_AFTER_MS — durably queued in the inbox (see inbox.ts).
 */
async function storeEntries(ctx: HandlerContext, entries: Entry[], skipped: SkippedEntry[], index?: IdIndex): Promise<AggregateResult> {
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
      { lockTimeoutMs: INBOX_AFTER_MS, index },
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
}

/**
 * A streamed `--input` (stream-input.ts): pass 1 parses and validates every line and stores
 * nothing, so any problem is exit 2 with nothing accepted; pass 2 reads it again and stores it
 * in chunks of STREAM_CHUNK_ENTRIES, each chunk under its own hold of the store lock (other
 * calls interleave; duplicates across chunks are caught by id like any other). `entries` are
 * the call's other (already validated) entries, stored first.
 *
 * @throws InputError (exit 2) listing up to 1,000 problems by line or `[index].field`
 * @throws IoError (exit 1) when the input changed between the passes; the chunks stored
 *   before are acknowledged-safe and a retry counts them as duplicates
 */
async function storeStreamed(ctx: HandlerContext, streamed: StreamedInput, entries: Entry[], skipped: SkippedEntry[], prepare: (raw: unknown[]) => Entry[]): Promise<AggregateResult> {
  const { ProblemSink, readNdjsonChunks, offsetDetailPath, streamTuning } = await import('../stream-input.js');
  const chunkEntries = streamTuning.chunkEntries;
  const readProblems = new ProblemSink();
  for (const chunk of readNdjsonChunks(streamed.file, streamed.origin, streamed.bytes, chunkEntries, readProblems)) {
    try {
      prepare(chunk.items);
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      const invalid = new Set<string>();
      for (const detail of error.details) {
        const shifted = offsetDetailPath(detail, chunk.firstItem);
        invalid.add(/^\[\d+\]/.exec(shifted.path)?.[0] ?? shifted.path);
        readProblems.add(shifted);
      }
      readProblems.invalidEntries += invalid.size;
    }
  }
  const problem = readProblems.toError(streamed.origin);
  if (problem) throw problem;

  const index = openStoreIndex(ctx);
  const total = await storeEntries(ctx, entries, skipped, index);
  const queued: string[] = total.queued ? [total.queued] : [];
  const changed = new ProblemSink();
  for (const chunk of readNdjsonChunks(streamed.file, streamed.origin, streamed.bytes, chunkEntries, changed)) {
    let chunkEntries: Entry[] | undefined;
    try {
      chunkEntries = changed.total === 0 ? prepare(chunk.items) : undefined;
    } catch {
      chunkEntries = undefined;
    }
    if (chunkEntries === undefined) {
      throw new IoError(`${streamed.origin} changed while it was being stored: ${total.accepted} entries were stored before the change and are safe (a retry counts them as duplicates); the rest was not accepted.`, {
        details: [{ path: streamed.origin, message: 'content differs from the first reading' }],
      });
    }
    const part = await storeEntries(ctx, chunkEntries, [], index);
    total.accepted += part.accepted;
    total.duplicates += part.duplicates;
    total.flushed.push(...part.flushed);
    total.failed.push(...part.failed);
    total.pending = part.pending;
    total.batchAgeMs = part.batchAgeMs;
    if (part.queued) queued.push(part.queued);
  }
  if (changed.total > 0) throw new IoError(`${streamed.origin} changed while it was being stored: ${total.accepted} entries were stored and are safe; the rest was not accepted.`);
  if (queued.length > 0) total.queued = queued.join(', ');
  return total;
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
    const collected = await collectRaw(input, ctx, skipped);
    const { streamed } = collected;
    try {
      const secret = ctx.config.privacy.anonymizeUsers ? await import('../privacy.js').then((p) => ({ p, key: p.loadOrCreateSecret(ctx) })) : undefined;
      const prepare = (raw: unknown[]) =>
        validateEntries(secret ? secret.p.anonymizeRaw(raw, secret.key) : raw, { now: ctx.now(), maxClockSkew: ctx.config.maxClockSkew, redactKeys: ctx.config.privacy.redactKeys });
      if (skipped.length > 0) ctx.log.warn('git entries skipped: date out of range', { skipped });
      const entries = prepare(collected.raw);
      if (!streamed) return await storeEntries(ctx, entries, skipped);
      return await storeStreamed(ctx, streamed, entries, skipped, prepare);
    } finally {
      if (streamed?.spool) removeQuietly(ctx, streamed.file);
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
