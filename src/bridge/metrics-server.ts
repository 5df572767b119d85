/**
 * The HTTP endpoint of `serve --metrics-port=N`: `GET /metrics` (and `HEAD`) on 127.0.0.1
 * only, answered by the `respond` function the caller gives (serve reads the store through its
 * run queue). Any other path is 404, any other method on /metrics 405. node:http is enough for
 * one read-only route; the exposition itself is written by prom-client.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { IoError } from '../core/errors.js';
import { messages } from './messages.js';

/** Loopback only: the metrics are for a Prometheus on this machine, never for the network. */
export const METRICS_HOST = '127.0.0.1';

/** One answer to a scrape: HTTP status (200, or 503 when no status could be read yet), type, text. */
export interface MetricsResponse {
  status: number;
  contentType: string;
  body: string;
}

export interface MetricsServer {
  /** The port actually bound (the one asked for, or the one the system picked for 0). */
  port: number;
  /** `http://127.0.0.1:<port>/metrics`. */
  url: string;
  /** Stops listening and drops open connections (keep-alive ones included); never rejects. */
  close(): Promise<void>;
}

const TEXT = 'text/plain; charset=utf-8';

/**
 * Listens on 127.0.0.1:`port` (0: any free port). Throws IoError (exit 1) when the port cannot
 * be bound — EADDRINUSE (taken), EACCES (a privileged port) — with nothing left listening.
 */
export async function startMetricsServer(options: {
  port: number;
  respond: () => Promise<MetricsResponse>;
  /** Hears about server errors after start (an `accept` failing under EMFILE…), which are not fatal. */
  onError?: (error: Error) => void;
}): Promise<MetricsServer> {
  const { port, respond } = options;
  const send = (res: http.ServerResponse, head: boolean, r: MetricsResponse, extra: http.OutgoingHttpHeaders = {}) => {
    res.writeHead(r.status, { 'content-type': r.contentType, 'cache-control': 'no-store', ...extra });
    res.end(head ? undefined : r.body);
  };
  const server = http.createServer((req, res) => {
    // Only the path matters (a query string is ignored); never `new URL()` on a raw request
    // target, which throws on some inputs a client can send.
    const pathname = (req.url ?? '/').split('?')[0];
    const head = req.method === 'HEAD';
    if (pathname !== '/metrics') return send(res, head, { status: 404, contentType: TEXT, body: messages.metricsNotFound });
    if (req.method !== 'GET' && !head) return send(res, false, { status: 405, contentType: TEXT, body: messages.metricsMethod(req.method ?? '') }, { allow: 'GET, HEAD' });
    respond().then(
      (r) => send(res, head, r),
      (error: unknown) => send(res, head, { status: 500, contentType: TEXT, body: `${(error as Error)?.message ?? String(error)}\n` }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(new IoError(messages.metricsListenFailed(METRICS_HOST, port, error.code ?? error.message), { cause: error, details: [{ path: '--metrics-port', message: error.message, value: port }] }));
    };
    server.once('error', onError);
    server.listen(port, METRICS_HOST, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
  server.on('error', (error) => options.onError?.(error));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `http://${METRICS_HOST}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
