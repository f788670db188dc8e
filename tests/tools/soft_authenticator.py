#!/usr/bin/env python3
"""A software WebAuthn authenticator and client for Countersign's integration tests.

It plays both halves of what a browser and a security key send a relying party, written
independently of the Rust verifier (`countersign-webauthn`) so that the tests check the
verifier against a second reading of the standard (W3C Web Authentication Level 2/3 and
CTAP2's canonical CBOR), not against itself:

- ``create``: a registration (navigator.credentials.create). A fresh credential key (ES256 on
  P-256, EdDSA on Ed25519 or RS256 with RSA-2048), its credential id, the clientDataJSON of
  ``webauthn.create`` and the attestationObject in the format ``none``, ``packed`` (self
  attestation, or x5c with a leaf certificate issued on the spot by a given or generated root,
  §8.2.1) or ``fido-u2f`` (§8.6). The private key and the counter go to a JSON state file.
- ``get``: an assertion (navigator.credentials.get) by the credential in a state file: the
  authenticatorData, the clientDataJSON of ``webauthn.get`` and the signature over
  ``authenticatorData || SHA-256(clientDataJSON)``, with the sign counter advanced (or set) and
  stored back. The counter is the explicit ``counter`` when given; otherwise it stays 0 for a
  credential created with counter 0 and ``keep_zero`` (an authenticator without a counter),
  and is the stored one plus 1 in every other case.
- ``make-root``: an attestation root (key and certificate) to pass to several ``create`` calls
  and to trust in the relying party.

The state file (JSON, written atomically with mode 0600) holds ``private_key_pem`` (PKCS#8),
``credential_id`` and ``user_handle`` (base64url), ``rp_id``, ``alg`` and ``counter``, and
what ``get`` needs besides (the counter it was created with, ``keep_zero``, the backup flags,
whether it is a U2F credential).

Each command reads one JSON object on stdin and writes one JSON object on stdout
(``python3 soft_authenticator.py create < options.json``); the same functions are importable
(``create(options)``, ``get(options)``, ``make_root(options)``). Binary values travel as
base64url without padding. A refused option ends the CLI with exit status 2 and the reason on
stderr (``AuthenticatorError`` when imported). The options each command takes are listed in
``CREATE_OPTIONS``, ``GET_OPTIONS`` and ``ROOT_OPTIONS``; unknown ones are refused, so a typo
in a test fails loudly instead of being ignored.

clientDataJSON is serialised as the standard's CollectedClientData serialisation (§5.8.1.1):
``type``, ``challenge``, ``origin``, ``crossOrigin`` in that order (``topOrigin`` after them
when given), no spaces, strings escaped as CCDToString does. CBOR is written in CTAP2's
canonical form (shortest heads, definite lengths, map keys sorted by major type, then length,
then bytes).

What it deliberately does not do:

- It is not a safe authenticator: private keys lie unencrypted in the state file, for tests.
- It is not a browser: it does not check that the RP id is a registrable suffix of the
  origin's host, nor that the origin is secure, and ``get`` signs for whatever RP id, origin,
  challenge and ``type`` it is given (the RP id defaults to the one stored). It does not
  base64url-encode the challenge either: the caller passes the exact string clientDataJSON
  must carry. Tests use this to build the ceremonies a relying party must refuse, as they use
  ``tamper_authenticator_data`` and ``tamper_signature``, ``up: false`` and ``bs`` without
  ``be``, which no honest authenticator sends.
- No transport or CTAP protocol (HID, NFC, BLE, PIN/UV protocol), no discoverable-credential
  lookup or allowCredentials matching (one state file is one credential), no extensions (the
  ED flag is never set), no attestation formats other than ``none``, ``packed`` and
  ``fido-u2f`` (no TPM, Android, Apple, ECDAA, enterprise), and no AAGUID zeroing on the
  client's behalf.
- ``fido-u2f`` models a U2F key behind a browser: ES256 only, AAGUID zero, signCount 0 at
  registration, no user verification (``uv: true`` is refused) and no backup flags.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import sys
import tempfile
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

ES256 = -7
EDDSA = -8
RS256 = -257
ALGORITHMS = (ES256, EDDSA, RS256)
ATTESTATIONS = ("none", "packed-self", "packed-x5c", "fido-u2f")

# authenticatorData flags (§6.1).
FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_BE = 0x08
FLAG_BS = 0x10
FLAG_AT = 0x40

# id-fido-gen-ce-aaguid (§8.2.1).
OID_FIDO_GEN_CE_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")

STATE_VERSION = 1
MAX_COUNTER = 0xFFFFFFFF

_REQUIRED = object()


class AuthenticatorError(ValueError):
    """An option the authenticator refuses, or a state file it cannot use."""


# --- encodings -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Decodes base64url, with or without padding; refuses anything else."""
    if not isinstance(text, str):
        raise AuthenticatorError(f"{what} must be a base64url string")
    stripped = text.rstrip("=")
    if any(c in "+/" for c in stripped):
        raise AuthenticatorError(f"{what} is base64, not base64url")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except ValueError as e:
        raise AuthenticatorError(f"{what} is not base64url: {e}") from None


