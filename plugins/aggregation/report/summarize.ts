/**
 * The arithmetic of `aggregate-report`: entries in, as read (an id may come twice: a flush in
 * progress, two clones' copies of one commit), rows out. Pure: no disk, no clock.
 *
 * Rules (README "Reports"):
 * - Each entry id counts once. Work-session entries need no id set for it: a repeated id is
 *   met as the entry counted for its session (or as an earlier import, not counted anyway).
 *   Other entries are checked against a set of the ids seen.
 * - `entries` counts entries, `commits` counts entries with action `commit`, `trackedMs` sums
 *   `metadata.duration` (milliseconds, any action) of the entries counted.
 * - A work session is counted once: the entries the sessions source made for one session —
 *   action `time-tracking` and an entry id `session:<user folder>:<session id>:<duration ms>`
 *   (sources/sessions.ts; the folder may be a pseudonym `u_<24 hex>`, privacy.ts) — are
 *   re-imports of that session, grouped by the id without its last `:<duration ms>`
 *   (`session:<user folder>:<session id>`; an id of the older format without the duration is
 *   its own group key). Of a group, the LATEST import counts: the one stored last, i.e. in the
 *   container (batch file, failed batch, journal, inbox file) with the latest flush time
 *   (pending entries are later than any batch file); within one container the later entry;
 *   between two containers of the same time the longer duration. So a session corrected
 *   downwards (a forgotten timer fixed from 2 h to 30 min) counts 30 min. Every other entry —
 *   piped `time-tracking` entries included, whatever their `metadata.sessionId` — counts on its
 *   own, once per entry id.
 * - The day of an entry is its local date at `metadata.tz` (git commits) when present, else at
 *   the report zone (report/time.ts); a session counts on the day it started.
 * - `--since`/`--until` days are compared with that day, instants with the timestamp.
 * - A grouping field that falls under the configured redaction keys shows `[REDACTED]`, so a
 *   report never shows a value a redaction key covers, even one stored before the key was added.
 */
import { isRedacted, normalizeKey, REDACTED } from '../entry.js';
import type { Entry } from '../types.js';
import { daysBetween, offsetZone, parseOffset, withinBounds, type ReportBound, type ReportZone } from './time.js';

/** Values of `--by`. */
export const REPORT_BY = ['user', 'task', 'day', 'branch', 'action'] as const;
export type ReportBy = (typeof REPORT_BY)[number];

/** Key of entries that have no value for the grouping field (no task, detached HEAD…). */
export const NO_VALUE = '(none)';
/** Chart series that gathers every task beyond the largest {@link MAX_CHART_TASKS}. */
export const OTHER_TASKS = '(other tasks)';
/** Tasks drawn as their own series in the HTML chart; the rest are summed into one. */
export const MAX_CHART_TASKS = 10;

/** The field a `--by` value groups on, as named for redaction (`userId`, `taskId`, `branch`, `action`). */
const GROUP_FIELD: Record<ReportBy, string | undefined> = { user: 'userId', task: 'taskId', day: undefined, branch: 'branch', action: 'action' };

/** One row: entries, commits and tracked milliseconds of one key. */
export interface ReportRow {
  key: string;
  entries: number;
  commits: number;
  trackedMs: number;
}

export interface ReportTotals {
  entries: number;
  commits: number;
  trackedMs: number;
}

/**
 * Tracked time per day, stacked by task, for the HTML chart: `days` is every calendar day from
 * the first to the last day with entries; `tasks[i].trackedMs[d]` is task i's milliseconds on
 * `days[d]`. Tasks by total, largest first, at most {@link MAX_CHART_TASKS} plus
 * {@link OTHER_TASKS}; tasks with no tracked time are left out.
 */
export interface DailyChart {
  days: string[];
  tasks: Array<{ task: string; trackedMs: number[] }>;
}

