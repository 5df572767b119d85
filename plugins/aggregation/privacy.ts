/**
 * `privacy.anonymizeUsers` (SPEC §9, issue 6 item 4): user ids are replaced by a keyed hash
 * before anything is validated, written or synced — `u_` + the first 24 hex digits of
 * HMAC-SHA-256(secret, userId). The secret is per data root: 32 random bytes, hex, in
 * `<data root>/secret.key` (0600), created once (exclusive create, so two first callers cannot
 * pick different secrets) and never printed. Entry ids derived later use the pseudonym, so the
 * clear id is not recoverable from them either.
 */
import { createHmac, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import { assertOwnDataRoot } from './aggregator.js';
import { normalizeKey } from './entry.js';

export const SECRET_FILE = 'secret.key';

/** The data root's secret, created on first use. Throws the port's error when it cannot be read or made. */
export function loadOrCreateSecret(ctx: HandlerContext): string {
  assertOwnDataRoot(ctx);
  const file = path.join(ctx.dataRoot, SECRET_FILE);
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const secret = ctx.fs.readFile(file).toString('utf8').trim();
      if (/^[0-9a-f]{64}$/.test(secret)) return secret;
      // Another process is between its exclusive create and its write: read again shortly.
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      ctx.fs.mkdirp(ctx.dataRoot);
      try {
        ctx.fs.createExclusive(file, randomBytes(32).toString('hex') + '\n');
        ctx.fs.fsyncDir(ctx.dataRoot);
      } catch (createError) {
        if ((createError as NodeJS.ErrnoException).code !== 'EEXIST') throw createError;
      }
      continue;
    }
    const until = Date.now() + 5;
    while (Date.now() < until) {
      /* a few ms for the other writer */
    }
  }
  throw new Error(`${file} does not hold a valid secret (64 hex digits); move it away to create a new one`);
}

/** What {@link pseudonym} returns: `u_` + 24 hex digits. */
export const PSEUDONYM_PATTERN = /^u_[0-9a-f]{24}$/;

/** The pseudonym of `userId` under `secret`. */
export function pseudonym(secret: string, userId: string): string {
  return 'u_' + createHmac('sha256', secret).update(userId).digest('hex').slice(0, 24);
}

/** A session entry id names the user's folder (`session:<folder>:<id>:<duration>`, sources/sessions.ts). */
const SESSION_ID = /^session:([^:]+):(.*)$/s;

/**
 * Replaces the string `userId` of every raw entry object by its pseudonym, and the user folder
 * named in a session entry id (`session:<folder>:…`, usually the user's name) by the folder's
 * pseudonym, so neither reaches the disk or a sync ref. Other values are left for validation to
 * report. Returns new objects; the input is not changed.
 */
export function anonymizeRaw(raw: unknown[], secret: string): unknown[] {
  return raw.map((item) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
    const entry = item as Record<string, unknown>;
    let out = entry;
    if (typeof entry.userId === 'string' && entry.userId !== '') out = { ...out, userId: pseudonym(secret, entry.userId) };
    const session = typeof entry.entryId === 'string' ? SESSION_ID.exec(entry.entryId) : null;
    if (session && !PSEUDONYM_PATTERN.test(session[1]!)) out = { ...out, entryId: `session:${pseudonym(secret, session[1]!)}:${session[2]}` };
    return out;
  });
}

/** `aggregated/privacy.json`: the privacy settings entries were last stored under. */
export const PRIVACY_SETTINGS_FILE = 'privacy.json';

/**
 * Compares the privacy settings of this call with those entries were last stored under
 * (`<data root>/aggregated/privacy.json`) and records the current ones. Derived entry ids and
 * session ids depend on them (a pseudonym instead of a name, a redacted value), so after a
 * change the same activity imported again gets a new id and is stored a second time. Returns
 * the warning to show when they changed, else undefined. Never throws: the check is advisory.
 */
export function checkPrivacySettings(ctx: HandlerContext): string | undefined {
  const file = path.join(ctx.dataRoot, 'aggregated', PRIVACY_SETTINGS_FILE);
  const current = { anonymizeUsers: ctx.config.privacy.anonymizeUsers, redactKeys: [...new Set(ctx.config.privacy.redactKeys.map(normalizeKey))].sort() };
  const text = JSON.stringify(current);
  try {
    let before: typeof current | undefined;
    try {
      before = JSON.parse(ctx.fs.readFile(file).toString('utf8')) as typeof current;
    } catch {
      before = undefined;
    }
    if (before && JSON.stringify(before) === text) return undefined;
    ctx.fs.mkdirp(path.dirname(file));
    ctx.fs.writeFileDurable(file, text);
    if (!before) return undefined;
    const changes: string[] = [];
    if (before.anonymizeUsers !== current.anonymizeUsers) changes.push(`privacy.anonymizeUsers ${before.anonymizeUsers} → ${current.anonymizeUsers}`);
    if (JSON.stringify(before.redactKeys) !== JSON.stringify(current.redactKeys)) changes.push(`privacy.redactKeys [${before.redactKeys}] → [${current.redactKeys}]`);
    const warning = `Privacy settings changed since entries were last stored (${changes.join('; ')}): derived entry ids depend on them, so activity imported again from now on (sessions, files) gets new ids and is stored a second time, and reports count it twice. Import only new activity, or restore the earlier settings for re-imports.`;
    ctx.log.warn('privacy settings changed', { changes });
    return warning;
  } catch (error) {
    ctx.log.warn('privacy settings could not be checked', { error: String(error) });
    return undefined;
  }
}
