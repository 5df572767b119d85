/**
 * Streamed reading of large NDJSON inputs (`aggregate --input`, issue 5): memory stays bounded
 * by one chunk of entries whatever the input's size, and the all-or-nothing rule of SPEC §3/§4
 * still holds because the input is read twice — pass 1 parses and validates every line and
 * stores nothing; only when every line is valid does pass 2 read it again and store it chunk by
 * chunk. Standard input is first copied to a scratch file so that it can be read twice.
 *
 * Input format: NDJSON (one JSON entry per non-empty line, `\n` or `\r\n` line ends, an optional
 * UTF-8 byte order mark), decoded as strict UTF-8. A JSON array is not streamed (it cannot be
 * split into lines); arrays stay limited to MAX_INPUT_BYTES in aggregate.ts.
 */
import * as fs from 'node:fs';
import { InputError, type ErrorDetail } from '../../src/core/errors.js';
import { ENTRY_MESSAGES } from './entry.js';

/** Inputs larger than this (bytes) are streamed in chunks instead of read whole. */
export const STREAM_AFTER_BYTES = 32 * 1024 * 1024;
/**
 * Standard input longer than this (bytes) is streamed: less than for a file, because stdin is
 * held in memory until the decision, and holding 32 MiB of pipe reads left the process ~15 MB
 * larger for the rest of a long streamed ingest (freed buffers the allocator keeps): 1,000,000
 * entries peaked at 199 MiB RSS, 182–186 MiB with 16 MiB.
 */
export const STDIN_STREAM_AFTER_BYTES = 16 * 1024 * 1024;
/** Entries per chunk: parsed, validated and stored together (bounds memory: about 5 MB of entries). */
export const STREAM_CHUNK_ENTRIES = 5_000;

/**
 * Module state in one place (STYLE §8): tests lower both to stream small inputs, and call
 * {@link resetStreamTuning} afterwards.
 */
export const streamTuning = { afterBytes: STREAM_AFTER_BYTES, stdinAfterBytes: STDIN_STREAM_AFTER_BYTES, chunkEntries: STREAM_CHUNK_ENTRIES };

export function resetStreamTuning(): void {
  streamTuning.afterBytes = STREAM_AFTER_BYTES;
  streamTuning.stdinAfterBytes = STDIN_STREAM_AFTER_BYTES;
  streamTuning.chunkEntries = STREAM_CHUNK_ENTRIES;
}
/** Bytes read from the file per read call. */
const READ_BYTES = 1024 * 1024;
/** A line longer than this (bytes) cannot hold a valid entry (metadata ≤ 16 KiB): an error. */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Problems kept for the error's details; the rest are counted (the host prints ≤ 1,000). */
const MAX_KEPT_PROBLEMS = 1000;

/**
 * Parsed items of up to `maxItems` consecutive non-empty lines; `firstItem` is the index of the
 * first (0-based, across the whole input); `lines[k]` is item k's 1-based physical line in
 * `origin`.
 */
export interface NdjsonChunk {
  items: unknown[];
  firstItem: number;
  lines: number[];
  origin: string;
}

/** Collects problems found while streaming, keeping the first MAX_KEPT_PROBLEMS. */
export class ProblemSink {
  readonly details: ErrorDetail[] = [];
  /** Problems found in all (kept or not). */
  total = 0;
  /** Lines that were not JSON, not UTF-8, or too long. */
  badLines = 0;
  /** Entries that failed validation. */
  invalidEntries = 0;

  add(detail: ErrorDetail): void {
    this.total++;
    if (this.details.length < MAX_KEPT_PROBLEMS) this.details.push(detail);
  }

