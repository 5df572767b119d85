/**
 * Worker thread of report/checksums.ts: receives batches of `{id, bytes}` (the bytes of batch
 * files), verifies each with decodeBatch (JSON, shape, version, entryCount, checksum) and answers
 * `[{id, problem?}]` in the same order.
 */
import { parentPort } from 'node:worker_threads';
import { decodeBatch } from '../batch-store.js';

parentPort!.on('message', (jobs: Array<{ id: number; bytes: Uint8Array }>) => {
  parentPort!.postMessage(
    jobs.map(({ id, bytes }) => {
      const decoded = decodeBatch(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return 'problem' in decoded ? { id, problem: decoded.problem } : { id };
    }),
  );
});
