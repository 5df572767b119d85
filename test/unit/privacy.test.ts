import test from 'ava';
import { createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../src/core/errors.js';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { deriveEntryId } from '../../plugins/aggregation/entry.js';
import { anonymizeRaw, loadOrCreateSecret, pseudonym, pseudonymizeStoredEntry, pseudonymKeyId, SECRET_FILE } from '../../plugins/aggregation/privacy.js';
import { withTempStore } from '../helpers/store.js';

const secret = 'a'.repeat(64);

test('anonymizeRaw replaces userId and the user folder of a session entry id; other ids and values stay', (t) => {
  const out = anonymizeRaw(
    [
      { entryId: 'session:alice:s-1:3600000', userId: 'alice', action: 'time-tracking', timestamp: 1 },
      { entryId: 'commit:abc', userId: 'bob', action: 'commit', timestamp: 2 },
      { userId: '', action: 'x', timestamp: 3 },
      'not an object',
    ],
    secret,
  );
  t.deepEqual(out, [
    { entryId: `session:${pseudonym(secret, 'alice')}:s-1:3600000`, userId: pseudonym(secret, 'alice'), action: 'time-tracking', timestamp: 1 },
    { entryId: 'commit:abc', userId: pseudonym(secret, 'bob'), action: 'commit', timestamp: 2 },
    { userId: '', action: 'x', timestamp: 3 },
    'not an object',
  ]);
  // Applying it twice changes nothing more (an id already pseudonymized is kept).
  t.deepEqual(anonymizeRaw([{ entryId: (out[0] as { entryId: string }).entryId }], secret), [{ entryId: (out[0] as { entryId: string }).entryId }]);
  t.regex(pseudonym(secret, 'alice'), /^u_[0-9a-f]{24}$/);
});

test('aggregate warns once when the privacy settings changed since entries were last stored', async (t) => {
  const { aggregate } = await import('../../plugins/aggregation/handlers/aggregate.js');
  const { withTempStore, rawEntry } = await import('../helpers/store.js');
  const s = withTempStore(t);
  const now = s.clock.now() - 1000;
  const first = await aggregate.run({ entry: [JSON.stringify(rawEntry(1, now))], source: [] }, s.ctx);
  t.is(first.warnings, undefined);
  s.ctx.config = { ...s.ctx.config, privacy: { anonymizeUsers: true, redactKeys: [...s.ctx.config.privacy.redactKeys, 'code'] } };
  const second = await aggregate.run({ entry: [JSON.stringify(rawEntry(2, now))], source: [] }, s.ctx);
  t.is(second.warnings?.length, 1);
  t.regex(second.warnings![0]!, /^Privacy settings changed since entries were last stored \(privacy\.anonymizeUsers false → true; privacy\.redactKeys \[.*\] → \[.*code.*\]\): derived entry ids depend on them/);
  const third = await aggregate.run({ entry: [JSON.stringify(rawEntry(3, now))], source: [] }, s.ctx);
  t.is(third.warnings, undefined);
});

/** Stores one entry without entryId for alice@example.com in the data root of `s` and returns the batch's entries. */
async function storeAlice(s: ReturnType<typeof withTempStore>): Promise<Array<{ entryId: string; userId: string }>> {
  const entry = { userId: 'alice@example.com', action: 'review', timestamp: s.clock.now() - 60_000, metadata: { duration: 1_800_000 } };
  await aggregate.run({ entry: [JSON.stringify(entry)], source: [] }, s.ctx);
  await aggregateForce.run({}, s.ctx);
  return s.batches().flatMap((b) => b.entries) as Array<{ entryId: string; userId: string }>;
}

test('FLOWFORGE_PSEUDONYM_KEY: two data roots with the same key store the same pseudonym and derived id; no secret.key is made', async (t) => {
  const key = '0123456789abcdef'.repeat(4);
  const expected = 'u_' + createHmac('sha256', key).update('alice@example.com').digest('hex').slice(0, 24);
  const [one, two] = [withTempStore(t, { privacy: { anonymizeUsers: true } }), withTempStore(t, { privacy: { anonymizeUsers: true } })];
  one.ctx.env = { FLOWFORGE_PSEUDONYM_KEY: key };
  // Upper case and a trailing newline (a key read from a file) name the same key.
  two.ctx.env = { FLOWFORGE_PSEUDONYM_KEY: `${key.toUpperCase()}\n` };
  const [a, b] = [await storeAlice(one), await storeAlice(two)];
  t.is(a.length, 1);
  t.is(a[0]!.userId, expected);
  t.deepEqual(b, a, 'same pseudonym, same derived entry id: a team report counts the entry once');
  t.regex(a[0]!.entryId, /^e_[0-9a-f]{32}$/);
  t.false(fs.existsSync(path.join(one.dataRoot, SECRET_FILE)));
  t.false(fs.existsSync(path.join(two.dataRoot, SECRET_FILE)));
  t.is(loadOrCreateSecret(one.ctx), key);
});

test('without FLOWFORGE_PSEUDONYM_KEY each data root has its own secret.key, so the same user gets one pseudonym per clone', async (t) => {
  const [one, two] = [withTempStore(t, { privacy: { anonymizeUsers: true } }), withTempStore(t, { privacy: { anonymizeUsers: true } })];
  const [a, b] = [await storeAlice(one), await storeAlice(two)];
  t.is(a[0]!.userId, pseudonym(fs.readFileSync(path.join(one.dataRoot, SECRET_FILE), 'utf8').trim(), 'alice@example.com'));
  t.is(b[0]!.userId, pseudonym(fs.readFileSync(path.join(two.dataRoot, SECRET_FILE), 'utf8').trim(), 'alice@example.com'));
  t.not(a[0]!.userId, b[0]!.userId);
});

test('an invalid FLOWFORGE_PSEUDONYM_KEY is a config error (exit 2) naming the variable, never its value; nothing is stored', async (t) => {
  for (const value of ['', 'abc123', 'g'.repeat(64), '0'.repeat(63), '0'.repeat(65)]) {
    const s = withTempStore(t, { privacy: { anonymizeUsers: true } });
    s.ctx.env = { FLOWFORGE_PSEUDONYM_KEY: value };
    const error = await t.throwsAsync(storeAlice(s), { instanceOf: ConfigError });
    t.is(error!.exitCode, 2);
    t.is(error!.code, 'E_CONFIG');
    t.is(
      error!.message,
      'FLOWFORGE_PSEUDONYM_KEY is set but is not a pseudonym key: it must be 64 hex digits (32 bytes, e.g. from openssl rand -hex 32); its value is not shown. Fix or unset it.',
    );
    t.deepEqual(error!.details, [{ path: 'FLOWFORGE_PSEUDONYM_KEY', message: 'must be 64 hex digits (32 bytes, e.g. from openssl rand -hex 32); its value is not shown' }]);
    t.deepEqual(s.batches(), []);
    t.false(fs.existsSync(path.join(s.dataRoot, SECRET_FILE)), value);
  }
  // With anonymizeUsers off the key is not used, so it is not checked either.
  const off = withTempStore(t);
  off.ctx.env = { FLOWFORGE_PSEUDONYM_KEY: 'abc123' };
  t.is((await storeAlice(off))[0]!.userId, 'alice@example.com');
});

test('pseudonymizeStoredEntry re-derives a derived id from the pseudonym, keeps given ids, and leaves an anonymized entry alone', (t) => {
  const clear = { userId: 'alice', action: 'review', timestamp: 1_768_469_400_000, metadata: { duration: 60_000 } };
  const stored = { entryId: deriveEntryId(clear), ...clear };
  const out = pseudonymizeStoredEntry(stored, secret);
  t.deepEqual(out, { entryId: deriveEntryId({ ...clear, userId: pseudonym(secret, 'alice') }), ...clear, userId: pseudonym(secret, 'alice') });
  t.not(out.entryId, stored.entryId);
  // Already pseudonymous: the same object back, nothing hashed twice.
  t.is(pseudonymizeStoredEntry(out, secret), out);
  // A caller's own id and a commit id name no user and stay; a session folder is replaced.
  t.is(pseudonymizeStoredEntry({ ...stored, entryId: 'ticket-42' }, secret).entryId, 'ticket-42');
  t.is(pseudonymizeStoredEntry({ ...stored, entryId: 'commit:abc' }, secret).entryId, 'commit:abc');
  t.is(pseudonymizeStoredEntry({ ...stored, entryId: 'session:alice:s-1:60000' }, secret).entryId, `session:${pseudonym(secret, 'alice')}:s-1:60000`);
});

test('a lost secret.key is refused instead of silently replaced (re-imports would be stored twice); a corrupt one is a config error; a changed shared key is warned about', async (t) => {
  const s = withTempStore(t, { privacy: { anonymizeUsers: true } });
  const now = s.clock.now() - 60_000;
  const alice = { userId: 'alice@example.com', action: 'review', timestamp: now, metadata: { duration: 1_800_000 } };
  t.like(await aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx), { accepted: 1 });
  const keyFile = path.join(s.dataRoot, SECRET_FILE);
  const key = fs.readFileSync(keyFile, 'utf8').trim();
  const recorded = JSON.parse(fs.readFileSync(path.join(s.dataRoot, 'aggregated/privacy.json'), 'utf8'));
  t.is(recorded.keyId, pseudonymKeyId(key));
  t.regex(recorded.keyId, /^k_[0-9a-f]{16}$/);
  t.false(JSON.stringify(recorded).includes(key));

  fs.renameSync(keyFile, `${keyFile}.moved`);
  const lost = await t.throwsAsync(aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx), { instanceOf: ConfigError });
  t.is(lost!.exitCode, 2);
  t.is(
    lost!.message,
    `secret.key is missing, but entries were stored pseudonymized with key ${recorded.keyId} (aggregated/privacy.json): restore secret.key from a backup, or set FLOWFORGE_PSEUDONYM_KEY if that key was a shared one. To start over with a new key anyway (a new key would give every user new pseudonyms, and activity imported again would be stored a second time), move aggregated/privacy.json away first.`,
  );
  t.false(fs.existsSync(keyFile), 'no new key was made');
  fs.renameSync(`${keyFile}.moved`, keyFile);
  t.like(await aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx), { accepted: 0, duplicates: 1 });

  fs.writeFileSync(keyFile, 'not a key\n');
  const corrupt = await t.throwsAsync(aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx), { instanceOf: ConfigError });
  t.is(corrupt!.message, 'secret.key does not hold a pseudonym key (64 hex digits; its content is not shown): restore it from a backup. To start over with a new key instead (a new key would give every user new pseudonyms, and activity imported again would be stored a second time), move both secret.key and aggregated/privacy.json away.');
  // Another valid key (a wrong backup): refused too, naming both key ids; upper-case hex is the same key.
  const other = 'f'.repeat(64);
  fs.writeFileSync(keyFile, `${other}\n`);
  const wrong = await t.throwsAsync(aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx), { instanceOf: ConfigError });
  t.is(
    wrong!.message,
    `secret.key holds key ${pseudonymKeyId(other)}, but entries were stored pseudonymized with key ${recorded.keyId} (aggregated/privacy.json): restore the secret.key they were stored with. To switch to this key anyway (a new key would give every user new pseudonyms, and activity imported again would be stored a second time), move aggregated/privacy.json away first.`,
  );
  fs.writeFileSync(keyFile, `${key.toUpperCase()}\n`);
  t.like(await aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx), { accepted: 0, duplicates: 1 });
  fs.writeFileSync(keyFile, `${key}\n`);

  // A shared key that differs from the one entries were stored under: stored (it may be on purpose), with a warning naming both key ids.
  const shared = '0123456789abcdef'.repeat(4);
  s.ctx.env = { FLOWFORGE_PSEUDONYM_KEY: shared };
  const changed = await aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx);
  t.is(changed.accepted, 1);
  t.is(changed.warnings?.length, 1);
  t.true(changed.warnings![0]!.startsWith(`Privacy settings changed since entries were last stored (pseudonym key ${pseudonymKeyId(key)} → ${pseudonymKeyId(shared)} (FLOWFORGE_PSEUDONYM_KEY or secret.key)): derived entry ids depend on them`));
  t.is((await aggregate.run({ entry: [JSON.stringify(alice)], source: [] }, s.ctx)).warnings, undefined);
});
