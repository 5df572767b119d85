import test from 'ava';
import { anonymizeRaw, pseudonym } from '../../plugins/aggregation/privacy.js';

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
