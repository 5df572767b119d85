/**
 * `privacy.anonymizeUsers` (SPEC §9, issue 6 item 4): user ids are replaced by a keyed hash
 * before anything is validated, written or synced — `u_` + the first 24 hex digits of
 * HMAC-SHA-256(secret, userId). The secret is the team's shared key when
 * {@link PSEUDONYM_KEY_ENV} is set (64 hex digits, given out of band), otherwise per data root:
 * 32 random bytes, hex, in `<data root>/secret.key` (0600), created once (exclusive create, so
 * two first callers cannot pick different secrets). It is never printed or logged. Entry ids
 * derived later use the pseudonym, so the clear id is not recoverable from them either.
 *
 * Pseudonyms of two clones match only under the same secret: without a shared key, a team
 * report by user shows one pseudonym per clone for the same person.
 */
import { createHmac, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { HandlerContext } from '../../src/core/context.js';
import { ConfigError } from '../../src/core/errors.js';
import { assertOwnDataRoot } from './aggregator.js';
import { deriveEntryId, normalizeKey } from './entry.js';
import type { Entry } from './types.js';

export const SECRET_FILE = 'secret.key';
/** Environment variable holding a pseudonym key shared by the team; takes precedence over `secret.key`. */
export const PSEUDONYM_KEY_ENV = 'FLOWFORGE_PSEUDONYM_KEY';

/**
 * The team's shared pseudonym key from {@link PSEUDONYM_KEY_ENV}, lower-cased (surrounding
 * whitespace ignored), or undefined when the variable is not set. Throws ConfigError (exit 2)
 * when it is set to anything but 64 hex digits — an empty value included, since a silent
 * fallback to the per-clone key would split every user into one pseudonym per clone. The
 * value is never part of the message.
 */
export function sharedPseudonymKey(env: NodeJS.ProcessEnv): string | undefined {
  const value = env[PSEUDONYM_KEY_ENV];
  if (value === undefined) return undefined;
  const key = value.trim().toLowerCase();
  if (/^[0-9a-f]{64}$/.test(key)) return key;
  const message = 'must be 64 hex digits (32 bytes, e.g. from openssl rand -hex 32); its value is not shown';
  throw new ConfigError(`${PSEUDONYM_KEY_ENV} is set but is not a pseudonym key: it ${message}. Fix or unset it.`, {
    details: [{ path: PSEUDONYM_KEY_ENV, message }],
  });
}

/**
 * A public name of a pseudonym key, recorded in `privacy.json` to notice a key that changed:
 * `k_` + 16 hex digits of HMAC-SHA-256(key, a fixed label). It tells nothing about the key
 * itself and cannot be turned into pseudonyms.
 */
export function pseudonymKeyId(secret: string): string {
  return 'k_' + createHmac('sha256', secret).update('flowforge pseudonym key id').digest('hex').slice(0, 16);
}

/** The `keyId` recorded in `aggregated/privacy.json` by an earlier call, if any. */
function recordedKeyId(ctx: HandlerContext): string | undefined {
  try {
    const doc = JSON.parse(ctx.fs.readFile(path.join(ctx.dataRoot, 'aggregated', PRIVACY_SETTINGS_FILE)).toString('utf8')) as { keyId?: unknown };
    return typeof doc.keyId === 'string' ? doc.keyId : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The pseudonym secret: {@link sharedPseudonymKey} when set, else the data root's `secret.key`,
 * created on first use — but not when `privacy.json` records that entries were already stored
 * under a key (a lost `secret.key`), and a `secret.key` holding another key than that one is
 * refused too (a wrong backup, a copied data root): a new key would give every user new
 * pseudonyms and store activity imported again a second time. Hex case does not matter.
 *
 * @throws ConfigError (exit 2) for an invalid shared key, a `secret.key` that does not hold a key,
 *   or a missing one whose key was used before (the message says how to restore or start over);
 *   the port's error when the file cannot be read or made
 */
export function loadOrCreateSecret(ctx: HandlerContext): string {
  const shared = sharedPseudonymKey(ctx.env);
  if (shared !== undefined) return shared;
  assertOwnDataRoot(ctx);
  const file = path.join(ctx.dataRoot, SECRET_FILE);
  const rel = path.relative(ctx.dataRoot, file);
  const consequence = 'a new key would give every user new pseudonyms, and activity imported again would be stored a second time';
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const secret = ctx.fs.readFile(file).toString('utf8').trim().toLowerCase();
      if (/^[0-9a-f]{64}$/.test(secret)) {
        // A valid key that is not the one entries were stored with (a wrong backup restored, a
        // data root copied from elsewhere): every re-import would be stored a second time.
        const used = recordedKeyId(ctx);
        if (used !== undefined && used !== pseudonymKeyId(secret)) {
          throw new ConfigError(
            `${rel} holds key ${pseudonymKeyId(secret)}, but entries were stored pseudonymized with key ${used} (aggregated/${PRIVACY_SETTINGS_FILE}): restore the ${rel} they were stored with. To switch to this key anyway (${consequence}), move aggregated/${PRIVACY_SETTINGS_FILE} away first.`,
            { details: [{ path: rel, message: `key ${pseudonymKeyId(secret)}; entries were stored with key ${used}` }] },
          );
        }
        return secret;
      }
      // Another process is between its exclusive create and its write: read again shortly.
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      const used = recordedKeyId(ctx);
      if (used !== undefined) {
        throw new ConfigError(
          `${rel} is missing, but entries were stored pseudonymized with key ${used} (aggregated/${PRIVACY_SETTINGS_FILE}): restore ${rel} from a backup, or set ${PSEUDONYM_KEY_ENV} if that key was a shared one. To start over with a new key anyway (${consequence}), move aggregated/${PRIVACY_SETTINGS_FILE} away first.`,
          { details: [{ path: rel, message: `missing; entries were stored with key ${used}` }] },
        );
      }
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
  throw new ConfigError(`${rel} does not hold a pseudonym key (64 hex digits; its content is not shown): restore it from a backup. To start over with a new key instead (${consequence}), move both ${rel} and aggregated/${PRIVACY_SETTINGS_FILE} away.`, {
    details: [{ path: rel, message: 'not 64 hex digits' }],
  });
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
 * change the same activity imported again gets a new id and is stored a second time. With
 * anonymizeUsers, `secret` (the pseudonym key this call used) is recorded as its
 * {@link pseudonymKeyId}, so a changed `FLOWFORGE_PSEUDONYM_KEY` is a change too (and a lost
 * `secret.key` is refused by loadOrCreateSecret). Returns the warning to show when they
 * changed, else undefined. Never throws: the check is advisory.
 */
export function checkPrivacySettings(ctx: HandlerContext, secret?: string): string | undefined {
  const file = path.join(ctx.dataRoot, 'aggregated', PRIVACY_SETTINGS_FILE);
  const current: { anonymizeUsers: boolean; redactKeys: string[]; keyId?: string } = {
    anonymizeUsers: ctx.config.privacy.anonymizeUsers,
    redactKeys: [...new Set(ctx.config.privacy.redactKeys.map(normalizeKey))].sort(),
  };
  try {
    let before: typeof current | undefined;
    try {
      before = JSON.parse(ctx.fs.readFile(file).toString('utf8')) as typeof current;
    } catch {
      before = undefined;
    }
    // The key last used stays recorded while anonymizeUsers is off, so switching it back on
    // with another key is noticed too.
    const keyId = secret !== undefined && current.anonymizeUsers ? pseudonymKeyId(secret) : before?.keyId;
    if (keyId !== undefined) current.keyId = keyId;
    const text = JSON.stringify(current);
    if (before && JSON.stringify(before) === text) return undefined;
    ctx.fs.mkdirp(path.dirname(file));
    ctx.fs.writeFileDurable(file, text);
    if (!before) return undefined;
    const changes: string[] = [];
    if (before.anonymizeUsers !== current.anonymizeUsers) changes.push(`privacy.anonymizeUsers ${before.anonymizeUsers} → ${current.anonymizeUsers}`);
    if (JSON.stringify(before.redactKeys) !== JSON.stringify(current.redactKeys)) changes.push(`privacy.redactKeys [${before.redactKeys}] → [${current.redactKeys}]`);
    if (before.keyId !== undefined && current.keyId !== before.keyId) changes.push(`pseudonym key ${before.keyId} → ${current.keyId} (${PSEUDONYM_KEY_ENV} or ${SECRET_FILE})`);
    if (changes.length === 0) return undefined; // only recorded something new (a key id)
    const warning = `Privacy settings changed since entries were last stored (${changes.join('; ')}): derived entry ids depend on them, so activity imported again from now on (sessions, files) gets new ids and is stored a second time, and reports count it twice. Import only new activity, or restore the earlier settings for re-imports.`;
    ctx.log.warn('privacy settings changed', { changes });
    return warning;
  } catch (error) {
    ctx.log.warn('privacy settings could not be checked', { error: String(error) });
    return undefined;
  }
}

/** A derived entry id as {@link deriveEntryId} makes it: `e_` + 32 hex. */
export const DERIVED_ENTRY_ID = /^e_[0-9a-f]{32}$/;

/**
 * A stored entry recorded before `privacy.anonymizeUsers` was switched on, as it would have
 * been stored with it on: a clear `userId` becomes its pseudonym; a derived entry id
 * ({@link DERIVED_ENTRY_ID}) of such an entry is derived again over the pseudonymized fields —
 * the old one is a hash of the clear user id, so hashing guessed e-mails would find it; a
 * session id's user folder (`session:<folder>:…`) becomes the folder's pseudonym, as
 * {@link anonymizeRaw} does on input. Other given ids (`commit:<sha>`, `checkout:…`, a caller's
 * own) name no user and stay. An entry with nothing clear is returned as it is (the same
 * object), so a caller can tell whether anything changed; pseudonyms are never hashed again.
 */
export function pseudonymizeStoredEntry(entry: Entry, secret: string): Entry {
  const clearUser = !PSEUDONYM_PATTERN.test(entry.userId);
  const session = SESSION_ID.exec(entry.entryId);
  const clearFolder = session !== null && !PSEUDONYM_PATTERN.test(session[1]!);
  if (!clearUser && !clearFolder) return entry;
  const userId = clearUser ? pseudonym(secret, entry.userId) : entry.userId;
  let entryId = entry.entryId;
  if (clearFolder) entryId = `session:${pseudonym(secret, session[1]!)}:${session[2]}`;
  else if (clearUser && DERIVED_ENTRY_ID.test(entryId)) entryId = deriveEntryId({ userId, action: entry.action, timestamp: entry.timestamp, metadata: entry.metadata });
  const out: Entry = { entryId, userId, action: entry.action, timestamp: entry.timestamp };
  if (entry.metadata !== undefined) out.metadata = entry.metadata;
  return out;
}
