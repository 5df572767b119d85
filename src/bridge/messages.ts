/**
 * Every user-facing string of the host (STYLE §4, as lint-staged's lib/messages.js).
 */
export const messages = {
  usageLine: 'Usage: provider-bridge <action> [--key=value | --key value | --flag]…',
  globalOptions: `Global options:
  --data-path=DIR       data root (default: $FLOWFORGE_DATA_PATH, config dataPath, <project>/.flowforge)
  --config=FILE         config file (default: flowforge.config.{ts,mjs,js,json} found from the project root)
  --format=json|text    output format (default json: one JSON document on stdout)
  --quiet               print nothing on success
  --hook                git-hook mode: never fail, never print, log problems to logs/aggregation.log
  --help, -h            help (also: provider-bridge <action> --help)
  --version             print the version`,
  exitCodes: `Exit codes: 0 success; 2 usage or input error (nothing accepted); 1 operational failure
(I/O, lock timeout, corrupt store; everything accepted earlier is safe).`,
  noAction: (actions: string[]) => `No action given. Valid actions: ${actions.join(', ')}`,
  unknownAction: (name: string, actions: string[]) => `Unknown action "${name}". Valid actions: ${actions.join(', ')}`,
  unknownOption: (option: string, action: string, valid: string[]) => `Unknown option ${option} for ${action}. Valid options: ${valid.map((o) => `--${o}`).join(', ')}`,
  badArguments: (action: string, detail: string) => `Invalid arguments for ${action}: ${detail}`,
  badFormat: (value: string, valid: string[]) => `--format must be one of ${valid.join(', ')}, got "${value}"`,
  invalidInput: (action: string, count: number) => `Invalid arguments for ${action} (${count} problem${count === 1 ? '' : 's'})`,
  internal: (message: string) => `Internal error: ${message}`,
  badMetricsPort: 'must be a TCP port number from 1 to 65535, or 0 for any free port',
  metricsListenFailed: (host: string, port: number, reason: string) =>
    reason === 'EADDRINUSE'
      ? `Cannot serve metrics on ${host}:${port}: the port is already in use (EADDRINUSE). Nothing was started; choose another --metrics-port, or 0 for any free port.`
      : `Cannot serve metrics on ${host}:${port}: ${reason}. Nothing was started; choose another --metrics-port${reason === 'EACCES' ? ' (ports below 1024 need privileges)' : ''}.`,
  metricsListening: (url: string) => `provider-bridge serve: metrics at ${url}\n`,
  metricsNotFound: 'Not found. The metrics are at /metrics.\n',
  metricsMethod: (method: string) => `Method ${method} not allowed on /metrics; use GET.\n`,
  metricsUnavailable: (reason: string) => `No status read yet: ${reason}. Try again shortly.\n`,
};
