#!/usr/bin/env bash
# Installs the system packages Countersign needs to build, run and test, if any are missing.
# Debian 12 / Ubuntu; uses sudo when not root. Safe to run repeatedly: it only calls apt when
# something is missing. `--fuzz` (used by `make fuzz` only) also installs cargo-fuzz.
set -euo pipefail
fuzz=false
[ "${1:-}" = "--fuzz" ] && fuzz=true

# command-or-file : package
needs=(
  "softhsm2-util:softhsm2"
  "pkcs11-tool:opensc"
  "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so:opensc-pkcs11"
  "openssl:openssl"
  "oathtool:oathtool"
  "pkg-config:pkg-config"
  "cc:gcc"
  "systemd-analyze:systemd"
  "/usr/lib/python3/dist-packages/PyKCS11/__init__.py:python3-pykcs11"
  "/usr/bin/python3:python3"
  "/usr/lib/python3/dist-packages/aiosmtpd/__init__.py:python3-aiosmtpd"
  "/usr/lib/python3/dist-packages/cryptography/__init__.py:python3-cryptography"
  "/usr/lib/pcsc/drivers/serial/libifdvpcd.so:vsmartcard-vpcd"
  "yubico-piv-tool:yubico-piv-tool"
  "/usr/sbin/pcscd:pcscd"
  "/usr/include/PCSC/winscard.h:libpcsclite-dev"
  "pcsc_scan:pcsc-tools"
  "/usr/sbin/slapd:slapd"
  "ldapsearch:ldap-utils"
  "/usr/bin/chromium:chromium"
  "node:nodejs"
  "npm:npm"
)
missing=()
for n in "${needs[@]}"; do
  what=${n%%:*}; pkg=${n#*:}
  if [[ $what == /* ]]; then [ -e "$what" ] || missing+=("$pkg")
  else command -v "$what" >/dev/null 2>&1 || missing+=("$pkg"); fi
done
# python3 -m venv needs ensurepip (python3-venv); its path depends on the Python version.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=("python3-venv")
# PostgreSQL's server binaries for make test's private server (scripts/test-postgres.sh); their
# path depends on the major version.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=("postgresql")
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# ykman for the virtual smart card tests (tests/vcard): a pinned yubikey-manager in a venv
# inside the work tree (ignored by git); the tests find it there unless YKMAN is set.
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/.tools/venv/bin/ykman" ]; then
  echo "installing yubikey-manager 5.9.2 into .tools/venv"
  python3 -m venv "$root/.tools/venv"
  "$root/.tools/venv/bin/pip" install -q yubikey-manager==5.9.2
fi
# privacyideaadm 3.0, the privacyIDEA admin client, for the compatibility tests. Its sdist runs
# a Sphinx man-page build on install (a command current setuptools no longer has), so the
# install leaves that step out; the client itself is installed unchanged.
if [ ! -x "$root/.tools/piadm/bin/privacyidea" ]; then
  echo "installing privacyideaadm 3.0 into .tools/piadm"
  python3 -m venv "$root/.tools/piadm"
  src=$(mktemp -d)
  "$root/.tools/piadm/bin/pip" download -q --no-deps --no-binary :all: privacyideaadm==3.0 -d "$src"
  tar xzf "$src/privacyideaadm-3.0.tar.gz" -C "$src"
  python3 - "$src/privacyideaadm-3.0/setup.py" <<'PY'
import re, sys
path = sys.argv[1]
s = open(path).read()
s = s.replace("      cmdclass=cmdclass,\n", "")
s = re.sub(r"      setup_requires=\[.*?\],\n", "", s, flags=re.S)
s = re.sub(r"      command_options=\{.*?\n      \},\n", "", s, flags=re.S)
s = re.sub(r"      data_files=\[.*?\],\n", "", s, flags=re.S)
open(path, "w").write(s)
PY
  "$root/.tools/piadm/bin/pip" install -q "$src/privacyideaadm-3.0"
  rm -rf "$src"
fi
# privacyIDEA itself, the reference server the conformance suite (tests/tests/integration/pi_conformance.rs)
# sends every request to beside Countersign: pinned, with SQLite, served by its own Flask app.
if [ ! -x "$root/.tools/privacyidea/bin/pi-manage" ]; then
  echo "installing privacyIDEA 3.11.4 into .tools/privacyidea"
  python3 -m venv "$root/.tools/privacyidea"
  "$root/.tools/privacyidea/bin/pip" install -q privacyidea==3.11.4
fi
# playwright-core for the WebAuthn browser harness (tests/tools/webauthn_browser): pinned, with
# npm into .tools/node (ignored by git). It drives Debian's chromium (installed above) through
# executablePath, so no browser is ever downloaded (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD, and no
# install scripts run). It needs Node.js 20 or later (Debian 12's own nodejs is 18).
playwright=1.65.2
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "node $(node --version) is too old for playwright-core $playwright: install Node.js 20 or later (e.g. NodeSource's nodejs) and run again" >&2
  exit 1
fi
if [ "$(PW_PKG="$root/.tools/node/node_modules/playwright-core/package.json" \
  node -p 'try { require(process.env.PW_PKG).version } catch { "" }')" != "$playwright" ]; then
  echo "installing playwright-core $playwright into .tools/node"
  mkdir -p "$root/.tools/node"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$root/.tools/node" --save-exact --ignore-scripts \
    --no-audit --no-fund --loglevel=error "playwright-core@$playwright" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install the Rust toolchain (rustup, stable >= 1.85) and run again" >&2
  exit 1
fi
# The passkey-rs authenticator `make test` builds (tests/tools/passkey-rs-authenticator, its own
# workspace) needs Rust 1.87 or later (passkey-rs 0.6); the project itself needs 1.85.
rust_minor=$(rustc --version | sed -nE 's/^rustc 1\.([0-9]+)\..*/\1/p')
if [ "${rust_minor:-0}" -lt 87 ]; then
  echo "$(rustc --version) is too old for tests/tools/passkey-rs-authenticator (passkey-rs 0.6 needs Rust 1.87, make test builds it): rustup update stable, and run again" >&2
  exit 1
fi
for c in fmt clippy; do
  if ! cargo "$c" --version >/dev/null 2>&1; then
    echo "cargo $c is missing: rustup component add $([ $c = fmt ] && echo rustfmt || echo clippy)" >&2
    rustup component add "$([ $c = fmt ] && echo rustfmt || echo clippy)"
  fi
done
# cargo-fuzz for `make fuzz` only: `make test` never needs it.
if $fuzz && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install --locked cargo-fuzz)"
  cargo install --locked cargo-fuzz
fi