  /**
   * The InputError for everything collected (exit 2: nothing was accepted), or undefined when
   * clean. Details are in line order, as for a small input: a chunk's bad lines are found while
   * it is split, its entries' problems only once it is validated.
   */
  toError(origin: string): InputError | undefined {
    if (this.total === 0) return undefined;
    const lineOf = (d: ErrorDetail) => Number(/:line (\d+)$/.exec(d.source ?? d.path)?.[1] ?? Number.MAX_SAFE_INTEGER);
    const details = this.details.map((d, i) => ({ d, i, line: lineOf(d) })).sort((a, b) => a.line - b.line || a.i - b.i).map((x) => x.d);
    if (this.total > details.length) details.push({ path: origin, message: `${this.total - details.length} more problems not listed` });
    const message =
      this.invalidEntries > 0 && this.badLines === 0
        ? ENTRY_MESSAGES.invalidEntries(this.invalidEntries)
        : this.badLines > 0 && this.invalidEntries === 0
          ? ENTRY_MESSAGES.invalidText(this.badLines, origin)
          : ENTRY_MESSAGES.badLinesAndInvalid(origin, this.badLines, this.invalidEntries);
    return new InputError(message, { details });
  }
}

/** Whether the open file's first non-blank character (after a BOM) is `[`: a JSON array, not NDJSON. */
export function looksLikeJsonArray(fd: number): boolean {
  const head = Buffer.alloc(4096);
  const n = fs.readSync(fd, head, 0, head.length, 0);
  const text = head.subarray(0, n).toString('utf8').replace(/^\uFEFF/, '');
  return text.trimStart().startsWith('[');
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Splits NDJSON bytes pushed in pieces of any size (a file read, a pipe) into parsed items, in
 * chunks of up to `maxItems`. Lines that are not JSON, not valid UTF-8, or longer than
 * MAX_LINE_BYTES are added to `problems` as `{path: "<origin>:line N", message}` (1-based
 * physical lines) and skipped; the caller decides what problems mean. A UTF-8 byte order mark at
 * the very start is skipped. Memory: one chunk of items and at most one line of carry-over.
 */
export class NdjsonSplitter {
  private carry: Buffer = Buffer.alloc(0);
  private started = false;
  private line = 1;
  private itemIndex = 0;
  private items: unknown[] = [];
  private lines: number[] = [];
  private firstItem = 0;
  private skippingLongLine = false;

  constructor(
    private readonly origin: string,
    private readonly maxItems: number,
    private readonly problems: ProblemSink,
  ) {}

  /** Takes the next bytes; returns the chunks that became complete. */
  push(input: Buffer): NdjsonChunk[] {
    const out: NdjsonChunk[] = [];
    let data = input;
    if (!this.started && data.length > 0) {
      this.started = true;
      if (data[0] === 0xef && data[1] === 0xbb && data[2] === 0xbf) data = data.subarray(3);
    }
    if (this.skippingLongLine) {
      const nl = data.indexOf(0x0a);
      if (nl === -1) return out;
      data = data.subarray(nl + 1);
      this.skippingLongLine = false;
      this.line++;
    }
    const joined = this.carry.length > 0 ? Buffer.concat([this.carry, data]) : data;
    const lastNl = joined.lastIndexOf(0x0a);
    if (lastNl === -1) {
      this.carry = Buffer.from(joined);
    } else {
      this.takeLines(joined.subarray(0, lastNl + 1), false, out);
      this.carry = Buffer.from(joined.subarray(lastNl + 1));
    }
    if (this.carry.length > MAX_LINE_BYTES) {
      this.badLine(`line longer than ${MAX_LINE_BYTES} bytes`);
      this.carry = Buffer.alloc(0);
      this.skippingLongLine = true;
    }
    return out;
  }

  /** The end of the input: the last line (without a newline) and the last, partial chunk. */
  finish(): NdjsonChunk[] {
    const out: NdjsonChunk[] = [];
    if (this.carry.length > 0 && !this.skippingLongLine) this.takeLines(this.carry, true, out);
    this.carry = Buffer.alloc(0);
    if (this.items.length > 0) out.push({ items: this.items, firstItem: this.firstItem, lines: this.lines, origin: this.origin });
    this.items = [];
    this.lines = [];
    return out;
  }

  private badLine(message: string): void {
    this.problems.badLines++;
    this.problems.add({ path: `${this.origin}:line ${this.line}`, message });
  }

  private takeLines(data: Buffer, final: boolean, out: NdjsonChunk[]): void {
    let text: string | undefined;
    try {
      text = strictUtf8.decode(data);
    } catch {
      text = undefined;
    }
    // Line by line only when the chunk holds bad UTF-8 (to name the line).
    const lines = text !== undefined ? text.split('\n') : splitBytesToLines(data);
    const count = final && !(data.length > 0 && data[data.length - 1] === 0x0a) ? lines.length : lines.length - 1;
    for (let i = 0; i < count; i++) {
      const raw = lines[i]!;
      const lineText = typeof raw === 'string' ? raw : decodeLine(raw);
      if (lineText === undefined) {
        this.badLine('invalid UTF-8 byte sequence');
      } else if (lineText.length > MAX_LINE_BYTES) {
        this.badLine(`line longer than ${MAX_LINE_BYTES} bytes`);
      } else {
        const trimmed = lineText.trim();
        if (trimmed !== '') {
          try {
            this.items.push(JSON.parse(trimmed));
            this.lines.push(this.line);
            this.itemIndex++;
          } catch (error) {
            this.badLine(ENTRY_MESSAGES.badJson((error as Error).message));
          }
          if (this.items.length >= this.maxItems) {
            out.push({ items: this.items, firstItem: this.firstItem, lines: this.lines, origin: this.origin });
            this.items = [];
            this.lines = [];
            this.firstItem = this.itemIndex;
          }
        }
      }
      this.line++;
    }
  }
}

/**
 * Reads the first `byteLimit` bytes of the open file `fd` as NDJSON (see {@link NdjsonSplitter})
 * and yields its entries parsed (not validated) in chunks of up to `maxItems`. Memory: one read
 * buffer plus the splitter's. The descriptor stays open (the caller reads it twice).
 *
 * @throws Node's errno errors when the file cannot be read
 */
export function* readNdjsonChunks(fd: number, origin: string, byteLimit: number, maxItems: number, problems: ProblemSink): Generator<NdjsonChunk> {
  const splitter = new NdjsonSplitter(origin, maxItems, problems);
  const buf = Buffer.allocUnsafe(READ_BYTES);
  for (let position = 0; ; ) {
    const want = Math.min(READ_BYTES, byteLimit - position);
    const n = want > 0 ? fs.readSync(fd, buf, 0, want, position) : 0;
    if (n === 0) break;
    position += n;
    yield* splitter.push(buf.subarray(0, n));
  }
  yield* splitter.finish();
}

/** Splits bytes at `\n` (never inside a UTF-8 sequence), keeping an empty last part like String.split. */
function splitBytesToLines(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (;;) {
    const nl = data.indexOf(0x0a, start);
    if (nl === -1) {
      out.push(data.subarray(start));
      return out;
    }
    out.push(data.subarray(start, nl));
    start = nl + 1;
  }
}

function decodeLine(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Rewrites a validation detail path `[i]…` of a chunk to the item's index in the whole input,
 * and names the item's line as its `source` (`<origin>:line N`) when the chunk knows it.
 */
export function offsetDetailPath(detail: ErrorDetail, firstItem: number, chunk?: Pick<NdjsonChunk, 'lines' | 'origin'>): ErrorDetail {
  let line: number | undefined;
  const path = detail.path.replace(/^\[(\d+)\]/, (_, i: string) => {
    line = chunk?.lines[Number(i)];
    return `[${Number(i) + firstItem}]`;
  });
  return line === undefined ? { ...detail, path } : { ...detail, path, source: `${chunk!.origin}:line ${line}` };
}

/**
 * Validates one chunk with `prepare` (validateEntries and the privacy steps); on InputError adds
 * its problems to `problems` — paths shifted to the items' index in the whole input, each
 * invalid entry counted once — and returns undefined. Other errors propagate.
 */
export function validateChunk<T>(prepare: (raw: unknown[]) => T[], chunk: NdjsonChunk, problems: ProblemSink): T[] | undefined {
  try {
    return prepare(chunk.items);
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    const invalid = new Set<string>();
    for (const detail of error.details) {
      const shifted = offsetDetailPath(detail, chunk.firstItem, chunk);
      invalid.add(/^\[\d+\]/.exec(shifted.path)?.[0] ?? shifted.path);
      problems.add(shifted);
    }
    problems.invalidEntries += invalid.size;
    return undefined;
  }
}
