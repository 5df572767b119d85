#!/usr/bin/env node
/**
 * The `provider-bridge` executable: runs the host with the real process and sets
 * `process.exitCode` (never `process.exit()`, so pending writes finish). The `provider-bridge`
 * bin (src/bridge/provider-bridge.sh) starts the startup snapshot instead when there is one
 * (src/bridge/snapshot-main.ts); `FLOWFORGE_TRACE_STARTUP=1` prints which one ran, on stderr.
 */
import { runHost } from './host.js';

// A reader that stops early (`| head`) must not turn into a crash: the work is already done.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

if (process.env.FLOWFORGE_TRACE_STARTUP) process.stderr.write('provider-bridge: started from the ESM build (dist/src/bridge/cli.js)\n');

process.exitCode = await runHost(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  cwd: process.cwd(),
});
