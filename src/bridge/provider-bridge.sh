#!/bin/sh
# provider-bridge launcher (the package's bin). Starts node from this package's V8 startup
# snapshot (dist/snapshot/provider-bridge.blob, made by `npm run build` for the node that ran
# it; see src/bridge/snapshot-main.ts), else from the ESM build, dist/src/bridge/cli.js.
#
# Node exits 14 before running any JavaScript when the snapshot was built by another node
# version ("Failed to load the startup snapshot…" on stderr); the ESM build then runs with the
# same arguments and stdin. `npm run build` makes a snapshot for the current node.
# FLOWFORGE_NO_SNAPSHOT=1 always uses the ESM build. `serve` and `hooks` always do, so that
# signals reach the long-lived host directly.
self=$0
[ -L "$self" ] && self=$(readlink -f -- "$self")
root=${self%/src/bridge/*}
[ "$root" = "$self" ] && root=$(CDPATH= cd -- "$(dirname -- "$self")/../.." && pwd)
blob=$root/dist/snapshot/provider-bridge.blob
# Node 20 reads and parses the whole NODE_EXTRA_CA_CERTS bundle at start-up (44 ms of a 72 ms
# `node -e 0` on the benchmark machine). These actions open no TLS connection from node (git,
# which sync spawns, reads its own CA settings), so they start without it; aggregate-health,
# serve and hooks keep it: they may run the config's onAlert, which may call a web hook.
case $1 in
  aggregate | aggregate-status | aggregate-force | aggregate-recover | aggregate-validate | aggregate-cleanup | aggregate-report | aggregate-migrate | aggregate-sync)
    unset NODE_EXTRA_CA_CERTS
    ;;
esac
if [ -z "$FLOWFORGE_NO_SNAPSHOT" ] && [ -f "$blob" ]; then
  case $1 in
    serve | hooks) ;;
    *)
      node --snapshot-blob "$blob" -- "$@"
      status=$?
      [ "$status" -eq 14 ] || exit "$status"
      ;;
  esac
fi
exec node "$root/dist/src/bridge/cli.js" "$@"
