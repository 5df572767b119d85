/**
 * Source `--source=sessions` (SPEC §4): FlowForge work sessions from the user-data files under the
 * data root, as raw `time-tracking` entries (validated later by `validateEntries`).
 *
 * Assumed file format — `<dataRoot>/user/<userDir>/time.json`, FlowForge user-data schema v2.0
 * (only the fields below are read; everything else is ignored):
 *
 * ```jsonc
 * {
 *   "userId": "alice",                    // optional; fallback user for the sessions
 *   "sessions": [Session, …],             // and/or:
 *   "timeTracking": { "sessions": [Session, …] }
 * }
 * // Session:
 * {
 *   "id" | "sessionId": "s-1",            // string or number; see "ids" below
 *   "startTime" | "start": TIME,
 *   "endTime" | "end": TIME | null,       // absent or null: still running → skipped
 *   "duration": 3600,                     // SECONDS; used only when start or end is missing
 *   "taskId" | "task": "214" | 214,       // optional
 *   "userId" | "user": "alice"            // optional
 * }
 * // TIME: an ISO-8601 string with a UTC offset or Z ("2025-08-29T12:46:03.000Z"), epoch
 * // seconds (a number below 1e11) or epoch milliseconds; numeric strings count as numbers.
 * ```
 *
 * Decisions:
 * - ids: `session:<userDir>:<session id>:<duration ms>`, so re-reading the same files adds
 *   nothing (SPEC §4), and a session whose duration changed since the last import (FlowForge
 *   updates a session in place: it grows while it runs, and a user may correct it, e.g. a
 *   forgotten timer cut from 2 h to 30 min) is stored again under a new id instead of being
 *   dropped as a duplicate. Reports group these re-imports by the id without its last
 *   `:<duration ms>` and count the latest one stored (report/summarize.ts). A session without an
 *   id gets `session:<userDir>:start-<start ms>:<duration ms>`. A session listed in both arrays
 *   is produced once.
 * - Stores written before this id format hold `session:<userDir>:<session id>`: the first import
 *   after the upgrade stores each completed session once more under the new id; reports still
 *   count it once (the old id is the group key of the new one).
 * - userId: the session's `userId`/`user`, else the file's `userId`, else the directory name.
 * - errors: a file that is not JSON, or a completed session whose times are unreadable or whose
 *   end precedes its start, rejects the whole call with an InputError (exit 2, nothing
 *   accepted — the same rule as for invalid entries, SPEC §4); `details` lists every problem,
 *   path `user/<userDir>/time.json: sessions[3].startTime`. A missing `time.json` is skipped.
 */
import * as path from 'node:path';
import { InputError, IoError, type ErrorDetail } from '../../../src/core/errors.js';
import type { FsPort } from '../../../src/core/fs-port.js';
import type { RawSourceEntry } from './git-commit.js';

type Json = Record<string, unknown>;

const ISO_WITH_OFFSET = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * Epoch milliseconds from a session time: ISO-8601 with offset, epoch seconds (< 1e11) or epoch
 * milliseconds (number or numeric string). undefined when absent (undefined/null/""); NaN when
 * present but unreadable. Pure; exported for tests.
 */
export function parseSessionTime(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let n: number;
  if (typeof value === 'number') {
    n = value;
  } else if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) {
    n = Number(value);
  } else if (typeof value === 'string') {
    const m = ISO_WITH_OFFSET.exec(value.trim());
    if (!m) return Number.NaN;
    const offset = m[2]!.toUpperCase() === 'Z' ? 'Z' : m[2]!.replace(/^([+-]\d{2}):?(\d{2})$/, '$1:$2');
    return Date.parse(`${m[1]!}${offset}`);
  } else {
    return Number.NaN;
  }
  if (!Number.isFinite(n)) return Number.NaN;
  return Math.round(Math.abs(n) < 1e11 ? n * 1000 : n);
}

function pick(obj: Json, ...keys: string[]): unknown {
  for (const key of keys) if (obj[key] !== undefined && obj[key] !== null) return obj[key];
  return undefined;
}

