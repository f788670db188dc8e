#!/usr/bin/env python3
"""A phone with the privacyIDEA Authenticator's push token, for Countersign's integration tests.

It speaks privacyIDEA's push protocol from the phone's side: the second enrolment step, polling
for challenges, accepting, declining and number matching, and the Firebase-token update. It is a
witness: written from the protocol as privacyIDEA's server (``privacyidea/lib/tokens/
pushtoken.py``, ``api/ttype.py``, ``api/validate.py``, release 3.11.4) and the app's Dart sources
(``privacyidea/pi-authenticator``) describe it, and it shares no code with Countersign's server.
It uses only the standard library (urllib for HTTP) and ``cryptography`` (nothing newer than
release 38, Debian's python3-cryptography).

What the app does, and so what this phone does (app source files named):

- Enrolment URI (``otpauth://pipush/LABEL?url=..&ttl=..&issuer=..&enrollment_credential=..&v=1
  &serial=..&sslverify=..&poll_only=..``): ``v`` must be ``1`` (``model/tokens/push_token.dart``,
  ``fromOtpAuthMap``); ``ttl`` is minutes; ``sslverify`` is ``1`` unless it says ``0``.
- Key pair: RSA 4096 bits, public exponent 65537 (``utils/rsa_utils.dart``,
  ``generateRSAKeyPair``). ``--key-bits`` makes smaller keys for fast tests.
- ``pubkey``: the phone's public key as a DER SubjectPublicKeyInfo ("PKCS#8" in the app's
  words), standard Base64 with padding, no line breaks and no PEM armour
  (``rsa_utils.dart``, ``serializeRSAPublicKeyPKCS8``).
- Second step: POST (form) ``enrollment_credential``, ``serial``, ``fbtoken``, ``pubkey`` to the
  URI's ``url`` (``utils/riverpod/.../token_notifier.dart``, ``rolloutPushToken``). A poll-only
  token has no Firebase token: the app sends ``no_firebase_token`` (``NoFirebaseUtils.
  NO_FIREBASE_TOKEN``); this phone sends that too unless ``--fbtoken`` names one (``--fbtoken ''``
  sends the empty string older apps sent).
- The server's answer: ``detail.public_key`` is Base64 of a DER PKCS#1 RSAPublicKey (line breaks
  removed first); the app parses it as PKCS#1 only (``deserializeRSAPublicKeyPKCS1``), so does
  this phone.
- Signatures, both ways: RSA PKCS#1 v1.5 with SHA-256 (``SIGNING_ALGORITHM`` ``SHA-256/RSA``),
  Base32 (RFC 4648 alphabet, ``=`` padding), over UTF-8 strings joined by ``|``.
- Poll: GET the URL with ``serial``, ``timestamp`` and ``signature`` over ``serial|timestamp``;
  the timestamp is Dart's ``DateTime.now().toUtc().toIso8601String()``, e.g.
  ``2025-01-02T03:04:05.678901Z`` (milliseconds, then microseconds only when not zero, ``Z``)
  (``utils/push_provider.dart``, ``pollForChallenge``). The server sends the open challenges in
  ``result.value``.
- A challenge is verified with the server's key over ``nonce|url|serial|question|title|
  sslverify`` (``sslverify`` as ``1`` or ``0``), plus ``|require_presence`` when it has one (number
  matching, ``version`` 2) or ``|display_code`` when it has one (the app's code-to-phone request)
  (``model/push_request/push_*_request.dart``, ``signedData``).
- Answer: POST ``nonce``, ``serial``, ``signature`` over ``nonce|serial``, with ``decline=1`` and
  ``|decline`` when declining, ``presence_answer`` and ``|ANSWER`` for number matching
  (``getResponseData``, ``getResponseSignMsg``). Newer apps add ``decline_reason`` (and
  ``|REASON`` after ``|decline``) on declining; privacyIDEA 3.11.4 does not know it, so it is sent
  only with ``--decline-reason``.
- Firebase-token update: POST ``new_fb_token``, ``serial``, ``timestamp``, ``signature`` over
  ``new_fb_token|serial|timestamp`` (``token_notifier.dart``, ``updateFirebaseToken``).

Where the app is vague this phone assumes: it does not refuse an enrolment after the URI's TTL
(the app records an expiry date but the server decides; tests need the server's refusal); it
answers to the registration URL it enrolled with (the app answers to the challenge's ``url``,
which the tests' servers set to the same URL); it is lenient about ``poll_only`` spellings
(``True``/``1``/``true``).

Subcommands (``python3 push_phone.py COMMAND --help``): ``enrol``, ``poll``, ``answer``,
``update-fbtoken``, ``raw-signature``. Each prints one JSON object on stdout. Those that talk to
the server print ``request`` (method, url, params), ``http_status`` and ``response`` (the server's
JSON, or ``null`` with ``response_text`` when it was not JSON), and exit 0 when the server did
what was asked, 1 when it answered but refused (the JSON is still printed, the reason goes to
stderr), 2 on a local error (bad arguments, no state, unreachable server; only the reason on
stderr). All state is in the JSON file given by ``--state`` (written atomically, mode 0600): the
phone's private key lies in it unencrypted, as befits a test tool.
"""

