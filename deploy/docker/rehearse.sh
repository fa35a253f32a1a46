#!/usr/bin/env bash
# Rehearses deploy/docker/compose.yaml without Docker (for machines with no Docker daemon or registry): runs
# deploy/docker/node{1,2,3}.toml unchanged as a three-node cluster, each node in its own network and mount
# namespace, as uid 10001 (the image's user) without capabilities, with /etc/quorate laid out as compose mounts it,
# its own data directory as /var/lib/quorate, and quorate-N.internal resolving on a private bridge. Then: the `cli`
# service's commands, a client on "the host" side of a published port, SIGHUP, SIGTERM, a restart on the same data,
# and a count of WARN/ERROR log lines. Not part of CI: needs root (namespaces, mounts), iproute2 and util-linux.
#
#   cargo build -p quorate-cli && sudo deploy/docker/rehearse.sh [path/to/quorate]
#
# PARTITION=3 first cuts node 1 off the network for 3 s and stops it while cut off (see README: Deployment).
# It tests the configs, certificates, file ownership and the binary; not the Dockerfile or compose.yaml themselves.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$repo/target}/debug/quorate}
[[ -x $bin ]] || { echo "no quorate binary at $bin: build it or pass its path" >&2; exit 1; }
[[ $EUID -eq 0 ]] || { echo "needs root (network namespaces and mounts)" >&2; exit 1; }
W=$(mktemp -d /tmp/quorate-rehearse.XXXXXX)
chmod 0755 "$W"
pfx=qrh$$
declare -A job
say() { echo "== $*"; }
cleanup() {
    for i in 1 2 3; do
        if [[ -f $W/pid$i ]]; then kill -KILL "$(cat "$W/pid$i")" 2>/dev/null || true; fi
    done
    sleep 1
    for n in 1 2 3 cli br; do ip netns del "$pfx-$n" 2>/dev/null || true; done
    rm -rf "$W"
}
trap cleanup EXIT

install -m 0755 "$bin" "$W/quorate"
say "quorate certs init --nodes 3 --san quorate-1.internal,quorate-2.internal,quorate-3.internal; chown 10001 the node and client keys"
"$W/quorate" certs init --nodes 3 --out "$W/certs" --san quorate-1.internal,quorate-2.internal,quorate-3.internal >/dev/null
chown 10001:10001 "$W"/certs/node?-key.pem "$W/certs/client-key.pem"

# The compose network: a bridge in its own namespace, nodes at 10.231.0.1-3, the cli at 10.231.0.9.
ip netns add "$pfx-br"
ip -n "$pfx-br" link add br0 type bridge
ip -n "$pfx-br" link set br0 up
for n in 1 2 3 cli; do
    ns="$pfx-$n" addr=$([[ $n == cli ]] && echo 9 || echo "$n")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add eth0 netns "$ns" type veth peer name "p$n" netns "$pfx-br"
    ip -n "$pfx-br" link set "p$n" master br0
    ip -n "$pfx-br" link set "p$n" up
    ip -n "$ns" addr add "10.231.0.$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    # The container's /etc: this machine's, with the network's names and the compose mounts.
    cp -a /etc "$W/etc$n"
    printf '127.0.0.1 localhost\n10.231.0.1 quorate-1.internal\n10.231.0.2 quorate-2.internal\n10.231.0.3 quorate-3.internal\n' \
        >"$W/etc$n/hosts"
    install -d -m 0700 -o 10001 -g 10001 "$W/data$n"
done
for i in 1 2 3; do
    e="$W/etc$i/quorate"
    install -d -m 0755 "$e" "$e/certs"
    cp "$repo/deploy/docker/node$i.toml" "$e/node.toml"
    cp "$repo/deploy/policies.toml" "$e/policies.toml"
    cp -p "$W/certs/ca.pem" "$W/certs/node$i.pem" "$W/certs/node$i-key.pem" "$e/certs/"
done
mkdir "$W/etccli/certs"
cp -p "$W/certs/ca.pem" "$W/certs/client.pem" "$W/certs/client-key.pem" "$W/etccli/certs/"

