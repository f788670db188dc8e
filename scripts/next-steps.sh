#!/usr/bin/env bash
# Printed by `make run` before the daemon starts: what to type next, in another terminal.
var=${1:-var}
cat <<MSG

countersignd is starting on ./$var/run/api.sock (services) and ./$var/run/admin.sock (admins).
Token: SoftHSM '$var/hsm' (PINs in $var/hsm/*-pin, mode 0600). Stop with Ctrl-C.

In another terminal, from this directory:
  export COUNTERSIGN_ADMIN_SOCKET=\$PWD/$var/run/admin.sock
  PATH=\$PWD/target/release:\$PATH
  countersign app create demo --algorithm ec-p256       # keypair generated inside the HSM
  countersign integration add me --uid \$(id -u)          # this Unix user may call api.sock
  countersign grant me demo
  curl -s --unix-socket $var/run/api.sock http://localhost/v1/keys
  curl -s --unix-socket $var/run/api.sock -H 'content-type: application/json' \\
       -d "{\"message\":\"\$(printf hello | base64)\"}" http://localhost/v1/keys/demo/sign
  countersign audit signatures
  countersign --help

MSG