import argparse
import base64
import datetime
import json
import os
import ssl
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

APP_KEY_BITS = 4096
NO_FIREBASE_TOKEN = "no_firebase_token"
HTTP_TIMEOUT = 120


class PhoneError(Exception):
    """A local failure: exit status 2, the message on stderr."""


class Refused(Exception):
    """The server answered but did not do what was asked: the JSON is printed, exit status 1."""

    def __init__(self, reason, output):
        super().__init__(reason)
        self.output = output


# ---- Encodings ----

def b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii")


def spki_base64(public_key) -> str:
    """The app's ``pubkey``: DER SubjectPublicKeyInfo, standard Base64 with padding."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def der_item(data: bytes, at: int):
    """One DER element at ``at``: (tag, contents, index after it)."""
    if at + 2 > len(data):
        raise ValueError("truncated")
    tag, length, at = data[at], data[at + 1], at + 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or at + n > len(data):
            raise ValueError("bad length")
        length, at = int.from_bytes(data[at:at + n], "big"), at + n
    if at + length > len(data):
        raise ValueError("truncated")
    return tag, data[at:at + length], at + length


def load_server_key(text: str):
    """``detail.public_key`` as the app reads it (``deserializeRSAPublicKeyPKCS1``): line breaks
    removed, Base64, DER of a PKCS#1 RSAPublicKey ``SEQUENCE { modulus INTEGER, publicExponent
    INTEGER }`` and nothing else (a SubjectPublicKeyInfo is refused, as the app fails on it)."""
    body = "".join(text.split())
    try:
        der = base64.b64decode(body, validate=True)
    except (ValueError, TypeError) as e:
        raise PhoneError(f"the server's public_key is not Base64: {e}")
    try:
        tag, seq, end = der_item(der, 0)
        if tag != 0x30 or end != len(der):
            raise ValueError("not one SEQUENCE")
        tag_n, n, at = der_item(seq, 0)
        tag_e, e, at = der_item(seq, at)
        if tag_n != 0x02 or tag_e != 0x02 or at != len(seq):
            raise ValueError("not SEQUENCE { INTEGER, INTEGER }")
        return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
    except ValueError as e:
        raise PhoneError(f"the server's public_key is not a PKCS#1 RSAPublicKey: {e}")


def dart_utc_iso(moment: datetime.datetime) -> str:
    """Dart's ``DateTime.toUtc().toIso8601String()``: ``.mmm`` then ``uuu`` only when not 0."""
    moment = moment.astimezone(datetime.timezone.utc)
    ms, us = divmod(moment.microsecond, 1000)
    frac = f"{ms:03d}" + (f"{us:03d}" if us else "")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + frac + "Z"


def timestamp(args) -> str:
    if getattr(args, "timestamp", None):
        return args.timestamp
    now = datetime.datetime.now(datetime.timezone.utc)
    now += datetime.timedelta(seconds=getattr(args, "skew_seconds", 0) or 0)
    return dart_utc_iso(now)


def sign(private_key, message: str) -> str:
    return b32(private_key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256()))


