/**
 * Calendar days for `aggregate-report`: which day an entry belongs to, and the `--tz`,
 * `--since` and `--until` options. Pure (no clock, no disk).
 *
 * An entry's day is its local date at the entry's own UTC offset when the entry carries one
 * (`metadata.tz` of git commits, `+0100` as git prints it, see sources/git-commit.ts), else at
 * the report time zone (`--tz`, default UTC). Day keys are `YYYY-MM-DD`.
 */
import { UsageError } from '../../../src/core/errors.js';

const DAY_MS = 86_400_000;
/**
 * Every UTC offset in use since 2000 is a whole number of quarter hours, and time zones change
 * offset only on a quarter-hour boundary, so the local date is constant within a UTC
 * quarter hour: IANA zones are looked up once per quarter hour and cached.
 */
const QUARTER_HOUR_MS = 900_000;

/** A time zone as the report uses it. */
export interface ReportZone {
  /** As given and normalized: `UTC`, `+02:00`, or an IANA name such as `Europe/Berlin`. */
  name: string;
  /** Local date (`YYYY-MM-DD`) of an instant (epoch ms) in this zone. */
  dayOf(ms: number): string;
}

/** `YYYY-MM-DD` of a day number (days since 1970-01-01). */
function dayKey(dayNumber: number): string {
  return new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
}

/** A zone at a fixed offset (minutes east of UTC); day keys are cached per day number. */
function fixedZone(name: string, offsetMinutes: number): ReportZone {
  const offsetMs = offsetMinutes * 60_000;
  const cache = new Map<number, string>();
  return {
    name,
    dayOf(ms) {
      const n = Math.floor((ms + offsetMs) / DAY_MS);
      let key = cache.get(n);
      if (key === undefined) cache.set(n, (key = dayKey(n)));
      return key;
    },
  };
}

/** `±hh:mm` of an offset in minutes (`+00:00` for UTC). */
function formatOffset(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/**
 * Minutes east of UTC of an offset written `+hh:mm`, `+hhmm` or `+hh` (git prints `+0100`);
 * undefined when the text is not one or is out of range (beyond ±14:00, minutes ≥ 60).
 */
export function parseOffset(text: string): number | undefined {
  const m = /^([+-])(\d{2}):?(\d{2})?$/.exec(text);
  if (!m) return undefined;
  const hours = Number(m[2]);
  const minutes = Number(m[3] ?? '0');
  if (hours > 14 || minutes >= 60 || hours * 60 + minutes > 14 * 60) return undefined;
  return (m[1] === '-' ? -1 : 1) * (hours * 60 + minutes);
}

/** The zone at a fixed offset of `minutes` east of UTC (named `UTC` or `±hh:mm`). */
export function offsetZone(minutes: number): ReportZone {
  return fixedZone(minutes === 0 ? 'UTC' : formatOffset(minutes), minutes);
}

/**
 * Parses `--tz`: `UTC` (or `Z`), an offset `+02:00` / `-0530`, or an IANA time zone name known
 * to this Node's ICU data (`Europe/Berlin`). Throws UsageError (exit 2, path `--tz`) otherwise.
 */
export function parseReportZone(text: string | undefined): ReportZone {
  if (text === undefined || /^(utc|z|gmt)$/i.test(text.trim())) return offsetZone(0);
  const value = text.trim();
  if (/^[+-]/.test(value)) {
    const minutes = parseOffset(value);
    if (minutes === undefined) throw badOption('--tz', value, 'an offset must be ±hh:mm between -14:00 and +14:00, e.g. +02:00');
    return offsetZone(minutes);
  }
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', { timeZone: value, year: 'numeric', month: '2-digit', day: '2-digit', hourCycle: 'h23' });
  } catch {
    throw badOption('--tz', value, 'expected UTC, an offset such as +02:00, or an IANA time zone name such as Europe/Berlin');
  }
  const name = format.resolvedOptions().timeZone;
  const cache = new Map<number, string>();
  return {
    name,
    dayOf(ms) {
      const bucket = Math.floor(ms / QUARTER_HOUR_MS);
      let key = cache.get(bucket);
      if (key === undefined) {
        const parts = format.formatToParts(ms);
        const part = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
        cache.set(bucket, (key = `${part('year')}-${part('month')}-${part('day')}`));
      }
      return key;
    },
  };
}

