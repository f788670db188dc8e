#!/usr/bin/env bash
# `make bench`, memory: the resident memory of an idle daemon started as `make run` starts it
# (the dev profile, SQLite, a fresh SoftHSM token, every first-party plugin prepared by
# scripts/dev-plugins.sh), in a scratch directory so ./var is left alone. Measured once the
# daemon answers on its admin socket and its plugin workers are up, then again 2 s later (the
# figure reported is the later one; both are printed).
#
# Usage: scripts/bench-memory.sh [TARGET_DIR] [OUT_FILE]   (default target/release, stdout)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=$(cd "${1:-target/release}" && pwd)
out=${2:-/dev/stdout}
scratch=$(mktemp -d)
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$scratch"
}
trap cleanup EXIT

# The dev profile names paths relative to the checkout; give it a checkout-shaped scratch.
ln -s "$repo/firmware-config" "$scratch/firmware-config"
ln -s "$repo/plugins" "$scratch/plugins"
mkdir -p "$scratch/target"
ln -s "$target" "$scratch/target/release"
cd "$scratch"
bash "$repo/scripts/dev-token.sh" var countersign-dev >/dev/null
bash "$repo/scripts/dev-plugins.sh" var target/release >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

SOFTHSM2_CONF="$scratch/var/hsm/softhsm2.conf" COUNTERSIGN_HTTP__LISTEN="127.0.0.1:$port" \
  target/release/countersignd --no-system-config --config firmware-config/dev.toml \
  >"$scratch/daemon.log" 2>&1 &
daemon_pid=$!
ready=
for _ in $(seq 1 300); do
  if target/release/countersign --socket var/run/admin.sock --json plugin list >"$scratch/plugins.json" 2>/dev/null \
    && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["loaded"] and all(p["running"] for p in d["loaded"]) else 1)' "$scratch/plugins.json"; then
    ready=1
    break
  fi
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$scratch/daemon.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ready" ] || { echo "the daemon did not get ready" >&2; cat "$scratch/daemon.log" >&2; exit 1; }

kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
pss() { awk '$1 == "Pss:" { print $2 }' "/proc/$1/smaps_rollup"; }
first=$(kb "$daemon_pid" VmRSS)
sleep 2
workers=$(pgrep -P "$daemon_pid" || true)
nworkers=0 wrss=0 wpss=0
for w in $workers; do
  nworkers=$((nworkers + 1))
  wrss=$((wrss + $(kb "$w" VmRSS)))
  wpss=$((wpss + $(pss "$w")))
done
plugins=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["loaded"]))' "$scratch/plugins.json")
libs=$(du -cb var/plugins/*/*.so | tail -1 | cut -f1)
{
  echo "# Idle daemon memory ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "The \`make run\` set-up (dev profile, SQLite, SoftHSM, $plugins plugins, their libraries $((libs / 1024)) kB"
  echo "together as prepared by scripts/dev-plugins.sh), idle after start. Binaries: $target."
  echo
  echo "| process | resident (VmRSS) | anonymous | file-backed | shared memory | proportional (PSS) |"
  echo "|---|---|---|---|---|---|"
  echo "| countersignd | $(kb "$daemon_pid" VmRSS) kB (at ready: $first kB) | $(kb "$daemon_pid" RssAnon) kB | $(kb "$daemon_pid" RssFile) kB | $(kb "$daemon_pid" RssShmem) kB | $(pss "$daemon_pid") kB |"
  echo "| $nworkers plugin workers, together | $wrss kB | | | | $wpss kB |"
  echo
  echo "Daemon threads: $(kb "$daemon_pid" Threads)."
} >"$out"
