#!/usr/bin/env bash
# Checks deploy/systemd/quorate.service with `systemd-analyze verify` (syntax, known directives and values,
# dependencies), or says that it skipped when systemd-analyze is not installed. Fails on any complaint: verify
# exits 0 on unknown keys and unparsable values, so its output must be empty too.
#
# verify also insists that ExecStart's binary exists: unless /usr/local/bin/quorate is installed, the check runs on
# a copy of the unit whose ExecStart names a stub executable instead (everything else unchanged). As root, verify
# runs as `nobody` (setpriv), since as root it also writes /run/systemd/systemd-units-load; so nothing is written
# outside a temporary directory.
set -euo pipefail
unit="$(cd "$(dirname "$0")" && pwd)/quorate.service"
say() { echo "deploy/systemd/verify.sh: $*"; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
    say "SKIPPED: systemd-analyze is not installed (Debian: apt-get install systemd)"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
# The copy's name must stay quorate.service.
cp "$unit" "$tmp/quorate.service"
if [[ ! -x /usr/local/bin/quorate ]]; then
    printf '#!/bin/sh\nexit 0\n' >"$tmp/quorate"
    chmod 0755 "$tmp/quorate"
    sed -i "s|^ExecStart=/usr/local/bin/quorate |ExecStart=$tmp/quorate |" "$tmp/quorate.service"
    if ! grep -q "^ExecStart=$tmp/quorate serve " "$tmp/quorate.service"; then
        say "FAILED: ExecStart is not /usr/local/bin/quorate serve ..." >&2
        exit 1
    fi
    say "/usr/local/bin/quorate is not installed: ExecStart checked against a stub"
fi
chmod 0644 "$tmp/quorate.service"

run=()
if [[ $EUID -eq 0 ]] && command -v setpriv >/dev/null 2>&1 && id nobody >/dev/null 2>&1; then
    run=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups env HOME=/)
fi

# --man=no: Documentation= is a URL, and man pages need not be installed.
status=0
output=$(cd "$tmp" && "${run[@]}" systemd-analyze verify --man=no "$tmp/quorate.service" 2>&1) || status=$?
if [[ $status -ne 0 || -n "$output" ]]; then
    echo "$output" >&2
    say "FAILED: systemd-analyze verify (exit $status) complained about quorate.service" >&2
    exit 1
fi
say "OK: $(systemd-analyze --version | head -1): verify found nothing to report in quorate.service"