/** A `--since`/`--until` bound: a calendar day (compared with the entry's day) or an instant. */
export type ReportBound = { day: string } | { instant: number };

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME_RE = /^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,3}))?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** Whether `YYYY-MM-DD` names a real calendar day (no 2026-02-30). */
function isCalendarDay(text: string): boolean {
  const m = DATE_RE.exec(text);
  if (!m) return false;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return Number.isFinite(ms) && new Date(ms).toISOString().slice(0, 10) === text;
}

/**
 * Parses `--since` / `--until`: an ISO date `YYYY-MM-DD` (inclusive: the whole day, as the
 * entry's day is computed) or an ISO date-time with an offset (`2026-03-01T09:00:00+01:00`,
 * `…Z`; inclusive instant). Throws UsageError naming the option otherwise (exit 2).
 */
export function parseBound(option: '--since' | '--until', text: string | undefined): ReportBound | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  if (DATE_RE.test(value)) {
    if (!isCalendarDay(value)) throw badOption(option, text, 'not a calendar day');
    return { day: value };
  }
  const m = DATE_TIME_RE.exec(value);
  if (m && isCalendarDay(m[1]!) && Number(m[2]) < 24 && Number(m[3]) < 60 && Number(m[4] ?? '0') < 60) {
    const zone = m[6]!.toUpperCase() === 'Z' ? 0 : parseOffset(m[6]!);
    if (zone !== undefined) {
      const [y, mo, d] = m[1]!.split('-').map(Number) as [number, number, number];
      const local = Date.UTC(y, mo - 1, d, Number(m[2]), Number(m[3]), Number(m[4] ?? '0'), Number((m[5] ?? '0').padEnd(3, '0')));
      return { instant: local - zone * 60_000 };
    }
  }
  throw badOption(option, text, 'expected an ISO date (2026-03-01) or a date-time with an offset (2026-03-01T09:00:00+01:00 or 2026-03-01T08:00:00Z)');
}

/** Whether an entry at `ms` whose day is `day` lies within the bounds (both inclusive). */
export function withinBounds(ms: number, day: string, since: ReportBound | undefined, until: ReportBound | undefined): boolean {
  if (since) {
    if ('day' in since ? day < since.day : ms < since.instant) return false;
  }
  if (until) {
    if ('day' in until ? day > until.day : ms > until.instant) return false;
  }
  return true;
}

/**
 * Throws UsageError when `since` is after `until` in a way that excludes everything for sure
 * (two days, or two instants), naming both options.
 */
export function assertBoundsOrder(since: ReportBound | undefined, until: ReportBound | undefined, sinceText?: string, untilText?: string): void {
  if (!since || !until) return;
  const inverted = 'day' in since && 'day' in until ? since.day > until.day : 'instant' in since && 'instant' in until ? since.instant > until.instant : false;
  if (inverted) {
    throw new UsageError(`--since (${sinceText}) is after --until (${untilText}): the report would be empty`, {
      details: [
        { path: '--since', message: 'after --until', value: sinceText },
        { path: '--until', message: 'before --since', value: untilText },
      ],
    });
  }
}

/** The bound as the user wrote it, normalized: `2026-03-01` or an ISO instant in UTC. */
export function formatBound(bound: ReportBound | undefined): string | null {
  if (!bound) return null;
  return 'day' in bound ? bound.day : new Date(bound.instant).toISOString();
}

/** Every day key from `first` to `last` inclusive (both `YYYY-MM-DD`, first ≤ last). */
export function daysBetween(first: string, last: string): string[] {
  const start = Date.parse(`${first}T00:00:00Z`) / DAY_MS;
  const end = Date.parse(`${last}T00:00:00Z`) / DAY_MS;
  const days: string[] = [];
  for (let n = start; n <= end; n++) days.push(dayKey(n));
  return days;
}

function badOption(option: string, value: string, expected: string): UsageError {
  return new UsageError(`${option} ${JSON.stringify(value)} is not valid: ${expected}`, { details: [{ path: option, message: expected, value }] });
}
