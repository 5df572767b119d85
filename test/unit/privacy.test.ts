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
