/**
 * A file-system fault at every step of a flush and of a recovery pass (issue 3 item 8): for
 * each mutating call k, the k-th call fails (ENOSPC, EIO, EACCES, a short write, a failing
 * rename); then a clean recovery pass and forced flush run; every accepted entry must be in
 * exactly one place — a batch file, a failed or abandoned batch — and nowhere twice.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { aggregate } from '../../plugins/aggregation/handlers/aggregate.js';
import { aggregateForce } from '../../plugins/aggregation/handlers/aggregate-force.js';
import { aggregateRecover } from '../../plugins/aggregation/handlers/aggregate-recover.js';
import { createNodeFsPort, type FsPort } from '../../src/core/fs-port.js';
import { storedIds } from '../helpers/torture.js';
import { createFaultyFsPort, rawEntry, withTempStore } from '../helpers/store.js';

const MUTATING = new Set<keyof FsPort>(['writeAll', 'fsync', 'writeFileDurable', 'renameDurable', 'removeDurable', 'fsyncDir', 'mkdirp']);
type Fault = 'ENOSPC' | 'EIO' | 'EACCES' | 'short-write' | 'rename';

/** A port whose k-th mutating call fails with `fault` (a short write writes half, then EIO). */
function failAt(k: number, fault: Fault): { port: FsPort; fired: () => boolean } {
  const real = createNodeFsPort();
  let n = 0;
  let fired = false;
  const port = createFaultyFsPort((op) => {
    if (!MUTATING.has(op)) return undefined;
    if (fault === 'rename' && op !== 'renameDurable' && op !== 'writeFileDurable') return undefined;
    n++;
    if (n !== k) return undefined;
    fired = true;
    return fault === 'short-write' || fault === 'rename' ? undefined : fault;
  });
  if (fault === 'short-write' || fault === 'rename') {
    const wrapped = { ...port };
    let m = 0;
    const hit = () => ++m === k;
    wrapped.writeAll = (fd, data) => {
      if (hit()) {
        fired = true;
        real.writeAll(fd, data.subarray(0, Math.floor(data.length / 2)));
        throw Object.assign(new Error('EIO: short write'), { code: 'EIO' });
      }
      return real.writeAll(fd, data);
    };
    wrapped.writeFileDurable = (file, data) => {
      if (fault === 'rename' ? hit() : false) {
        fired = true;
        throw Object.assign(new Error(`EXDEV: rename failed for ${file}`), { code: 'EXDEV', path: file });
      }
      return real.writeFileDurable(file, data);
    };
    wrapped.renameDurable = (from, to) => {
      if (fault === 'rename' && hit()) {
        fired = true;
        throw Object.assign(new Error(`EXDEV: rename failed for ${to}`), { code: 'EXDEV', path: to });
      }
      return real.renameDurable(from, to);
    };
    if (fault === 'short-write') {
      wrapped.writeFileDurable = real.writeFileDurable;
      wrapped.renameDurable = real.renameDurable;
    }
    return { port: wrapped, fired: () => fired };
  }
  return { port, fired: () => fired };
}

async function settle(s: ReturnType<typeof withTempStore>) {
  s.setFs(createNodeFsPort());
  s.clock.advance(10 * 3_600_000); // every failed batch is due
  await aggregateRecover.run({}, s.ctx);
  const force = await aggregateForce.run({}, s.ctx);
  return force.pending;
}

for (const fault of ['ENOSPC', 'EIO', 'EACCES', 'short-write', 'rename'] as const) {
  test(`${fault} at every step of a flush: every accepted entry ends in exactly one place`, async (t) => {
    let steps = 0;
    for (let k = 1; k < 60; k++) {
      const s = withTempStore(t, { batchSize: 3, flushThreshold: 1 });
      const ids = [1, 2, 3, 4, 5, 6, 7];
      const accepted = await aggregate.run({ entry: [JSON.stringify(ids.map((i) => rawEntry(i, s.clock.now() - 1)))], source: [] }, s.ctx);
      t.is(accepted.accepted, 7);
      const { port, fired } = failAt(k, fault);
      s.setFs(port);
      await aggregateForce.run({}, s.ctx).catch(() => undefined);
      if (!fired()) break; // k is past the last step
      steps++;
      t.is(await settle(s), 0, `k=${k}: nothing left pending`);
      const counts = storedIds(s.dataRoot).counts;
      for (const i of ids) t.is(counts.get(`id-${i}`), 1, `k=${k}: id-${i} stored exactly once`);
      t.is(counts.size, 7, `k=${k}: nothing else stored`);
    }
    t.true(steps >= (fault === "short-write" || fault === "rename" ? 2 : 5), `faults were injected at ${steps} steps`);
  });
}

test('a fault at every step of a recovery pass: the parked entries end in exactly one place', async (t) => {
  let steps = 0;
  for (let k = 1; k < 40; k++) {
    const s = withTempStore(t, { batchSize: 2 });
    s.setFs(createFaultyFsPort((op, args) => (op === 'writeFileDurable' && /aggregated\/batch_[^/]+\.json$/.test(String(args[0])) ? 'ENOSPC' : undefined)));
    await aggregate.run({ entry: [JSON.stringify([rawEntry(1, s.clock.now() - 1), rawEntry(2, s.clock.now() - 1)])], source: [] }, s.ctx);
    t.is(fs.readdirSync(path.join(s.dataRoot, 'aggregated/recovery')).filter((n) => n.endsWith('.failed.json')).length, 1);
    const { port, fired } = failAt(k, 'EIO');
    s.setFs(port);
    await aggregateRecover.run({}, s.ctx).catch(() => undefined);
    if (!fired()) break;
    steps++;
    t.is(await settle(s), 0);
    const counts = storedIds(s.dataRoot).counts;
    t.is(counts.get('id-1'), 1, `k=${k}`);
    t.is(counts.get('id-2'), 1, `k=${k}`);
    t.is(counts.size, 2);
  }
  t.true(steps >= 3, `faults were injected at ${steps} steps`);
});