def _cbor_head(major: int, argument: int) -> bytes:
    """The initial byte(s) of a CBOR item, with the shortest argument encoding."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | extra]) + argument.to_bytes(size, "big")
    raise AuthenticatorError(f"integer {argument} does not fit CBOR's 64 bits")


def cbor_encode(value: Any) -> bytes:
    """Encodes ints, bytes, str, bool, None, lists and dicts as CTAP2 canonical CBOR."""
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, (bytes, bytearray)):
        return _cbor_head(2, len(value)) + bytes(value)
    if isinstance(value, str):
        encoded = value.encode("utf-8")
        return _cbor_head(3, len(encoded)) + encoded
    if isinstance(value, (list, tuple)):
        return _cbor_head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        entries = [(cbor_encode(k), cbor_encode(v)) for k, v in value.items()]
        # CTAP2 §8 (canonical CBOR): lower major type first, then shorter, then bytewise lower.
        entries.sort(key=lambda kv: (kv[0][0] >> 5, len(kv[0]), kv[0]))
        for (a, _), (b, _) in zip(entries, entries[1:]):
            if a == b:
                raise AuthenticatorError("a CBOR map has a duplicate key")
        return _cbor_head(5, len(entries)) + b"".join(k + v for k, v in entries)
    raise AuthenticatorError(f"cannot encode {type(value).__name__} as CBOR")


def _ccd_string(text: str) -> str:
    """CCDToString (§5.8.1.2): a JSON string with only '"' and '\\' escaped by a backslash and
    the other code points below U+0020 as \\u and four lower-case hex digits."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise AuthenticatorError("a clientDataJSON string holds a lone surrogate")
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def client_data_json(
    ceremony: str, challenge: str, origin: str, cross_origin: bool, top_origin: str | None = None
) -> bytes:
    """clientDataJSON as a browser serialises CollectedClientData (§5.8.1.1)."""
    parts = [
        '{"type":',
        _ccd_string(ceremony),
        ',"challenge":',
        _ccd_string(challenge),
        ',"origin":',
        _ccd_string(origin),
        ',"crossOrigin":',
        "true" if cross_origin else "false",
    ]
    if top_origin is not None:
        parts += [',"topOrigin":', _ccd_string(top_origin)]
    parts.append("}")
    return "".join(parts).encode("utf-8")


# --- options ---------------------------------------------------------------------------------


def _options(
    given: Any, known: dict[str, tuple[type | tuple[type, ...], Any]], command: str
) -> dict[str, Any]:
    """Checks `given` against `known` (name -> (type, default or _REQUIRED)); fills defaults."""
    if not isinstance(given, dict):
        raise AuthenticatorError(f"{command}: the options must be a JSON object")
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise AuthenticatorError(f"{command}: unknown options {unknown} (known: {sorted(known)})")
    out = {}
    for name, (kind, default) in known.items():
        value = given.get(name)
        if value is None:
            if default is _REQUIRED:
                raise AuthenticatorError(f"{command}: option {name!r} is required")
            out[name] = default
            continue
        # bool is an int in Python; an int option must not accept true/false and vice versa.
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) != (bool in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise AuthenticatorError(f"{command}: option {name!r} must be {names}, got {value!r}")
        out[name] = value
    return out


CREATE_OPTIONS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "rp_id": (str, _REQUIRED),
    "origin": (str, _REQUIRED),
    "challenge": (str, _REQUIRED),
    "user_id": (str, _REQUIRED),
    "user_name": (str, ""),
    "alg": (int, ES256),
    "attestation": (str, "none"),
    "ca_key_pem": (str, None),
    "ca_cert_pem": (str, None),
    "aaguid": (str, "00" * 16),
    "uv": (bool, None),  # default: true, false for fido-u2f
    "up": (bool, True),
    "be": (bool, False),
    "bs": (bool, False),
    "counter": (int, 0),
    "keep_zero": (bool, False),
    "cross_origin": (bool, False),
    "top_origin": (str, None),
    "type": (str, "webauthn.create"),
    "state": (str, None),
}

