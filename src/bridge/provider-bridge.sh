#!/bin/sh
# provider-bridge launcher: the package's bin, and what the git hooks run. Starts node from this
# package's V8 startup snapshot (dist/snapshot/provider-bridge.blob, made by `npm run build`
# for the node that ran it; see src/bridge/snapshot-main.ts), else from the ESM build,
# dist/src/bridge/cli.js. Same arguments, stdin, stdout, stderr and exit code either way.
#
# - The ESM build runs directly (exec) for `serve`, `hooks` and imports (`--input`), when
#   FLOWFORGE_NO_SNAPSHOT is set (not 0), when NODE_OPTIONS is set (V8 flags in it make node
#   refuse the snapshot, and its --import preloads would not run), and when there is no
#   snapshot.
# - Node refuses a snapshot built by another node version, or with other V8 flags, with exit 14
#   before running any JavaScript; then the ESM build runs, once, with the same arguments and
#   stdin. Every other status is the call's own and is never retried: a crash (132-134, 139)
#   looks the same whether node died reading a damaged snapshot or after the call had read
#   stdin and stored entries, and running such a call again could lose piped input or store a
#   checkout twice. After a crash the launcher says how to replace a damaged snapshot.
# - Node runs as a child of this script so that its status can be checked; TERM, INT and HUP
#   sent to this script are passed on to it.
# - FLOWFORGE_NODE names the node binary (the git hooks record an absolute path); default
#   `node` from PATH.
self=$0
[ -L "$self" ] && self=$(readlink -f -- "$self")
root=${self%/src/bridge/*}
[ "$root" = "$self" ] && root=$(CDPATH= cd -- "$(dirname -- "$self")/../.." && pwd)
node=${FLOWFORGE_NODE:-node}
blob=$root/dist/snapshot/provider-bridge.blob
esm=$root/dist/src/bridge/cli.js

# The action is the first argument that is not an option (nor the value of a global --data-path,
# --config or --format given in space form before it), as the host reads it (host.ts splitAction).
action=
input=
skip=
for arg do
  if [ -n "$skip" ]; then skip=; continue; fi
  case $arg in
    --input | --input=*) input=yes ;;
    --data-path | --config | --format) [ -n "$action" ] || skip=yes ;;
    -*) ;;
    *) [ -n "$action" ] || action=$arg ;;
  esac
done

# Node 20 reads and parses the whole NODE_EXTRA_CA_CERTS bundle at start-up (37-45 ms of a
# 61-72 ms `node -e 0` on the benchmark machine). These actions open no TLS connection from
# node (sync's git reads its own CA settings), so they start without it; aggregate-health,
# serve and hooks keep it: they may run the config's onAlert, which may call a web hook.
case $action in
  aggregate | aggregate-status | aggregate-force | aggregate-recover | aggregate-validate | aggregate-cleanup | aggregate-report | aggregate-migrate | aggregate-sync)
    unset NODE_EXTRA_CA_CERTS
    ;;
esac

snapshot=yes
case ${FLOWFORGE_NO_SNAPSHOT:-0} in 0 | false | no | '') ;; *) snapshot= ;; esac
[ -n "$NODE_OPTIONS" ] && snapshot=
[ -f "$blob" ] || snapshot=
case $action in serve | hooks) snapshot= ;; esac
# An import (--input) runs for seconds, so start-up hardly counts, and from the snapshot its
# peak memory was higher (1,000,000 streamed entries: 205 MB against 186 MB). Its batch files
# and index shards are written through libuv's thread pool, whose threads mostly wait on the
# disk: 8 instead of the default 4 made a 100,000-entry import ~5% faster (unless the caller
# set a size).
# V8's young generation is capped at 8 MB semi-spaces for imports (default 16): a streamed
# 1,000,000-entry import peaked at 162-173 MB instead of 193-229 MB, at the same speed (and a
# 100,000-entry file at 178 MB instead of 194 MB), unless NODE_OPTIONS sets it.
if [ -n "$input" ]; then
  snapshot=
  UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE:-8}
  export UV_THREADPOOL_SIZE
  case $NODE_OPTIONS in
    *semi-space-size*) ;;
    *) exec "$node" --max-semi-space-size=8 "$esm" "$@" ;;
  esac
fi
[ -n "$snapshot" ] || exec "$node" "$esm" "$@"

# Signals are trapped before node starts (one arriving in between is passed on once it has).
child=
pending=
forward() {
  if [ -n "$child" ]; then kill "-$1" "$child" 2>/dev/null; else pending=$1; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP
# A background job's stdin is /dev/null unless redirected from a descriptor saved before. (No
# action run from the snapshot reads stdin today, since imports skip it; one that does later
# must not be handed /dev/null.)
exec 3<&0
"$node" --snapshot-blob "$blob" -- "$@" 0<&3 3<&- &
child=$!
exec 3<&-
[ -n "$pending" ] && kill "-$pending" "$child" 2>/dev/null
wait "$child"
status=$?
# wait returns early when a trapped signal arrives: wait until node itself has exited.
while kill -0 "$child" 2>/dev/null; do
  wait "$child"
  status=$?
done
trap - TERM INT HUP
case $status in
  14) exec "$node" "$esm" "$@" ;;
  132 | 133 | 134 | 139)
    echo "provider-bridge: node crashed (exit $status). If every call does, the startup snapshot $blob may be damaged: \`npm run build\` makes a new one; FLOWFORGE_NO_SNAPSHOT=1 runs without it." >&2
    ;;
esac
exit "$status"
