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
import type { NdjsonChunk } from '../stream-input.js';
import { INBOX_AFTER_MS, queueInInbox } from '../inbox.js';
import { storeLayout } from '../layout.js';
import { STDIN_SPOOL_PATTERN } from '../store-files.js';
import { inputError, MIN_TIMESTAMP_MS, parseEntryText, validateEntries, type BadLines } from '../entry.js';
import type { RawSourceEntry } from '../sources/git-commit.js';
import type { Entry, FlushedBatch } from '../types.js';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';

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
  /** Present when something needs the user's attention although the call succeeded (privacy settings changed). */
  warnings?: string[];
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

/** Validates raw entries (privacy, redaction, ids): throws InputError listing every problem. */
type Prepare = (raw: unknown[]) => Entry[];

/**
 * An `--input` too large to hold in memory, streamed instead (see stream-input.ts), read through
 * the open descriptor `fd` (its first `bytes` bytes) so that both passes read the same file:
 * - a user's file (`spool: false`): pass 1 happens in storeStreamed; `identity` is what it was
 *   when opened, to notice a change before anything is stored;
 * - standard input (`spool: true`): pass 1 already happened while stdin was read, and `file` is
 *   the scratch file of its VALIDATED entries (redacted, pseudonymized: never the raw input),
 *   removed when the call ends; `perUser` counts them per userId.
 */
interface StreamedInput {
  origin: string;
  file: string;
  fd: number;
  bytes: number;
  spool: boolean;
  identity?: { ino: number; size: number; mtimeMs: number };
  perUser?: Map<string, number>;
}

/**
 * Collects raw (unvalidated) entries from every source of the call, in argument order. A large
 * NDJSON `--input` is not read here: it is returned as `streamed` (close it with closeStreamed).
 */
async function collectRaw(input: AggregateInput, ctx: HandlerContext, skipped: SkippedEntry[], prepare: Prepare): Promise<CollectedRaw> {
  let raw: unknown[] = [];
  let streamed: StreamedInput | undefined;
  const badLines: BadLines[] = [];
  const texts: Array<{ start: number; origin: string; lines: number[] }> = [];
  // concat, not push(...x): spreading 100k+ items into a call overflows the stack.
  const add = (items: unknown[]) => void (raw = raw.concat(items));
  const addText = (text: string, origin: string) => {
    const parsed = parseEntryText(text, origin);
    if (parsed.problems.length > 0) badLines.push({ origin, problems: parsed.problems });
    if (parsed.lines) texts.push({ start: raw.length, origin, lines: parsed.lines });
    add(parsed.items);
  };
  input.entry.forEach((text, i) => {
    // An empty --entry is a slip (an unset shell variable), unlike `[]` or an empty --input file.
    if (text.trim() === '') throw new InputError(`--entry[${i}] holds no entry: nothing was accepted`, { details: [{ path: `--entry[${i}]`, message: 'empty' }] });
    addText(text, `--entry[${i}]`);
  });
  if (input.input !== undefined) {
    const origin = `--input=${input.input}`;
    // Loaded only with --input, so the hook path never pays for it.
    const { streamTuning } = await import('../stream-input.js');
    const got =
      input.input === '-'
        ? await readStdinStreaming(ctx, origin, Math.min(streamTuning.afterBytes, streamTuning.stdinAfterBytes), prepare)
        : await openInputFile(ctx, input.input, origin, streamTuning.afterBytes, (source) => readStdinStreaming(ctx, origin, Math.min(streamTuning.afterBytes, streamTuning.stdinAfterBytes), prepare, source));
    if (Buffer.isBuffer(got)) addText(decodeUtf8(got, origin), origin);
    else streamed = got;
  }
  try {
    await collectSources(input, ctx, skipped, add);
  } catch (error) {
    if (streamed) closeStreamed(ctx, streamed);
    throw error;
  }
  const sourceOf = (item: number) => {
    for (const t of texts) if (item >= t.start && item < t.start + t.lines.length) return { origin: t.origin, line: t.lines[item - t.start]! };
    return undefined;
  };
  return { raw, ...(streamed ? { streamed } : {}), problems: (invalid) => inputError(badLines, invalid, sourceOf) };
}

/** What {@link collectRaw} read: raw items, a streamed input, and the input's problems. */
interface CollectedRaw {
  raw: unknown[];
  streamed?: StreamedInput;
  /**
   * The InputError to throw, if any: lines of `--entry`/`--input` text that did not parse, plus
   * `invalid` (the InputError validating `raw` threw, if it did) with each entry's line.
   */
  problems: (invalid: InputError | undefined) => InputError | undefined;
}

