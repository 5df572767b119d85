/**
 * Bounded crash torture inside `npm test` (issue 4): 50 concurrent processes per wave for about
 * 20 s, with SIGKILLs from outside and at random durable steps from inside. The long run is
 * `npm run torture -- --minutes=N`.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/store.js';
import { runTorture } from '../helpers/torture.js';

test('50 concurrent processes killed at random instants: every acknowledged entry stored exactly once', async (t) => {
  t.timeout(180_000);
  const dir = tempDir(t, 'ff-torture-');
  fs.mkdirSync(path.join(dir, '.git'));
  fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 5, maxAge: 200 }));
  const report = await runTorture({ dir, concurrency: 50, durationMs: 20_000, killProbability: 0.3, crashProbability: 0.02, faultProbability: 0.5, maxKillDelayMs: 400 });
  t.log(JSON.stringify({ ...report, lost: report.lost.length, duplicated: report.duplicated.length }));
  if (report.lost.length > 0 || report.duplicated.length > 0) {
    // Keep the evidence: the data root is copied out before the temp folder is removed.
    const keep = fs.mkdtempSync(path.join(path.dirname(dir), 'ff-torture-failure-'));
    fs.cpSync(path.join(dir, '.flowforge'), keep, { recursive: true });
    t.log(`data root kept at ${keep}`);
  }
  t.true(report.processes >= 50);
  t.true(report.killed > 0, 'some processes were killed');
  t.true(report.acknowledged > 0, 'some entries were acknowledged');
  t.deepEqual(report.lost, []);
  t.deepEqual(report.duplicated, []);
  t.is(report.finalPending, 0);
  const validate = runCli(['aggregate-validate'], { cwd: dir });
  // Expected debris of killed writers: quarantined torn records (temp files are only notes).
  const problems = (validate.json?.error?.details ?? []).filter(
    (d: { path: string; message: string }) => !d.path.startsWith('aggregated/recovery/errors/'),
  );
  t.deepEqual(problems, [], 'validate finds nothing wrong beyond the debris of killed writers');
});
