#!/usr/bin/env bash
# Printed by `make run` before the daemon starts: what to type next, in another terminal.
var=${1:-var}
cat <<MSG

countersignd is starting on ./$var/run/api.sock (services), ./$var/run/admin.sock (admins)
and http://127.0.0.1:8080 (/v1/validate/check).
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

  countersign user add alice
  echo 1234 | countersign token init --type totp --user alice --pin-stdin   # scan the QR code
  curl -s --unix-socket $var/run/api.sock -H 'content-type: application/json' \\
       -d '{"user":"alice","pass":"1234<code from the app>"}' http://localhost/v1/validate/check
  curl -s -H 'content-type: application/json' -d '{"user":"alice","pass":"1234<code>"}' \\
       http://127.0.0.1:8080/v1/validate/check                                 # the HTTP listener
  countersign audit auth
  # SMS and e-mail tokens need a gateway first: see docs/operations.md, "Gateways and challenge-response"
  countersign plugin list; countersign gateway list; countersign delivery list
  countersign --help

MSG
