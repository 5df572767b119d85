/**
 * `npm run torture -- --minutes=N [--concurrency=50]`: the crash-torture harness for as long
 * as asked, printing its figures as JSON. Exits 1 when any acknowledged entry was lost or any
 * entry was stored twice.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runTorture } from '../helpers/torture.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '50' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log('Usage: npm run torture -- [--minutes=N] [--concurrency=50]');
  process.exit(0);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ff-torture-'));
fs.mkdirSync(path.join(dir, '.git'));
fs.writeFileSync(path.join(dir, 'flowforge.config.json'), JSON.stringify({ batchSize: 5, maxAge: 200 }));
const report = await runTorture({
  dir,
  concurrency: Number(values.concurrency),
  durationMs: Number(values.minutes) * 60_000,
  killProbability: 0.3,
  crashProbability: 0.02, faultProbability: 0.5,
  maxKillDelayMs: 400,
});
console.log(JSON.stringify({ dataRoot: path.join(dir, '.flowforge'), ...report, lost: report.lost.length, duplicated: report.duplicated.length, lostIds: report.lost.slice(0, 20), duplicatedIds: report.duplicated.slice(0, 20) }, null, 2));
process.exitCode = report.lost.length === 0 && report.duplicated.length === 0 && report.finalPending === 0 ? 0 : 1;