def verify(public_key, message: str, signature_b32) -> bool:
    if not isinstance(signature_b32, str):
        return False
    try:
        raw = base64.b32decode(signature_b32)
    except (ValueError, TypeError):
        return False
    try:
        public_key.verify(raw, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


# ---- State ----

def load_state(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise PhoneError(f"no state file {path}: enrol first")
    except json.JSONDecodeError as e:
        raise PhoneError(f"state file {path} is not JSON: {e}")


def save_state(path: str, state: dict) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".push-phone-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def private_key_of(state: dict):
    return serialization.load_pem_private_key(state["private_key_pem"].encode("ascii"), None)


def signing_key(state: dict, args):
    """The phone's key, or with ``--forge`` a fresh one of the same size (a forged phone)."""
    if getattr(args, "forge", False):
        return rsa.generate_private_key(public_exponent=65537,
                                        key_size=state.get("key_bits", APP_KEY_BITS))
    return private_key_of(state)


def enrolled(state: dict) -> None:
    if not state.get("server_public_key"):
        raise PhoneError("the state has no server public key: the enrolment did not finish")


# ---- HTTP ----

def override_url(url: str, override) -> str:
    """``url`` with the scheme, host and port of ``override`` (its path and query kept)."""
    if not override:
        return url
    o = urllib.parse.urlsplit(override)
    if not o.scheme or not o.netloc:
        raise PhoneError(f"--url-override {override!r} needs a scheme and a host")
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((o.scheme, o.netloc, u.path, u.query, u.fragment))


def exchange(method: str, url: str, params: dict, verify_tls: bool) -> dict:
    """One form request as the app's HTTP client sends it: the request and the answer."""
    encoded = urllib.parse.urlencode(params)
    if method == "GET":
        full = url + ("&" if urllib.parse.urlsplit(url).query else "?") + encoded
        req = urllib.request.Request(full, method="GET")
    else:
        req = urllib.request.Request(url, data=encoded.encode("ascii"), method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    req.add_header("User-Agent", "privacyIDEA-App/push-phone-simulator")
    context = None
    if url.lower().startswith("https") and not verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT, context=context) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise PhoneError(f"{method} {url}: {e}")
    text = body.decode("utf-8", "replace")
    out = {"request": {"method": method, "url": url, "params": params}, "http_status": status}
    try:
        out["response"] = json.loads(text)
    except json.JSONDecodeError:
        out["response"] = None
        out["response_text"] = text
    return out


def result(out: dict) -> dict:
    r = out.get("response")
    return r.get("result", {}) if isinstance(r, dict) and isinstance(r.get("result"), dict) else {}


def refusal(out: dict) -> str:
    """One line saying why the server's answer is not a success."""
    res = result(out)
    err = res.get("error") if isinstance(res.get("error"), dict) else {}
    if err:
        return f"HTTP {out['http_status']}: ERR{err.get('code')} {err.get('message')}"
    if out.get("response") is None:
        return f"HTTP {out['http_status']}: not JSON: {out.get('response_text', '')[:200]!r}"
    return f"HTTP {out['http_status']}: status {res.get('status')!r}, value {res.get('value')!r}"


def ok_status(out: dict) -> bool:
    return out["http_status"] == 200 and result(out).get("status") is True


def verify_tls(state: dict, args) -> bool:
    return not (getattr(args, "insecure", False) or state.get("sslverify") == "0")


# ---- Commands ----

def parse_uri(uri: str) -> dict:
    parts = urllib.parse.urlsplit(uri)
    # eduMFA's push token (edupush, for the eduMFA Authenticator, a fork of the same app) speaks
    # the same protocol under the URI edumfa-push://edumfa/LABEL?... (eduMFA's
    # ``edumfa/lib/tokens/pushtoken.py``, ``get_push_url_prefix``); it has no poll_only.
    privacyidea = parts.scheme.lower() in ("otpauth", "pia") and parts.netloc.lower() == "pipush"
    edumfa = parts.scheme.lower() == "edumfa-push" and parts.netloc.lower() == "edumfa"
    if not (privacyidea or edumfa):
        raise PhoneError(f"not a push enrolment URI (otpauth://pipush/... or edumfa-push://edumfa/...): {uri[:80]!r}")
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    label = urllib.parse.unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    for required in ("url", "serial", "v"):
        if required not in query:
            raise PhoneError(f"the URI has no {required}")
    if query["v"] != "1":
        raise PhoneError(f"the URI's version v={query['v']!r} is not supported (the app knows 1)")
    if "enrollment_credential" not in query:
        raise PhoneError("the URI has no enrollment_credential")
    try:
        ttl = int(query.get("ttl", "10"))
    except ValueError:
        raise PhoneError(f"the URI's ttl {query.get('ttl')!r} is not a number of minutes")
    url = query["url"]
    if not urllib.parse.urlsplit(url).scheme:
        raise PhoneError(f"the URI's url {url!r} is not a URL")
    return {
        "label": label,
        "issuer": query.get("issuer", ""),
        "serial": query["serial"],
        "url": url,
        "ttl_minutes": ttl,
        "enrollment_credential": query["enrollment_credential"],
        "sslverify": "0" if query.get("sslverify", "1") == "0" else "1",
        "poll_only": query.get("poll_only", "").lower() in ("true", "1"),
        "pin": query.get("pin") == "True",
        "v": query["v"],
        "query": query,
    }


def cmd_enrol(args) -> dict:
    info = parse_uri(args.uri)
    bits = args.key_bits or APP_KEY_BITS
    if bits < 1024:
        raise PhoneError("--key-bits must be at least 1024")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if args.fbtoken is not None:
        fbtoken = args.fbtoken
    elif info["poll_only"]:
        fbtoken = NO_FIREBASE_TOKEN
    else:
        raise PhoneError("the URI is not poll-only: give --fbtoken (the phone's Firebase token)")
    now = datetime.datetime.now(datetime.timezone.utc)
    state = dict(info)
    state.update({
        "uri": args.uri,
        "effective_url": override_url(info["url"], args.url_override),
        "scanned_at": dart_utc_iso(now),
        "expires_at": dart_utc_iso(now + datetime.timedelta(minutes=info["ttl_minutes"])),
        "key_bits": bits,
        "private_key_pem": key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode("ascii"),
        "pubkey": spki_base64(key.public_key()),
        "fbtoken": fbtoken,
        "insecure": bool(args.insecure),
        "server_public_key": None,
    })
    save_state(args.state, state)
    params = {
        "enrollment_credential": info["enrollment_credential"],
        "serial": info["serial"],
        "fbtoken": fbtoken,
        "pubkey": state["pubkey"],
    }
    out = exchange("POST", state["effective_url"], params, verify_tls(state, args))
    out["serial"] = info["serial"]
    if not ok_status(out):
        raise Refused(refusal(out), out)
    detail = out["response"].get("detail") or {}
    server_key = detail.get("public_key")
    if not isinstance(server_key, str):
        raise Refused("the answer has no detail.public_key", out)
    try:
        load_server_key(server_key)
    except PhoneError as e:
        raise Refused(str(e), out)
    state["server_public_key"] = server_key
    state["enrolled_at"] = dart_utc_iso(datetime.datetime.now(datetime.timezone.utc))
    save_state(args.state, state)
    return out


def challenge_message(ch: dict) -> str:
    """What the server signed for challenge ``ch``, as the app rebuilds it."""
    sslverify = "1" if ch.get("sslverify") == "1" else "0"
    msg = f"{ch.get('nonce')}|{ch.get('url')}|{ch.get('serial')}|{ch.get('question')}|" \
          f"{ch.get('title')}|{sslverify}"
    if "require_presence" in ch:
        msg += f"|{ch['require_presence']}"
    elif "display_code" in ch:
        msg += f"|{ch['display_code']}"
    return msg


def cmd_poll(args) -> dict:
    state = load_state(args.state)
    enrolled(state)
    serial = args.serial_override or state["serial"]
    ts = timestamp(args)
    params = {"serial": serial, "timestamp": ts,
              "signature": sign(signing_key(state, args), f"{serial}|{ts}")}
    out = exchange("GET", state["effective_url"], params, verify_tls(state, args))
    if not ok_status(out):
        raise Refused(refusal(out), out)
    value = result(out).get("value")
    if not isinstance(value, list):
        raise Refused(f"result.value is not a list of challenges: {value!r}", out)
    server_key = load_server_key(state["server_public_key"])
    challenges, bad = [], []
    required = ("nonce", "url", "serial", "question", "title", "sslverify", "signature")
    for ch in value:
        if not isinstance(ch, dict):
            bad.append(f"challenge {ch!r} is not an object")
            continue
        item = dict(ch)
        problems = [f"{k} is not a string" for k in required if not isinstance(ch.get(k), str)]
        if ch.get("serial") != state["serial"]:
            problems.append(f"serial {ch.get('serial')!r} is not this token's")
        item["signed_message"] = challenge_message(ch)
        item["server_signature_ok"] = verify(server_key, item["signed_message"], ch.get("signature"))
        if not item["server_signature_ok"]:
            problems.append("the server's signature does not verify")
        if "require_presence" in ch:
            item["presence_options"] = ch["require_presence"].split(",") \
                if isinstance(ch["require_presence"], str) else None
        item["problems"] = problems
        bad += [f"{ch.get('nonce')}: {p}" for p in problems]
        challenges.append(item)
    out["challenges"] = challenges
    state["last_poll"] = {"timestamp": ts, "nonces": [c.get("nonce") for c in challenges]}
    save_state(args.state, state)
    if bad and not args.no_verify:
        raise Refused("; ".join(bad), out)
    return out


def cmd_answer(args) -> dict:
    state = load_state(args.state)
    enrolled(state)
    serial = args.serial_override or state["serial"]
    signed_serial = args.sign_as_serial or serial
    message = f"{args.nonce}|{signed_serial}"
    params = {"nonce": args.nonce, "serial": serial}
    if args.decline:
        message += "|decline"
        params["decline"] = "1"
        if args.decline_reason is not None:
            message += f"|{args.decline_reason}"
            params["decline_reason"] = args.decline_reason
    elif args.decline_reason is not None:
        raise PhoneError("--decline-reason needs --decline")
    if args.presence is not None:
        message += f"|{args.presence}"
        params["presence_answer"] = args.presence
    params["signature"] = sign(signing_key(state, args), message)
    out = exchange("POST", state["effective_url"], params, verify_tls(state, args))
    out["signed_message"] = message
    out["forged"] = bool(args.forge)
    if not ok_status(out) or result(out).get("value") is not True:
        raise Refused(refusal(out), out)
    return out


def cmd_update_fbtoken(args) -> dict:
    state = load_state(args.state)
    enrolled(state)
    serial = args.serial_override or state["serial"]
    ts = timestamp(args)
    message = f"{args.new}|{serial}|{ts}"
    params = {"new_fb_token": args.new, "serial": serial, "timestamp": ts,
              "signature": sign(signing_key(state, args), message)}
    out = exchange("POST", state["effective_url"], params, verify_tls(state, args))
    out["signed_message"] = message
    out["forged"] = bool(args.forge)
    if not ok_status(out) or result(out).get("value") is not True:
        raise Refused(refusal(out), out)
    state["fbtoken"] = args.new
    save_state(args.state, state)
    return out


def cmd_raw_signature(args) -> dict:
    state = load_state(args.state)
    return {"data": args.data, "signature": sign(private_key_of(state), args.data),
            "timestamp_now": dart_utc_iso(datetime.datetime.now(datetime.timezone.utc))}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="push_phone.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("enrol", help="the second enrolment step for an otpauth://pipush URI")
    e.add_argument("--uri", required=True)
    e.add_argument("--state", required=True)
    e.add_argument("--fbtoken", help=f"the Firebase token to send (default for a poll-only "
                                     f"token: {NO_FIREBASE_TOKEN!r}, as the app sends)")
    e.add_argument("--key-bits", type=int, help=f"RSA key size (default {APP_KEY_BITS}, the app's)")
    e.add_argument("--url-override", help="replace the registration URL's scheme, host and port")
    e.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    e.set_defaults(run=cmd_enrol)

    def clock(q):
        q.add_argument("--timestamp", help="the timestamp to sign and send (default: now, "
                                           "in the app's ISO format)")
        q.add_argument("--skew-seconds", type=float, default=0,
                       help="move the phone's clock by this many seconds")

    o = sub.add_parser("poll", help="GET the open challenges and verify the server's signatures")
    o.add_argument("--state", required=True)
    clock(o)
    o.add_argument("--serial-override", help="send (and sign) this serial instead of the token's")
    o.add_argument("--forge", action="store_true", help="sign with a fresh random key")
    o.add_argument("--no-verify", action="store_true",
                   help="exit 0 even when a challenge's signature does not verify")
    o.add_argument("--insecure", action="store_true")
    o.set_defaults(run=cmd_poll)

    a = sub.add_parser("answer", help="POST the signed answer to a challenge")
    a.add_argument("--state", required=True)
    a.add_argument("--nonce", required=True)
    a.add_argument("--decline", action="store_true")
    a.add_argument("--decline-reason", help="newer apps' decline_reason (unknown_trigger, "
                                            "cancelled); signed after |decline")
    a.add_argument("--presence", help="the number-matching answer (presence_answer)")
    a.add_argument("--serial-override", help="send (and sign) this serial instead of the token's")
    a.add_argument("--sign-as-serial", help="sign over this serial, whatever serial is sent")
    a.add_argument("--forge", action="store_true", help="sign with a fresh random key")
    a.add_argument("--insecure", action="store_true")
    a.set_defaults(run=cmd_answer)

    u = sub.add_parser("update-fbtoken", help="POST the app's Firebase-token update")
    u.add_argument("--state", required=True)
    u.add_argument("--new", required=True)
    clock(u)
    u.add_argument("--serial-override")
    u.add_argument("--forge", action="store_true", help="sign with a fresh random key")
    u.add_argument("--insecure", action="store_true")
    u.set_defaults(run=cmd_update_fbtoken)

    r = sub.add_parser("raw-signature", help="the phone's Base32 signature over a string")
    r.add_argument("--state", required=True)
    r.add_argument("--data", required=True)
    r.set_defaults(run=cmd_raw_signature)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        out = args.run(args)
    except PhoneError as e:
        print(f"push_phone {args.command}: {e}", file=sys.stderr)
        return 2
    except Refused as e:
        json.dump(e.output, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        print(f"push_phone {args.command}: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