function asText(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Raw `time-tracking` entries for every completed session in `<dataRoot>/user/* /time.json`:
 * `{ entryId: "session:<userDir>:<id>:<duration ms>", userId, action: "time-tracking", timestamp: start
 * (epoch ms), metadata: { sessionId, taskId?, duration } }` with `duration` in milliseconds:
 * end − start when both are present, else the file's `duration` (seconds) × 1000.
 * Order: user directories by name, then sessions in file order.
 * Throws InputError (see module comment) and IoError when a file exists but cannot be read.
 */
export function entriesFromSessions(dataRoot: string, fsPort: FsPort): RawSourceEntry[] {
  const userRoot = path.join(dataRoot, 'user');
  const entries: RawSourceEntry[] = [];
  const problems: ErrorDetail[] = [];
  const seen = new Set<string>();
  const userDirs = fsPort
    .readdir(userRoot)
    .filter((name) => !name.startsWith('.'))
    .sort();
  for (const userDir of userDirs) {
    const file = path.join(userRoot, userDir, 'time.json');
    const rel = `user/${userDir}/time.json`;
    if (!fsPort.stat(path.join(userRoot, userDir))?.isDirectory()) continue;
    let text: string;
    try {
      text = fsPort.readFile(file).toString('utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new IoError(`Cannot read session file ${file}: ${(error as Error).message}`, { cause: error });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (error) {
      problems.push({ path: rel, message: `not valid JSON (${(error as Error).message})` });
      continue;
    }
    if (!isObject(doc)) {
      problems.push({ path: rel, message: 'expected a JSON object' });
      continue;
    }
    const lists: Array<[string, unknown]> = [['sessions', doc.sessions]];
    if (isObject(doc.timeTracking)) lists.push(['timeTracking.sessions', doc.timeTracking.sessions]);
    else if (doc.timeTracking !== undefined && doc.timeTracking !== null) problems.push({ path: `${rel}: timeTracking`, message: 'expected an object' });
    const fileUser = asText(doc.userId);
    for (const [listPath, list] of lists) {
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) {
        problems.push({ path: `${rel}: ${listPath}`, message: 'expected an array of sessions' });
        continue;
      }
      list.forEach((session: unknown, index) => {
        const at = `${rel}: ${listPath}[${index}]`;
        if (!isObject(session)) {
          problems.push({ path: at, message: 'expected a session object' });
          return;
        }
        const entry = sessionEntry(session, userDir, fileUser, at, problems);
        if (entry && !seen.has(entry.entryId)) {
          seen.add(entry.entryId);
          entries.push(entry);
        }
      });
    }
  }
  if (problems.length > 0) {
    throw new InputError(`${problems.length} problem(s) in FlowForge session files under ${userRoot}; nothing was accepted`, {
      details: problems,
    });
  }
  return entries;
}

function sessionEntry(session: Json, userDir: string, fileUser: string | undefined, at: string, problems: ErrorDetail[]): RawSourceEntry | undefined {
  const endKey = session.endTime !== undefined ? 'endTime' : 'end';
  const end = parseSessionTime(pick(session, 'endTime', 'end'));
  if (end === undefined) return undefined; // still running
  const startKey = session.startTime !== undefined ? 'startTime' : 'start';
  let start = parseSessionTime(pick(session, 'startTime', 'start'));
  const durationRaw = session.duration;
  const durationSeconds = typeof durationRaw === 'number' ? durationRaw : typeof durationRaw === 'string' && durationRaw.trim() !== '' ? Number(durationRaw) : undefined;
  const before = problems.length;
  if (Number.isNaN(end)) problems.push({ path: `${at}.${endKey}`, message: 'unreadable time (ISO-8601 with offset, epoch s or epoch ms)', value: pick(session, 'endTime', 'end') });
  if (start !== undefined && Number.isNaN(start)) problems.push({ path: `${at}.${startKey}`, message: 'unreadable time (ISO-8601 with offset, epoch s or epoch ms)', value: pick(session, 'startTime', 'start') });
  if (durationSeconds !== undefined && !(Number.isFinite(durationSeconds) && durationSeconds >= 0)) {
    problems.push({ path: `${at}.duration`, message: 'expected a non-negative number of seconds', value: durationRaw });
  }
  if (problems.length > before) return undefined;

  let duration: number;
  if (start !== undefined) {
    duration = end - start;
    if (duration < 0) {
      problems.push({ path: at, message: `end (${new Date(end).toISOString()}) is before start (${new Date(start).toISOString()})` });
      return undefined;
    }
  } else if (durationSeconds !== undefined) {
    duration = Math.round(durationSeconds * 1000);
    start = end - duration;
  } else {
    problems.push({ path: `${at}.startTime`, message: 'a completed session needs a start time or a duration' });
    return undefined;
  }

  const sessionId = asText(pick(session, 'id', 'sessionId'));
  const userId = asText(pick(session, 'userId', 'user')) ?? fileUser ?? userDir;
  const metadata: Record<string, unknown> = {};
  if (sessionId !== undefined) metadata.sessionId = sessionId;
  const taskId = asText(pick(session, 'taskId', 'task'));
  if (taskId !== undefined) metadata.taskId = taskId;
  metadata.duration = duration;
  return {
    entryId: `${sessionId !== undefined ? `session:${userDir}:${sessionId}` : `session:${userDir}:start-${start}`}:${duration}`,
    userId,
    action: 'time-tracking',
    timestamp: start,
    metadata,
  };
}