export interface ReportSummary {
  /** Sorted by key (code-unit order: days chronologically). */
  rows: ReportRow[];
  totals: ReportTotals;
  /** First and last day (`YYYY-MM-DD`) with a counted entry, or null when none. */
  firstDay: string | null;
  lastDay: string | null;
  /** Session entries not counted because a later import of the same session was. */
  supersededSessions: number;
  /** Entries outside `--since`/`--until`. */
  outOfRange: number;
  /** Entries met again under an id already counted. */
  duplicates: number;
  /** Only when asked for (`daily: true`). */
  daily?: DailyChart;
}

export interface SummarizeOptions {
  by: ReportBy;
  /** Zone for entries without an offset of their own. */
  zone: ReportZone;
  since?: ReportBound;
  until?: ReportBound;
  /** The configured redaction keys (`privacy.redactKeys`), as written in the config. */
  redactKeys: readonly string[];
  /** Build the {@link DailyChart} too. */
  daily?: boolean;
}

/**
 * Where an entry was stored, for "the latest import of a session counts": `at` is the flush time
 * of its container (epoch ms; `Infinity` for entries pending in the journal or inbox) and
 * `container` tells containers apart (entries of one container are added in stored order).
 */
export interface StoredAt {
  at: number;
  container: number;
}

/** Where entries added without a {@link StoredAt} are: one pending container, in order. */
const PENDING: StoredAt = { at: Number.POSITIVE_INFINITY, container: -1 };

/**
 * The re-import group of a sessions-source entry id: `session:<folder>:<session id>` for
 * `session:<folder>:<session id>:<duration ms>` and for the older `session:<folder>:<session id>`;
 * undefined for any other id.
 */
export function sessionGroup(entryId: string): string | undefined {
  const m = /^(session:[^:]+:.+):\d+$/s.exec(entryId);
  if (m) return m[1]!;
  return /^session:[^:]+:./s.test(entryId) ? entryId : undefined;
}

export interface ReportAccumulator {
  /**
   * Adds one entry stored at `stored` (default: pending, after every entry added before). A
   * repeated entry id is counted in `duplicates`, nothing else.
   */
  add(entry: Entry, stored?: StoredAt): void;
  finish(): ReportSummary;
}

const text = (value: unknown): string | undefined => {
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'string' ? value : JSON.stringify(value);
};

const durationOf = (entry: Entry): number => {
  const d = entry.metadata?.duration;
  return typeof d === 'number' && Number.isFinite(d) && d > 0 ? d : 0;
};

/** Growable parallel arrays: one slot per work session (no object per session, little to collect). */
class SessionSlots {
  ms = new Float64Array(1024);
  /** Row index the session is counted in, or -1 when its entry is outside the date range. */
  row = new Int32Array(1024);
  /** Entry id of the entry counted for the session (tells a repeat from a re-import). */
  ids: string[] = [];
  day = new Int32Array(1024);
  task = new Int32Array(1024);
  /** Flush time and container of the entry counted ({@link StoredAt}). */
  at = new Float64Array(1024);
  container = new Int32Array(1024);
  size = 0;
  add(): number {
    if (this.size === this.ms.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.ms = grow(this.ms);
      this.row = grow(this.row);
      this.day = grow(this.day);
      this.task = grow(this.task);
      this.at = grow(this.at);
      this.container = grow(this.container);
    }
    return this.size++;
  }
}

/**
 * Creates an accumulator for one report (see the module comment for the rules). Every entry is
 * counted as it arrives; when a later import of a session already counted arrives, the earlier
 * one is taken out again. So nothing but a few numbers per session is kept: 1M entries fit in
 * well under a second and a few tens of MB.
 */