GET_OPTIONS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "state": (str, _REQUIRED),
    "rp_id": (str, None),  # default: the stored one
    "origin": (str, _REQUIRED),
    "challenge": (str, _REQUIRED),
    "uv": (bool, None),  # default: true, false for fido-u2f
    "up": (bool, True),
    "be": (bool, None),  # default: as created
    "bs": (bool, None),  # default: as created
    "counter": (int, None),
    "keep_zero": (bool, None),  # default: as created
    "type": (str, "webauthn.get"),
    "cross_origin": (bool, False),
    "top_origin": (str, None),
    "tamper_authenticator_data": (int, None),  # flips bit 0 of this byte after signing
    "tamper_signature": (bool, False),  # flips bit 0 of the signature's last byte
    "user_handle": (bool, True),
}

ROOT_OPTIONS: dict[str, tuple[type | tuple[type, ...], Any]] = {
    "key_type": (str, "p256"),
    "common_name": (str, "Countersign Soft Authenticator Attestation Root"),
}


def _counter(value: int, what: str) -> int:
    if not 0 <= value <= MAX_COUNTER:
        raise AuthenticatorError(f"{what} {value} is outside 0..2^32-1")
    return value


# --- keys ------------------------------------------------------------------------------------


def _generate_key(alg: int) -> Any:
    if alg == ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if alg == EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    if alg == RS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise AuthenticatorError(f"alg {alg} is not supported (ES256 -7, EdDSA -8, RS256 -257)")


def _check_key(key: Any, alg: int) -> None:
    """Refuses a key that cannot sign with `alg`."""
    ok = (
        (alg == ES256 and isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1))
        or (alg == EDDSA and isinstance(key, ed25519.Ed25519PrivateKey))
        or (alg == RS256 and isinstance(key, rsa.RSAPrivateKey))
    )
    if not ok:
        raise AuthenticatorError(f"the stored key is not a key for alg {alg}")


def sign(key: Any, alg: int, message: bytes) -> bytes:
    """A signature in WebAuthn's encoding: ES256 ASN.1 DER, EdDSA raw 64 bytes, RS256
    PKCS#1 v1.5 over SHA-256."""
    if alg == ES256:
        return key.sign(message, ec.ECDSA(hashes.SHA256()))
    if alg == EDDSA:
        return key.sign(message)
    if alg == RS256:
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    raise AuthenticatorError(f"alg {alg} is not supported")


