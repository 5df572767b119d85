#!/usr/bin/env node
/**
 * The `provider-bridge` executable: runs the host with the real process and sets
 * `process.exitCode` (never `process.exit()`, so pending writes finish).
 */
import { runHost } from './host.js';

// A reader that stops early (`| head`) must not turn into a crash: the work is already done.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

process.exitCode = await runHost(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
});
