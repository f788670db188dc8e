#!/usr/bin/env bash
# Development plugins for `make run`: a publisher key under ./var (created once, mode 0600,
# trusted only by the dev profile), and the first-party plugins built in TARGET copied to
# ./var/plugins and signed with it.
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
  cp "$target/$lib" "$var/plugins/$name/$lib"
  cp "$manifest" "$var/plugins/$name/plugin.toml"
  "$cli" plugin sign "$var/plugins/$name" --key "$key" >/dev/null
done
echo "signed development plugins in $var/plugins with $key"
