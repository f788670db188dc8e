#!/usr/bin/env bash
# Offline checks of the units in systemd/ (run by `make test` from the repository root; works
# from anywhere). Needs only systemd-analyze, systemd-sysusers and systemd-tmpfiles (systemd
# >= 250 for `security --offline`); no running systemd, no installed countersignd.
#
#  1. systemd-analyze security --offline: prints the overall exposure of countersignd.service
#     and fails if it is above MAX_EXPOSURE (default 2.5) or cannot be determined.
#  2. systemd-analyze verify of the service and both sockets (unknown keys, bad values, broken
#     references). The one complaint accepted is that /usr/bin/countersignd does not exist on
#     this machine.
#  3. sysusers.d and tmpfiles.d: applied to a throw-away root directory, so that syntax errors
#     and users/groups that tmpfiles.d needs but sysusers.d does not create are caught.
#  4. The unit with drop-ins/network-clients.conf installed (LDAP resolvers, SMS/SMTP
#     gateways), in a throw-away root: its exposure must stay <= MAX_EXPOSURE_NETWORK (default
#     2.0), it must reach the network only through an IP allowlist (IPAddressDeny=any kept)
#     and keep io_uring refused.
set -euo pipefail

max_exposure=${MAX_EXPOSURE:-2.5}
dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
service="$dir/countersignd.service"
sockets=("$dir/countersignd.socket" "$dir/countersignd-admin.socket" "$dir/countersignd-http.socket")
binary=/usr/bin/countersignd
status=0

fail() { echo "check-security: FAIL: $*" >&2; status=1; }

command -v systemd-analyze >/dev/null || { echo "check-security: FAIL: systemd-analyze not found" >&2; exit 1; }

# --- 1. exposure ------------------------------------------------------------------------------
if ! out=$(LC_ALL=C systemd-analyze security --offline=true --no-pager "$service" 2>&1); then
    # Only a threshold (--threshold, not used here) makes it fail on a high score: a failure
    # means the unit could not be loaded.
    printf '%s\n' "$out" >&2
    fail "systemd-analyze security failed"
fi
exposure=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\.[0-9]\).*/\1/p' | tail -n1)
if [ -z "$exposure" ]; then
    printf '%s\n' "$out" >&2
    fail "could not find the overall exposure level in the output above"
else
    echo "countersignd.service exposure: $exposure (must be <= $max_exposure)"
    if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
        printf '%s\n' "$out" | grep -E '^(✗|-) ' >&2 || true
        fail "exposure $exposure is above $max_exposure"
    else
        # What is still exposed, for the record.
        printf '%s\n' "$out" | grep -E '^(✗|-) ' | sed 's/^/  /' || true
    fi
fi

# --- 2. verify --------------------------------------------------------------------------------
missing_binary="countersignd.service: Command $binary is not executable: No such file or directory"
rc=0
out=$(systemd-analyze verify --man=no "$service" "${sockets[@]}" 2>&1) || rc=$?
# Lines about our units, minus the one accepted complaint when the daemon is not installed.
ours=$(printf '%s\n' "$out" | grep -i countersign || true)
accepted=0
if [ ! -e "$binary" ] && printf '%s\n' "$ours" | grep -qxF "$missing_binary"; then
    ours=$(printf '%s\n' "$ours" | grep -vxF "$missing_binary" || true)
    accepted=1
fi
if [ -n "$ours" ]; then
    printf '%s\n' "$ours" >&2
    fail "systemd-analyze verify reported problems with the units"
elif [ "$rc" -ne 0 ] && [ "$accepted" -eq 0 ]; then
    printf '%s\n' "$out" >&2
    fail "systemd-analyze verify failed (exit $rc)"
else
    [ -n "$out" ] && [ "$accepted" -eq 0 ] && printf '%s\n' "$out" | sed 's/^/  note: /'
    echo "systemd-analyze verify: ok$([ "$accepted" -eq 1 ] && echo " ($binary not installed here; not checked)")"
fi

# --- 3. sysusers.d / tmpfiles.d ---------------------------------------------------------------
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir "$root/etc"
if ! out=$(systemd-sysusers --root="$root" "$dir/countersign.sysusers.conf" 2>&1); then
    printf '%s\n' "$out" >&2
    fail "systemd-sysusers rejected countersign.sysusers.conf"
else
    rc=0
    out=$(systemd-tmpfiles --root="$root" --create "$dir/countersign.tmpfiles.conf" 2>&1) || rc=$?
    # Parse errors and unknown users/groups name the file and line. Without root, the chown
    # of the created directories fails: expected, so only a root run checks the exit code.
    if printf '%s\n' "$out" | grep -q 'countersign\.tmpfiles\.conf:[0-9]'; then
        printf '%s\n' "$out" >&2
        fail "systemd-tmpfiles rejected countersign.tmpfiles.conf"
    elif [ "$(id -u)" -eq 0 ] && [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" >&2
        fail "systemd-tmpfiles failed (exit $rc)"
    else
        echo "sysusers.d, tmpfiles.d: ok"
    fi
fi

# --- 4. the network-clients drop-in -------------------------------------------------------------
max_network=${MAX_EXPOSURE_NETWORK:-2.0}
units="$root/etc/systemd/system"
mkdir -p "$units/countersignd.service.d"
cp "$service" "${sockets[@]}" "$units/"
cp "$dir/drop-ins/network-clients.conf" "$units/countersignd.service.d/"
out=$(LC_ALL=C systemd-analyze security --offline=true --root="$root" --no-pager countersignd.service 2>&1) || true
exposure=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\.[0-9]\).*/\1/p' | tail -n1)
if [ -z "$exposure" ]; then
    printf '%s\n' "$out" >&2
    fail "could not assess countersignd.service with the network-clients drop-in"
elif awk -v e="$exposure" -v m="$max_network" 'BEGIN { exit !(e > m) }'; then
    fail "with the network-clients drop-in, exposure $exposure is above $max_network"
elif grep -Eq '^[[:space:]]*(IPAddressDeny|SystemCallFilter|NoNewPrivileges|CapabilityBoundingSet)=' "$dir/drop-ins/network-clients.conf"; then
    # systemd-analyze does not show an IPAddressDeny= reset, so the file itself is checked.
    fail "network-clients.conf must open the network only through IPAddressAllow= (it overrides IPAddressDeny= or a privilege setting)"
else
    echo "countersignd.service + network-clients.conf exposure: $exposure (must be <= $max_network)"
fi
grep -q '^SystemCallFilter=~io_uring_setup io_uring_enter io_uring_register$' "$service" \
    || fail "countersignd.service must refuse io_uring"

[ "$status" -eq 0 ] && echo "check-security: OK"
exit "$status"