def _unsigned(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def cose_key(public_key: Any, alg: int) -> bytes:
    """The COSE_Key (RFC 9052/9053) of a credential public key, as authenticators encode it."""
    if alg == ES256:
        numbers = public_key.public_numbers()
        return cbor_encode({1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
    if alg == EDDSA:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cbor_encode({1: 1, 3: EDDSA, -1: 6, -2: raw})
    if alg == RS256:
        numbers = public_key.public_numbers()
        return cbor_encode({1: 3, 3: RS256, -1: _unsigned(numbers.n), -2: _unsigned(numbers.e)})
    raise AuthenticatorError(f"alg {alg} is not supported")


def _private_pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _load_private_pem(pem: str, what: str) -> Any:
    try:
        return serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError) as e:
        raise AuthenticatorError(f"{what} is not an unencrypted PEM private key: {e}") from None


# --- certificates ----------------------------------------------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def _validity(cert: x509.Certificate) -> tuple[datetime.datetime, datetime.datetime]:
    """notBefore and notAfter as aware UTC datetimes (cryptography before 42 has only naive)."""
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    utc = datetime.timezone.utc
    return cert.not_valid_before.replace(tzinfo=utc), cert.not_valid_after.replace(tzinfo=utc)


def _signing_hash(issuer_key: Any) -> hashes.HashAlgorithm | None:
    """The hash a CA key signs certificates with (what verifiers pair with its curve)."""
    if isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(issuer_key.curve.key_size, hashes.SHA256())
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    if isinstance(issuer_key, ed25519.Ed25519PrivateKey):
        return None
    raise AuthenticatorError("the CA key must be EC, RSA or Ed25519")


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def make_root(options: dict | None = None) -> dict:
    """A self-signed attestation root: `{"key_pem", "cert_pem"}`. Options: `key_type` ("p256",
    "p384" or "rsa2048"; default p256) and `common_name`."""
    o = _options(options or {}, ROOT_OPTIONS, "make-root")
    generators: dict[str, Callable[[], Any]] = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    if o["key_type"] not in generators:
        raise AuthenticatorError(f"make-root: key_type must be one of {sorted(generators)}")
    key = generators[o["key_type"]]()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Countersign Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, o["common_name"]),
        ]
    )
    now = _utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _signing_hash(key))
    )
    return {"key_pem": _private_pem(key), "cert_pem": _pem(cert)}


def _issuer(ca_key_pem: str | None, ca_cert_pem: str | None) -> tuple[Any, x509.Certificate]:
    """The CA that issues attestation certificates: the given one, or a fresh root."""
    if (ca_key_pem is None) != (ca_cert_pem is None):
        raise AuthenticatorError("create: give both ca_key_pem and ca_cert_pem, or neither")
    if ca_key_pem is None or ca_cert_pem is None:
        root = make_root()
        ca_key_pem, ca_cert_pem = root["key_pem"], root["cert_pem"]
    key = _load_private_pem(ca_key_pem, "ca_key_pem")
    try:
        cert = x509.load_pem_x509_certificate(ca_cert_pem.encode("ascii"))
    except ValueError as e:
        raise AuthenticatorError(f"ca_cert_pem is not a PEM certificate: {e}") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != cert.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise AuthenticatorError("ca_key_pem is not the key of ca_cert_pem")
    return key, cert


def _attestation_certificate(
    ca_key: Any, ca_cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, aaguid: bytes | None
) -> x509.Certificate:
    """An attestation certificate for `key`, issued by the CA. With `aaguid`, a packed
    attestation leaf as §8.2.1 requires: version 3; subject C, O, OU "Authenticator
    Attestation", CN; basic constraints CA false; id-fido-gen-ce-aaguid, not critical, holding
    the AAGUID as an OCTET STRING. Without, a U2F attestation certificate (subject C, O, CN)."""
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Countersign Test"),
    ]
    if aaguid is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, "Countersign Soft Authenticator"))
    ca_from, ca_until = _validity(ca_cert)
    now = _utcnow()
    not_before = max(now - datetime.timedelta(days=1), ca_from)
    not_after = min(now + datetime.timedelta(days=5 * 365), ca_until)
    if not_before >= not_after:
        raise AuthenticatorError("ca_cert_pem is not valid now")
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if aaguid is not None:
        # The extension's extnValue holds the DER of an OCTET STRING of the 16 AAGUID bytes.
        der_octet_string = bytes([0x04, len(aaguid)]) + aaguid
        builder = builder.add_extension(
            x509.UnrecognizedExtension(OID_FIDO_GEN_CE_AAGUID, der_octet_string), critical=False
        )
    return builder.sign(ca_key, _signing_hash(ca_key))


# --- state -----------------------------------------------------------------------------------