export function createReportAccumulator(options: SummarizeOptions): ReportAccumulator {
  const redact = new Set(options.redactKeys.map(normalizeKey));
  const field = GROUP_FIELD[options.by];
  const fieldRedacted = field !== undefined && isRedacted(redact, field);
  const taskRedacted = isRedacted(redact, 'taskId');
  const zones = new Map<string, ReportZone>();
  const zoneOf = (entry: Entry): ReportZone => {
    const tz = entry.metadata?.tz;
    if (typeof tz !== 'string') return options.zone;
    let zone = zones.get(tz);
    if (!zone) {
      const minutes = parseOffset(tz);
      zones.set(tz, (zone = minutes === undefined ? options.zone : offsetZone(minutes)));
    }
    return zone;
  };

  const totals: ReportTotals = { entries: 0, commits: 0, trackedMs: 0 };
  const rows: ReportRow[] = [];
  const rowIndex = new Map<string, number>();
  const days: string[] = [];
  const dayIndex = new Map<string, number>();
  const dayEntries: number[] = [];
  /** Per day index: tracked ms per task index (daily chart only). */
  const dayTaskMs: Array<Map<number, number>> = [];
  const tasks: string[] = [];
  const taskIndex = new Map<string, number>();
  const slots = new SessionSlots();
  /** Re-import group (`session:<folder>:<session id>`) → slot. */
  const sessionsByGroup = new Map<string, number>();
  /** Ids of the entries that are not session entries. */
  const seen = new Set<string>();
  let sessionEntries = 0;
  let outOfRange = 0;
  let duplicates = 0;

  const intern = (list: string[], index: Map<string, number>, value: string, onNew?: () => void): number => {
    let i = index.get(value);
    if (i === undefined) {
      index.set(value, (i = list.length));
      list.push(value);
      onNew?.();
    }
    return i;
  };

  const valueOf = (entry: Entry): string | undefined => {
    switch (options.by) {
      case 'user':
        return entry.userId;
      case 'action':
        return entry.action;
      case 'task':
        return text(entry.metadata?.taskId);
      case 'branch':
        return text(entry.metadata?.branch);
      default:
        return undefined;
    }
  };
  /** The row key: the day, the field's value, NO_VALUE when absent, REDACTED when covered by a redaction key. */
  const keyOf = (entry: Entry, day: string): string => {
    if (options.by === 'day') return day;
    const value = valueOf(entry);
    if (value === undefined) return NO_VALUE;
    return fieldRedacted ? REDACTED : value;
  };

  // Where an entry counts, set by locate(): row, day and task (daily chart) indexes; row -1 = out of range.
  let atRow = -1;
  let atDay = -1;
  let atTask = -1;
  const locate = (entry: Entry): void => {
    const day = zoneOf(entry).dayOf(entry.timestamp);
    if (!withinBounds(entry.timestamp, day, options.since, options.until)) {
      atRow = -1;
      return;
    }
    const key = keyOf(entry, day);
    atRow = rowIndex.get(key) ?? -1;
    if (atRow === -1) {
      rowIndex.set(key, (atRow = rows.length));
      rows.push({ key, entries: 0, commits: 0, trackedMs: 0 });
    }
    atDay = intern(days, dayIndex, day, () => {
      dayEntries.push(0);
      dayTaskMs.push(new Map());
    });
    if (options.daily) {
      const taskId = text(entry.metadata?.taskId);
      atTask = intern(tasks, taskIndex, taskId === undefined ? NO_VALUE : taskRedacted ? REDACTED : taskId);
    }
  };
  /** Adds (sign 1) or takes out (sign -1) one entry's counts. */
  const apply = (row: number, day: number, task: number, ms: number, commit: number, sign: 1 | -1): void => {
    const r = rows[row]!;
    r.entries += sign;
    r.commits += sign * commit;
    r.trackedMs += sign * ms;
    totals.entries += sign;
    totals.commits += sign * commit;
    totals.trackedMs += sign * ms;
    dayEntries[day]! += sign;
    if (options.daily && ms > 0) {
      const byTask = dayTaskMs[day]!;
      byTask.set(task, (byTask.get(task) ?? 0) + sign * ms);
    }
  };

  /** The slot of the entry's session (created when new), or undefined when it is not a sessions-source entry. */
  const sessionSlot = (entry: Entry): { slot: number; fresh: boolean } | undefined => {
    if (entry.action !== 'time-tracking') return undefined;
    const key = sessionGroup(entry.entryId);
    if (key === undefined) return undefined;
    const slot = sessionsByGroup.get(key);
    if (slot !== undefined) return { slot, fresh: false };
    const created = slots.add();
    sessionsByGroup.set(key, created);
    return { slot: created, fresh: true };
  };

  return {
    add(entry, stored = PENDING) {
      const ms = durationOf(entry);
      const session = sessionSlot(entry);
      if (session === undefined) {
        if (seen.has(entry.entryId)) {
          duplicates++;
          return;
        }
        seen.add(entry.entryId);
        locate(entry);
        if (atRow === -1) outOfRange++;
        else apply(atRow, atDay, atTask, ms, entry.action === 'commit' ? 1 : 0, 1);
        return;
      }
      const { slot, fresh } = session;
      if (!fresh && entry.entryId === slots.ids[slot]) {
        duplicates++;
        return;
      }
      sessionEntries++;
      if (!fresh) {
        const at = slots.at[slot]!;
        const later = stored.at > at || (stored.at === at && (stored.container === slots.container[slot] || ms > slots.ms[slot]!));
        if (!later) return; // an earlier import: superseded
        // A later import of a session counted already: take the earlier one out.
        if (slots.row[slot] === -1) outOfRange--;
        else apply(slots.row[slot]!, slots.day[slot]!, slots.task[slot]!, slots.ms[slot]!, 0, -1);
      }
      locate(entry);
      slots.ids[slot] = entry.entryId;
      slots.ms[slot] = ms;
      slots.row[slot] = atRow;
      slots.day[slot] = atDay;
      slots.task[slot] = atTask;
      slots.at[slot] = stored.at;
      slots.container[slot] = stored.container;
      if (atRow === -1) outOfRange++;
      else apply(atRow, atDay, atTask, ms, 0, 1);
    },
    finish() {
      const counted = days.filter((_, i) => dayEntries[i]! > 0).sort();
      const firstDay = counted[0] ?? null;
      const lastDay = counted[counted.length - 1] ?? null;
      const summary: ReportSummary = {
        rows: rows.filter((r) => r.entries > 0).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
        totals,
        firstDay,
        lastDay,
        supersededSessions: sessionEntries - slots.size,
        outOfRange,
        duplicates,
      };
      if (options.daily) {
        const daily = new Map<string, Map<string, number>>();
        days.forEach((day, d) => daily.set(day, new Map([...dayTaskMs[d]!].map(([t, ms]) => [tasks[t]!, ms]))));
        summary.daily = dailyChart(daily, firstDay, lastDay);
      }
      return summary;
    },
  };
}

function dailyChart(daily: Map<string, Map<string, number>>, firstDay: string | null, lastDay: string | null): DailyChart {
  if (firstDay === null || lastDay === null) return { days: [], tasks: [] };
  const days = daysBetween(firstDay, lastDay);
  const totalByTask = new Map<string, number>();
  for (const tasks of daily.values()) for (const [task, ms] of tasks) totalByTask.set(task, (totalByTask.get(task) ?? 0) + ms);
  const ranked = [...totalByTask].filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([task]) => task);
  const shown = ranked.length > MAX_CHART_TASKS + 1 ? ranked.slice(0, MAX_CHART_TASKS) : ranked;
  const series = new Map(shown.map((task) => [task, days.map(() => 0)]));
  const other = shown.length < ranked.length ? days.map(() => 0) : undefined;
  days.forEach((day, d) => {
    for (const [task, ms] of daily.get(day) ?? []) {
      if (ms === 0) continue; // a session's earlier import, taken out again
      const target = series.get(task) ?? other!;
      target[d]! += ms;
    }
  });
  const tasks = [...series].map(([task, trackedMs]) => ({ task, trackedMs }));
  if (other) tasks.push({ task: OTHER_TASKS, trackedMs: other });
  return { days, tasks };
}
