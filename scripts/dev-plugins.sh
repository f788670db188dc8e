#!/usr/bin/env bash
# Development plugins for `make run`: a publisher key under ./var (created once, mode 0600,
# trusted only by the dev profile), and the first-party plugins built in TARGET copied to
# ./var/plugins, stripped and signed with it. Stripped, a library is about a sixth of its
# size (the release profile keeps debug line tables for the daemon's backtraces): the daemon
# keeps every plugin's verified bytes for as long as it runs, and each worker maps them.
set -euo pipefail
var=${1:-var}
target=${2:-target/release}
cli="$target/countersign"
key="$var/plugin-publisher.key"
trusted="$var/plugin-publishers-dev.toml"
mkdir -p "$var/plugins"
if [ ! -s "$key" ]; then
  "$cli" plugin keygen countersign-dev --out "$key" | sed -n '/^\[\[publisher\]\]/,$p' > "$trusted"
fi
for manifest in plugins/token-*/plugin.toml plugins/gateway-*/plugin.toml; do
  name=$(basename "$(dirname "$manifest")")
  lib=$(sed -n 's/^library = "\(.*\)"/\1/p' "$manifest")
  mkdir -p "$var/plugins/$name"
  # Only the dynamic symbols a loader needs stay (the plugin's entry point).
  strip --strip-unneeded -o "$var/plugins/$name/$lib" "$target/$lib"
  cp "$manifest" "$var/plugins/$name/plugin.toml"
  "$cli" plugin sign "$var/plugins/$name" --key "$key" >/dev/null
done
echo "signed development plugins in $var/plugins with $key"