/** Closes a streamed input's descriptor and removes the scratch file of stdin. */
function closeStreamed(ctx: HandlerContext, streamed: StreamedInput): void {
  try {
    fs.closeSync(streamed.fd);
  } catch {
    /* already closed */
  }
  if (streamed.spool) removeQuietly(ctx, streamed.file);
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
 * Standard input: the bytes when they fit in `afterBytes` (STDIN_STREAM_AFTER_BYTES, 16 MiB; a
 * JSON array or NDJSON). Longer NDJSON is validated while it is read (pass 1) and only its validated
 * entries — redacted and pseudonymized — are written to a scratch file
 * `<data root>/cache/stdin-<pid>-<hex>.ndjson` (0600) for pass 2: the raw input never reaches the
 * disk. A longer JSON array is held in memory up to MAX_INPUT_BYTES (64 MiB), then refused.
 *
 * @throws InputError (exit 2) listing up to 1,000 problems; nothing is stored and the scratch
 *   file is removed
 */
async function readStdinStreaming(ctx: HandlerContext, origin: string, afterBytes: number, prepare: Prepare, source?: AsyncIterable<Buffer | string>): Promise<Buffer | StreamedInput> {
  const { assertOwnDataRoot } = await import('../aggregator.js');
  const { NdjsonSplitter, ProblemSink, streamTuning, validateChunk } = await import('../stream-input.js');
  assertOwnDataRoot(ctx);
  const cache = storeLayout(ctx.dataRoot).cache;
  removeDeadSpools(ctx, cache);
  const spool = path.join(cache, `stdin-${process.pid}-${randomBytes(4).toString('hex')}.ndjson`);
  const problems = new ProblemSink();
  const perUser = new Map<string, number>();
  let mode: 'unknown' | 'ndjson' | 'array' = 'unknown';
  let arrayParts: Buffer[] = [];
  let arrayBytes = 0;
  let fd: number | undefined;
  let spooledBytes = 0;
  const splitter = new NdjsonSplitter(origin, streamTuning.chunkEntries, problems);
  const take = (chunks: NdjsonChunk[]) => {
    for (const chunk of chunks) {
      const entries = validateChunk(prepare, chunk, problems);
      if (!entries || problems.total > 0) continue; // keep reading to list every problem; store nothing
      for (const e of entries) perUser.set(e.userId, (perUser.get(e.userId) ?? 0) + 1);
      const text = Buffer.from(entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
      fs.writeSync(fd!, text);
      spooledBytes += text.length;
    }
  };
  let got;
  try {
    got = await ctx.readStdin(afterBytes, () => {
      ctx.fs.mkdirp(cache);
      fd = fs.openSync(spool, 'wx+', 0o600);
      return {
        write(chunk: Buffer) {
          if (mode === 'unknown') {
            const text = chunk.toString('utf8').replace(/^\uFEFF/, '').trimStart();
            if (text !== '') mode = text.startsWith('[') ? 'array' : 'ndjson';
          }
          if (mode === 'array' || mode === 'unknown') {
            arrayBytes += chunk.length;
            if (arrayBytes <= MAX_INPUT_BYTES) arrayParts.push(Buffer.from(chunk));
            else arrayParts = [];
            return;
          }
          take(splitter.push(chunk));
        },
        end() {
          if (mode === 'ndjson') take(splitter.finish());
        },
      };
    }, source);
  } catch (error) {
    if (fd !== undefined) closeStreamed(ctx, { origin, file: spool, fd, bytes: 0, spool: true });
    throw toIoError(error, ctx.dataRoot);
  }
  if (got === undefined) throw new Error('unreachable: a stdin overflow sink was given');
  if (Buffer.isBuffer(got)) return got;
  const streamed: StreamedInput = { origin, file: spool, fd: fd!, bytes: spooledBytes, spool: true, perUser };
  if ((mode as string) !== 'ndjson') {
    closeStreamed(ctx, streamed);
    if (arrayBytes <= MAX_INPUT_BYTES) return Buffer.concat(arrayParts);
    throw new InputError(`${origin} is a JSON array larger than ${MAX_INPUT_BYTES} bytes (64 MiB): send it as NDJSON (one entry per line), which is streamed whatever its size: nothing was accepted`, {
      details: [{ path: origin, message: `JSON array of more than ${MAX_INPUT_BYTES} bytes` }],
    });
  }
  const problem = problems.toError(origin);
  if (problem) {
    closeStreamed(ctx, streamed);
    throw problem;
  }
  return streamed;
}

/**
 * Removes scratch files of stdin left by killed `aggregate` processes (their pid no longer runs
 * on this machine), so validated entries do not wait for `aggregate-cleanup` (7 days).
 */
function removeDeadSpools(ctx: HandlerContext, cache: string): void {
  for (const name of ctx.fs.readdir(cache)) {
    if (!STDIN_SPOOL_PATTERN.test(name)) continue;
    const pid = Number(name.split('-')[1]);
    if (pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') removeQuietly(ctx, path.join(cache, name));
    }
  }
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

/**
 * The file's bytes; or, when it is larger than `afterBytes` (STREAM_AFTER_BYTES) and NDJSON, the
 * file opened for streaming. A JSON array larger than MAX_INPUT_BYTES is refused (exit 2). A pipe
 * or device (`/dev/stdin`, `<(cmd)`) goes to `readStream`, read once like standard input (held
 * up to 16 MiB, else streamed), instead of being read whole.
 */
async function openInputFile(ctx: HandlerContext, file: string, origin: string, afterBytes: number, readStream: (source: AsyncIterable<Buffer | string>) => Promise<Buffer | StreamedInput>): Promise<Buffer | StreamedInput> {
  const full = path.resolve(ctx.cwd, file);
  const cannotRead = (error: unknown) =>
    new UsageError(`Cannot read --input=${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
      details: [{ path: '--input', message: (error as Error).message, value: file }],
    });
  if (file === '') throw new UsageError('--input needs a file: --input=FILE, or --input=- for standard input', { details: [{ path: '--input', message: 'empty path', value: file }] });
  const st = ctx.fs.stat(full);
  if (st?.isDirectory()) throw new UsageError(`Cannot read --input=${file}: it is a folder; give an NDJSON or JSON file, or - for standard input`, { details: [{ path: '--input', message: `${full} is a folder`, value: file }] });
  if (st && !st.isFile()) {
    // A pipe or device (`--input=/dev/stdin`, `--input=<(cmd)`): it can be read only once and its
    // size is unknown, so it is read like standard input — held up to 16 MiB, else streamed.
    let fd: number;
    try {
      fd = fs.openSync(full, 'r');
    } catch (error) {
      throw cannotRead(error);
    }
    return readStream(fs.createReadStream('', { fd }));
  }
  if (st && st.isFile() && st.size > afterBytes) {
    let fd: number;
    try {
      fd = fs.openSync(full, 'r');
    } catch (error) {
      throw cannotRead(error);
    }
    const opened = fs.fstatSync(fd);
    const { looksLikeJsonArray } = await import('../stream-input.js');
    if (!looksLikeJsonArray(fd)) {
      return { origin, file: full, fd, bytes: opened.size, spool: false, identity: { ino: opened.ino, size: opened.size, mtimeMs: opened.mtimeMs } };
    }
    fs.closeSync(fd);
    if (opened.size > MAX_INPUT_BYTES) {
      throw new InputError(`${origin} is a JSON array larger than ${MAX_INPUT_BYTES} bytes (64 MiB): send it as NDJSON (one entry per line), which is streamed whatever its size: nothing was accepted`, {
        details: [{ path: origin, message: `JSON array of more than ${MAX_INPUT_BYTES} bytes` }],
      });
    }
  }
  try {
    return ctx.fs.readFile(full);
  } catch (error) {
    throw cannotRead(error);
  }
}

/**
 * Stores validated entries: under the store lock (ingest, then the flush triggers), or — when
 * the store stays busy for INBOX_AFTER_MS — durably queued in the inbox (see inbox.ts).
 */
async function storeEntries(ctx: HandlerContext, entries: Entry[], skipped: SkippedEntry[], index?: IdIndex, rateLimit = true): Promise<AggregateResult> {
  // withStore may run this more than once (a lock lost mid-way): entries appended by an
  // earlier attempt are this call's, not duplicates. The ids are kept as the lists onDurable
  // gives (each id once; a Set of a 100k import's ids cost ~25 ms) and put in a Set only when
  // an attempt has to leave them out.
  const durable: Array<readonly string[]> = [];
  let acceptedCount = 0;
  const notYetDurable = (): Entry[] => {
    if (acceptedCount === 0) return entries;
    const done = new Set<string>();
    for (const ids of durable) for (const id of ids) done.add(id);
    return entries.filter((e) => !done.has(e.entryId));
  };
  try {
    return await withStore(
      ctx,
      async (store) => {
        // Whole batches of a large call go straight to batch files (see OpenStore.ingestBulk).
        const bulk = await store.ingestBulk(notYetDurable(), {
          rateLimit,
          onDurable: (ids) => {
            durable.push(ids);
            acceptedCount += ids.length;
          },
        });
        const outcome = await store.flush();
        const { pending, batchAgeMs } = store.pendingSummary();
        return {
          accepted: acceptedCount,
          duplicates: entries.length - acceptedCount,
          pending,
          batchAgeMs,
          flushed: [...store.resumed, ...bulk.flushed, ...outcome.flushed],
          failed: [...bulk.failed, ...outcome.failed],
          skipped,
          // A batch neither written nor parked: its entries are safe in the journal (pending).
          ...(bulk.stuck || outcome.stuck ? { warnings: [`a flush could not write its batch: ${bulk.stuck ?? outcome.stuck}`] } : {}),
        };
      },
      { lockTimeoutMs: INBOX_AFTER_MS, index },
    );
  } catch (error) {
    // The store stayed busy: acknowledge through the inbox instead of failing (see inbox.ts).
    if (!(error instanceof LockedError)) throw error;
    const rest = notYetDurable();
    const layout = storeLayout(ctx.dataRoot);
    const queued = rest.length > 0 ? queueInInbox(ctx, layout, rest) : undefined;
    ctx.log.info('store busy; entries queued in the inbox', { file: queued, entries: rest.length });
    return { accepted: acceptedCount + rest.length, duplicates: 0, pending: null, batchAgeMs: null, flushed: [], failed: [], skipped, queued };
  }
}

/**
 * A streamed `--input` (stream-input.ts): pass 1 parses and validates every line and stores
 * nothing, so any problem is exit 2 with nothing accepted (for stdin pass 1 already ran while it
 * was read); the rate limit, if any, is then checked for the whole input at once; pass 2 reads
 * the same descriptor again and stores it in chunks of STREAM_CHUNK_ENTRIES, each chunk under its
 * own hold of the store lock (other calls interleave; duplicates across chunks are caught by id
 * like any other). `entries` are the call's other (already validated) entries, stored first.
 *
 * @throws InputError (exit 2) listing up to 1,000 problems by line or `[index].field`
 * @throws RateLimitError (exit 2) when the whole input would exceed `rateLimit`; nothing stored
 * @throws IoError (exit 1) when the file changed after it was opened (replaced, or a chunk no
 *   longer reads as pass 1 read it): before pass 2 nothing was stored; during pass 2 only chunks
 *   identical to what pass 1 validated were stored, and a retry counts them as duplicates
 */
async function storeStreamed(ctx: HandlerContext, streamed: StreamedInput, entries: Entry[], skipped: SkippedEntry[], prepare: Prepare): Promise<AggregateResult> {
  const { ProblemSink, readNdjsonChunks, streamTuning, validateChunk } = await import('../stream-input.js');
  const chunkEntries = streamTuning.chunkEntries;
  const perUser = streamed.perUser ?? new Map<string, number>();
  const changedError = (stored: number) =>
    new IoError(
      stored === 0
        ? `${streamed.origin} changed while it was being read: nothing was stored; run the call again once the file is complete.`
        : `${streamed.origin} changed while it was being stored: ${stored} entries were stored before the change and are safe (a retry counts them as duplicates); the rest was not accepted.`,
      { details: [{ path: streamed.origin, message: 'content differs from the first reading' }] },
    );
  const assertUnchanged = (stored: number) => {
    if (!streamed.identity) return;
    const now = fs.fstatSync(streamed.fd);
    const atPath = ctx.fs.stat(streamed.file);
    const same = (st: { ino: number; size: number; mtimeMs: number } | undefined) => st !== undefined && st.ino === streamed.identity!.ino && st.size === streamed.identity!.size && st.mtimeMs === streamed.identity!.mtimeMs;
    if (!same(now) || !same(atPath)) throw changedError(stored);
  };
  // A digest of every chunk pass 1 validated: pass 2 stores a chunk only when it reads the same
  // items again, so a file changed in place (same inode, even with its mtime put back) can never
  // slip content past validation or the rate limit.
  const digests: string[] = [];
  const digest = (items: unknown[]) => createHash('sha256').update(JSON.stringify(items)).digest('base64');
  if (!streamed.spool) {
    const readProblems = new ProblemSink();
    for (const chunk of readNdjsonChunks(streamed.fd, streamed.origin, streamed.bytes, chunkEntries, readProblems)) {
      digests.push(digest(chunk.items));
      const valid = validateChunk(prepare, chunk, readProblems);
      if (valid) for (const e of valid) perUser.set(e.userId, (perUser.get(e.userId) ?? 0) + 1);
    }
    const problem = readProblems.toError(streamed.origin);
    if (problem) throw problem;
    assertUnchanged(0);
  }
  // The rate limit is checked for the whole input before anything is stored (exit 2 = nothing).
  if (ctx.config.rateLimit.entriesPerMinute > 0) await withStore(ctx, async (store) => store.reserveRateLimit(perUser));
  const index = openStoreIndex(ctx);
  const total = await storeEntries(ctx, entries, skipped, index);
  const queued: string[] = total.queued ? [total.queued] : [];
  // Pass 2. A scratch file of stdin holds validated entries already: validate, never pseudonymize again.
  const { validateEntries } = await import('../entry.js');
  const again: Prepare = streamed.spool ? (raw) => validateEntries(raw, { now: ctx.now(), maxClockSkew: ctx.config.maxClockSkew, redactKeys: ctx.config.privacy.redactKeys }) : prepare;
  const changed = new ProblemSink();
  let chunkNumber = 0;
  for (const chunk of readNdjsonChunks(streamed.fd, streamed.origin, streamed.bytes, chunkEntries, changed)) {
    const expected = streamed.spool ? undefined : digests[chunkNumber];
    chunkNumber++;
    if (!streamed.spool && (expected === undefined || digest(chunk.items) !== expected)) throw changedError(total.accepted);
    let valid: Entry[] | undefined;
    try {
      valid = changed.total === 0 ? again(chunk.items) : undefined;
    } catch {
      valid = undefined;
    }
    if (valid === undefined) throw changedError(total.accepted);
    // The parsed items are not needed any more: let them go before the writes are awaited, so
    // they are not promoted to the old generation with the chunk (peak memory of a streamed input).
    chunk.items = [];
    const part = await storeEntries(ctx, valid, [], index, false);
    total.accepted += part.accepted;
    total.duplicates += part.duplicates;
    total.flushed.push(...part.flushed);
    total.failed.push(...part.failed);
    total.pending = part.pending;
    total.batchAgeMs = part.batchAgeMs;
    if (part.warnings) total.warnings = [...(total.warnings ?? []), ...part.warnings];
    if (part.queued) queued.push(part.queued);
  }
  if (changed.total > 0 || (!streamed.spool && chunkNumber !== digests.length)) throw changedError(total.accepted);
  assertUnchanged(total.accepted);
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
  provider-bridge aggregate --input=entries.ndjson       (one entry per line)
  my-exporter --ndjson | provider-bridge aggregate --input=-
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
    const secret = ctx.config.privacy.anonymizeUsers ? await import('../privacy.js').then((p) => ({ p, key: p.loadOrCreateSecret(ctx) })) : undefined;
    const prepare: Prepare = (raw) =>
      validateEntries(secret ? secret.p.anonymizeRaw(raw, secret.key) : raw, { now: ctx.now(), maxClockSkew: ctx.config.maxClockSkew, redactKeys: ctx.config.privacy.redactKeys });
    const collected = await collectRaw(input, ctx, skipped, prepare);
    const { streamed } = collected;
    try {
      if (skipped.length > 0) ctx.log.warn('git entries skipped: date out of range', { skipped });
      let entries: Entry[];
      try {
        entries = prepare(collected.raw);
      } catch (error) {
        throw error instanceof InputError ? (collected.problems(error) ?? error) : error;
      }
      // Every problem of the input at once: lines that did not parse and entries that did not validate.
      const problems = collected.problems(undefined);
      if (problems) throw problems;
      const result = streamed ? await storeStreamed(ctx, streamed, entries, skipped, prepare) : await storeEntries(ctx, entries, skipped);
      const { checkPrivacySettings } = await import('../privacy.js');
      const warning = checkPrivacySettings(ctx, secret?.key);
      if (warning) result.warnings = [...(result.warnings ?? []), warning];
      return result;
    } finally {
      if (streamed) closeStreamed(ctx, streamed);
    }
  },
  formatText: (r) =>
    (r.queued
      ? `accepted ${r.accepted}: the store was busy, so they were queued in ${r.queued} (merged by the next call)`
      : `accepted ${r.accepted}, duplicates ${r.duplicates}, pending ${r.pending} (oldest ${Math.round((r.batchAgeMs ?? 0) / 1000)} s)`) +
    r.flushed.map((f) => `\nflushed ${f.entryCount} entries (${f.trigger}) → ${f.file}`).join('') +
    r.skipped.map((k) => `\nskipped ${k.entryId}: ${k.reason}`).join('') +
    r.failed.map((f) => `\nflush FAILED, ${f.entryCount} entries parked in ${f.file}: ${f.error}`).join('') +
    (r.warnings ?? []).map((w) => `\nwarning: ${w}`).join(''),
};