def _save_state(path: str, state: dict) -> None:
    """Writes the state file atomically, readable by its owner only (it holds a private key)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".soft-authenticator-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _load_state(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise AuthenticatorError(f"state {path!r} cannot be read: {e}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise AuthenticatorError(f"state {path!r} is not a soft authenticator state (version {STATE_VERSION})")
    return state


# --- ceremonies ------------------------------------------------------------------------------


def authenticator_data(rp_id: str, flags: int, counter: int, attested: bytes = b"") -> bytes:
    """authenticatorData (§6.1): SHA-256(rpId), flags, signCount (big-endian), attested
    credential data."""
    return hashlib.sha256(rp_id.encode("utf-8")).digest() + bytes([flags]) + counter.to_bytes(4, "big") + attested


def _flags(up: bool, uv: bool, be: bool, bs: bool) -> int:
    return (FLAG_UP if up else 0) | (FLAG_UV if uv else 0) | (FLAG_BE if be else 0) | (FLAG_BS if bs else 0)


def create(options: dict) -> dict:
    """A registration (see the module documentation and CREATE_OPTIONS)."""
    o = _options(options, CREATE_OPTIONS, "create")
    alg, attestation = o["alg"], o["attestation"]
    if alg not in ALGORITHMS:
        raise AuthenticatorError(f"create: alg {alg} is not supported (ES256 -7, EdDSA -8, RS256 -257)")
    if attestation not in ATTESTATIONS:
        raise AuthenticatorError(f"create: attestation must be one of {list(ATTESTATIONS)}")
    try:
        aaguid = bytes.fromhex(o["aaguid"])
    except ValueError:
        aaguid = b""
    if len(aaguid) != 16:
        raise AuthenticatorError("create: aaguid must be 32 hex digits")
    user_handle = b64url_decode(o["user_id"], "user_id")
    if not 1 <= len(user_handle) <= 64:
        raise AuthenticatorError("create: user_id must decode to 1 to 64 bytes (§5.4.3)")
    counter = _counter(o["counter"], "counter")
    if o["top_origin"] is not None and not o["cross_origin"]:
        raise AuthenticatorError("create: top_origin is only sent with cross_origin")
    u2f = attestation == "fido-u2f"
    uv = o["uv"] if o["uv"] is not None else not u2f
    if u2f:
        if alg != ES256:
            raise AuthenticatorError("create: fido-u2f needs alg -7 (ES256): U2F keys are P-256")
        if uv:
            raise AuthenticatorError("create: a fido-u2f authenticator cannot verify the user (uv)")
        if aaguid != bytes(16) or o["be"] or o["bs"]:
            raise AuthenticatorError("create: a fido-u2f authenticator has no AAGUID and no backup flags")

    key = _generate_key(alg)
    credential_id = os.urandom(64 if u2f else 32)
    public_cose = cose_key(key.public_key(), alg)
    cdj = client_data_json(o["type"], o["challenge"], o["origin"], o["cross_origin"], o["top_origin"])
    client_data_hash = hashlib.sha256(cdj).digest()
    attested = aaguid + len(credential_id).to_bytes(2, "big") + credential_id + public_cose
    flags = _flags(o["up"], uv, o["be"], o["bs"]) | FLAG_AT
    # A browser builds a U2F registration's authenticatorData itself: UP and AT, counter 0.
    auth_data = authenticator_data(o["rp_id"], flags, 0 if u2f else counter, attested)

    root_pem = None
    if attestation == "none":
        fmt, statement = "none", {}
    elif attestation == "packed-self":
        fmt, statement = "packed", {"alg": alg, "sig": sign(key, alg, auth_data + client_data_hash)}
    else:
        ca_key, ca_cert = _issuer(o["ca_key_pem"], o["ca_cert_pem"])
        attestation_key = ec.generate_private_key(ec.SECP256R1())
        cert = _attestation_certificate(ca_key, ca_cert, attestation_key, None if u2f else aaguid)
        x5c = [cert.public_bytes(serialization.Encoding.DER)]
        root_pem = _pem(ca_cert)
        if u2f:
            # §8.6: 0x00 || rpIdHash || clientDataHash || credentialId || publicKeyU2F.
            numbers = key.public_key().public_numbers()
            point = b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
            signed = b"\x00" + auth_data[:32] + client_data_hash + credential_id + point
            fmt, statement = "fido-u2f", {"sig": sign(attestation_key, ES256, signed), "x5c": x5c}
        else:
            signed = auth_data + client_data_hash
            fmt, statement = "packed", {"alg": ES256, "sig": sign(attestation_key, ES256, signed), "x5c": x5c}
    attestation_object = cbor_encode({"fmt": fmt, "attStmt": statement, "authData": auth_data})

    if o["state"] is not None:
        _save_state(
            o["state"],
            {
                "version": STATE_VERSION,
                "private_key_pem": _private_pem(key),
                "credential_id": b64url(credential_id),
                "rp_id": o["rp_id"],
                "user_handle": b64url(user_handle),
                "user_name": o["user_name"],
                "alg": alg,
                "counter": counter,
                "initial_counter": counter,
                "keep_zero": o["keep_zero"],
                "u2f": u2f,
                "be": o["be"],
                "bs": o["bs"],
                "aaguid": aaguid.hex(),
            },
        )
    return {
        "credential_id": b64url(credential_id),
        "client_data_json": b64url(cdj),
        "attestation_object": b64url(attestation_object),
        "authenticator_data": b64url(auth_data),
        "public_key_cose": b64url(public_cose),
        "root_pem": root_pem,
        "aaguid": aaguid.hex(),
        "alg": alg,
    }


def get(options: dict) -> dict:
    """An assertion by the credential in `state` (see the module documentation and
    GET_OPTIONS). Stores the sign count it used."""
    o = _options(options, GET_OPTIONS, "get")
    state = _load_state(o["state"])
    try:
        alg = state["alg"]
        key = _load_private_pem(state["private_key_pem"], "the stored private key")
        _check_key(key, alg)
        credential_id = state["credential_id"]
        stored = _counter(state["counter"], "the stored counter")
        u2f = bool(state.get("u2f", False))
        keep_zero = o["keep_zero"] if o["keep_zero"] is not None else bool(state.get("keep_zero", False))
        be = o["be"] if o["be"] is not None else bool(state.get("be", False))
        bs = o["bs"] if o["bs"] is not None else bool(state.get("bs", False))
        rp_id = o["rp_id"] if o["rp_id"] is not None else state["rp_id"]
        user_handle = state["user_handle"]
    except (KeyError, TypeError) as e:
        raise AuthenticatorError(f"state {o['state']!r} lacks {e}") from None
    uv = o["uv"] if o["uv"] is not None else not u2f
    if u2f and uv:
        raise AuthenticatorError("get: a fido-u2f authenticator cannot verify the user (uv)")
    if o["top_origin"] is not None and not o["cross_origin"]:
        raise AuthenticatorError("get: top_origin is only sent with cross_origin")

    if o["counter"] is not None:
        counter = _counter(o["counter"], "counter")
    elif keep_zero and stored == 0 and state.get("initial_counter") == 0:
        counter = 0
    else:
        counter = _counter(stored + 1, "the next counter")

    auth_data = bytearray(authenticator_data(rp_id, _flags(o["up"], uv, be, bs), counter))
    cdj = client_data_json(o["type"], o["challenge"], o["origin"], o["cross_origin"], o["top_origin"])
    signature = bytearray(sign(key, alg, bytes(auth_data) + hashlib.sha256(cdj).digest()))
    if o["tamper_authenticator_data"] is not None:
        index = o["tamper_authenticator_data"]
        if not -len(auth_data) <= index < len(auth_data):
            raise AuthenticatorError(f"get: tamper_authenticator_data {index} is outside 0..{len(auth_data) - 1}")
        auth_data[index] ^= 0x01
    if o["tamper_signature"]:
        # The last byte: ES256's DER stays well-formed, so only the verification can fail.
        signature[-1] ^= 0x01

    state["counter"] = counter
    _save_state(o["state"], state)
    return {
        "credential_id": credential_id,
        "authenticator_data": b64url(bytes(auth_data)),
        "client_data_json": b64url(cdj),
        "signature": b64url(bytes(signature)),
        "user_handle": user_handle if o["user_handle"] else None,
        "sign_count": counter,
    }


COMMANDS: dict[str, Callable[[dict], dict]] = {"create": create, "get": get, "make-root": make_root}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: soft_authenticator.py {{{'|'.join(COMMANDS)}}} < options.json > result.json", file=sys.stderr)
        return 2
    try:
        try:
            options = json.load(sys.stdin)
        except ValueError as e:
            raise AuthenticatorError(f"stdin is not one JSON object: {e}") from None
        result = COMMANDS[argv[0]](options)
    except AuthenticatorError as e:
        print(f"soft_authenticator: {e}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
