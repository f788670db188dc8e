#!/usr/bin/env bash
# Creates the development SoftHSM token under ./var (once): a private softhsm2.conf, a token
# directory, and random user and SO PINs in files readable only by you.
set -euo pipefail
var=${1:-var}
label=${2:-countersign-dev}
mkdir -p "$var/hsm/tokens" "$var/run"
chmod 700 "$var/hsm"
conf="$var/hsm/softhsm2.conf"
if [ ! -f "$conf" ]; then
  sed "s|@TOKENDIR@|$(cd "$var/hsm/tokens" && pwd)|" firmware-config/softhsm2.conf.in > "$conf"
fi
umask 077
for pin in user-pin so-pin; do
  [ -s "$var/hsm/$pin" ] || od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$var/hsm/$pin"
done
export SOFTHSM2_CONF="$conf"
if ! softhsm2-util --show-slots 2>/dev/null | grep -q "Label:.*$label"; then
  softhsm2-util --init-token --free --label "$label" \
    --pin "$(cat "$var/hsm/user-pin")" --so-pin "$(cat "$var/hsm/so-pin")" >/dev/null
  echo "created SoftHSM token '$label' in $var/hsm/tokens"
fi
