/**
 * The arithmetic of `aggregate-report`: entries in (each entry id once — the reader dedupes),
 * rows out. Pure: no disk, no clock.
 *
 * Rules (README "Reports"):
 * - `entries` counts entries, `commits` counts entries with action `commit`, `trackedMs` sums
 *   `metadata.duration` (milliseconds, any action) of the entries counted.
 * - A work session is counted once: the `time-tracking` entries of one session — same `userId`
 *   and `metadata.sessionId`, or, for a session file entry without a session id, the same
 *   `session:<user folder>:start-<ms>` id stem — collapse to the one with the longest duration.
 *   The sessions source stores a session again when its duration grew (its id ends with the
 *   duration, see sources/sessions.ts), and FlowForge sessions only grow, so the longest is the
 *   latest.
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
  /** Session entries not counted because a longer entry of the same session was. */
  supersededSessions: number;
  /** Entries outside `--since`/`--until`. */
  outOfRange: number;
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

export interface ReportAccumulator {
  /** Adds one entry; call once per entry id. */
  add(entry: Entry): void;
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

/** The session an entry belongs to, or undefined when it is not a session entry. */
function sessionKey(entry: Entry): string | undefined {
  if (entry.action !== 'time-tracking') return undefined;
  const sessionId = entry.metadata?.sessionId;
  if (typeof sessionId === 'string') return `s\u0000${entry.userId}\u0000${sessionId}`;
  // A session file entry without a session id: `session:<user folder>:start-<ms>:<duration ms>`.
  const m = /^(session:.+:start-\d+):\d+$/.exec(entry.entryId);
  return m ? `i\u0000${m[1]!}` : undefined;
}

/** Creates an accumulator for one report (see the module comment for the rules). */
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

  const rows = new Map<string, ReportRow>();
  const totals: ReportTotals = { entries: 0, commits: 0, trackedMs: 0 };
  const sessions = new Map<string, Entry>();
  const daily = new Map<string, Map<string, number>>();
  let sessionEntries = 0;
  let outOfRange = 0;
  let firstDay: string | null = null;
  let lastDay: string | null = null;

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

  const count = (entry: Entry): void => {
    const day = zoneOf(entry).dayOf(entry.timestamp);
    if (!withinBounds(entry.timestamp, day, options.since, options.until)) {
      outOfRange++;
      return;
    }
    const key = keyOf(entry, day);
    let row = rows.get(key);
    if (!row) rows.set(key, (row = { key, entries: 0, commits: 0, trackedMs: 0 }));
    const ms = durationOf(entry);
    const commit = entry.action === 'commit' ? 1 : 0;
    row.entries++;
    row.commits += commit;
    row.trackedMs += ms;
    totals.entries++;
    totals.commits += commit;
    totals.trackedMs += ms;
    if (firstDay === null || day < firstDay) firstDay = day;
    if (lastDay === null || day > lastDay) lastDay = day;
    if (options.daily) {
      let tasks = daily.get(day);
      if (!tasks) daily.set(day, (tasks = new Map()));
      if (ms > 0) {
        const taskId = text(entry.metadata?.taskId);
        const task = taskId === undefined ? NO_VALUE : taskRedacted ? REDACTED : taskId;
        tasks.set(task, (tasks.get(task) ?? 0) + ms);
      }
    }
  };

  return {
    add(entry) {
      const session = sessionKey(entry);
      if (session === undefined) return count(entry);
      sessionEntries++;
      const kept = sessions.get(session);
      if (!kept || durationOf(entry) > durationOf(kept)) sessions.set(session, entry);
    },
    finish() {
      for (const entry of sessions.values()) count(entry);
      const summary: ReportSummary = {
        rows: [...rows.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)),
        totals,
        firstDay,
        lastDay,
        supersededSessions: sessionEntries - sessions.size,
        outOfRange,
      };
      if (options.daily) summary.daily = dailyChart(daily, firstDay, lastDay);
      return summary;
    },
  };
}

function dailyChart(daily: Map<string, Map<string, number>>, firstDay: string | null, lastDay: string | null): DailyChart {
  if (firstDay === null || lastDay === null) return { days: [], tasks: [] };
  const days = daysBetween(firstDay, lastDay);
  const totalByTask = new Map<string, number>();
  for (const tasks of daily.values()) for (const [task, ms] of tasks) totalByTask.set(task, (totalByTask.get(task) ?? 0) + ms);
  const ranked = [...totalByTask].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([task]) => task);
  const shown = ranked.length > MAX_CHART_TASKS + 1 ? ranked.slice(0, MAX_CHART_TASKS) : ranked;
  const series = new Map(shown.map((task) => [task, days.map(() => 0)]));
  const other = shown.length < ranked.length ? days.map(() => 0) : undefined;
  days.forEach((day, d) => {
    for (const [task, ms] of daily.get(day) ?? []) {
      const target = series.get(task) ?? other!;
      target[d]! += ms;
    }
  });
  const tasks = [...series].map(([task, trackedMs]) => ({ task, trackedMs }));
  if (other) tasks.push({ task: OTHER_TASKS, trackedMs: other });
  return { days, tasks };
}