# `container N ENV... -- COMMAND...`: COMMAND in namespace N with its /etc and /var/lib/quorate (the volume), as
# uid/gid 10001 without capabilities, with only the given environment; its pid goes to $W/pidN for N in 1-3.
container() {
    local n=$1
    shift
    local env=()
    while [[ $1 != -- ]]; do env+=("$1"); shift; done
    shift
    # shellcheck disable=SC2016 # the inner script expands its own arguments
    ip netns exec "$pfx-$n" unshare --mount --propagation private -- sh -c '
        w=$1 n=$2; shift 2
        case $n in [123]) echo $$ >"$w/pid$n" ;; esac
        mount --bind "$w/etc$n" /etc && mount --bind "$w/data$n" /var/lib/quorate 2>/dev/null ||
            { mount -t tmpfs -o mode=0755 tmpfs /var/lib && mkdir /var/lib/quorate && mount --bind "$w/data$n" /var/lib/quorate; }
        cd /var/lib/quorate
        exec setpriv --reuid=10001 --regid=10001 --clear-groups --inh-caps=-all --bounding-set=-all "$@"' \
        sh "$W" "$n" env -i PATH=/usr/bin:/bin "${env[@]}" "$W/quorate" "$@"
}
start() {
    local i=$1
    shift
    container "$i" "$@" -- serve --config /etc/quorate/node.toml >>"$W/out$i" 2>>"$W/log$i" &
    job[$i]=$!
}
stop() {
    local i=$1 pid status=0 t0
    pid=$(cat "$W/pid$i")
    t0=$(date +%s%N)
    kill -TERM "$pid"
    (sleep 90 && kill -KILL "$pid" 2>/dev/null && echo "node $i: SIGKILL after 90 s") &
    local watchdog=$!
    wait "${job[$i]}" || status=$?
    kill "$watchdog" 2>/dev/null || true
    rm "$W/pid$i"
    echo "node $i: exit status $status, $(( ($(date +%s%N) - t0) / 1000000 )) ms after SIGTERM"
}
cli() {
    container cli QUORATE_CA=/etc/certs/ca.pem QUORATE_CERT=/etc/certs/client.pem QUORATE_KEY=/etc/certs/client-key.pem \
        -- "$@"
}

say "starting quorate serve --config /etc/quorate/node.toml x3 (node 3 with QUORATE_LOG_FORMAT=json)"
start 1
start 2
start 3 QUORATE_LOG_FORMAT=json
sleep 5
say "cli: status --endpoint quorate-1.internal:7101"
cli status --endpoint quorate-1.internal:7101
say "cli: status --endpoint quorate-2.internal:7301 (admin listener, client certificate)"
cli status --endpoint quorate-2.internal:7301 | tail -n +2 | head -3
say "cli: check --endpoint quorate-3.internal:7101 --descriptor api_key=agent_42"
cli check --endpoint quorate-3.internal:7101 --descriptor api_key=agent_42 | head -1
say "admin listener without a client certificate (must fail)"
container cli QUORATE_CA=/etc/certs/ca.pem -- status --endpoint quorate-1.internal:7301 --timeout-ms 500 2>&1 | tail -1 || true
say "the host through a published port (node 1's namespace, this machine's /etc: no .internal names)"
ip netns exec "$pfx-1" "$W/quorate" check --endpoint 127.0.0.1:7101 --ca "$W/certs/ca.pem" --descriptor api_key=agent_42 |
    head -1
say "SIGHUP to node 2"
kill -HUP "$(cat "$W/pid2")"
sleep 1
kill -0 "$(cat "$W/pid2")" && echo "node 2 still running"
say "SIGTERM to node 3, restart it on its data"
stop 3
start 3 QUORATE_LOG_FORMAT=json
sleep 3
cli status --endpoint quorate-1.internal:7101 | tail -n +2 | head -3
if [[ -n ${PARTITION:-} ]]; then
    say "node 1 cut off the network (its bridge port down: packets dropped, no resets) for ${PARTITION} s, then SIGTERM"
    ip -n "$pfx-br" link set p1 down
    sleep "$PARTITION"
    stop 1
    stop 2
    stop 3
else
    say "SIGTERM to each node"
    stop 3
    stop 2
    stop 1
fi
for i in 1 2 3; do
    say "node $i: standard output"
    cat "$W/out$i"
    say "node $i: standard error"
    cat "$W/log$i"
done
if python3 -c 'import json, sys; [json.loads(line) for line in open(sys.argv[1])]' "$W/log3"; then
    say "node 3's log: every line is JSON"
else
    say "node 3's log: NOT all JSON"
fi
say "WARN/ERROR log lines: $(cat "$W"/log? | grep -cE ' (WARN|ERROR) |"level":"(WARN|ERROR)"' || true)"
