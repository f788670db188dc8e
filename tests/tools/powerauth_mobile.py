#!/usr/bin/env python3
"""A simulated PowerAuth 3.x mobile client (the "phone") for Countersign's integration tests.

It is an independent second implementation of the client side of PowerAuth protocol 3.3
(mobile SDK 1.9, PowerAuth server / restful-integration 1.9), able to speak 3.0, 3.1 and 3.2
by a flag. It was written from the public PowerAuth sources and test vectors only, never from
Countersign's server code, so the integration tests check the Rust server against a second
reading of the protocol. Python 3.11 standard library plus ``cryptography``.

Usage
=====

``python3 powerauth_mobile.py SUBCOMMAND [options]`` -- options come from argv (no stdin).
Every run prints exactly ONE JSON object on stdout. On success it has ``"ok": true``. When the
server refuses (HTTP status not 2xx, or a body that fails a protocol check) or something is
wrong locally, the JSON has ``"ok": false``, ``"error"``, and, where an HTTP exchange happened,
``"httpStatus"`` and ``"responseBody"`` (the server's body as text); a one-line message goes to
stderr and the exit status is 1 (server refused / protocol check failed) or 2 (usage or local
error). The device state lives in the JSON file given by ``--state PATH`` (plaintext: it is the
simulated phone). State is saved before a request is sent whenever the request consumed a
counter value, exactly like the SDK, so a refused request still advances CTR_DATA.

Subcommands (all network subcommands take ``--base URL``; ``--version 3.0|3.1|3.2|3.3``
overrides the protocol version stored in the state):

``selftest --vectors DIR``
    Runs the primitives over every vector file under DIR (pa-test-vectors/, pa-e2ee-vectors/)
    and then runs every client flow end to end against an in-process fake server (written only
    for the selftest, server half of ECIES, signatures, status blob, JWT) for 3.0-3.3. Prints
    ``{"ok":true,"vectors":{file: count},"flows":{...},"total":N}``; exits 1 on any mismatch.

``activate --base URL --app-key K --app-secret S --master-public-key B64 --code CODE
[--code-signature B64] [--otp OTP] [--password P] [--activation-name N] [--platform P]
[--device-info D] [--extras X] [--custom-attributes JSON] [--version 3.3] [--uncompressed-keys]
[--new-temp-key] [--timestamp-offset-ms N] [--reuse-nonce] --state FILE``
    3.3: ``/pa/v3/keystore/create`` (application scope) first, then ``/pa/v3/activation/create``.
    A code of the form ``CODE#SIGNATURE`` is accepted too. Prints activationId, fingerprint
    (the SDK's activation fingerprint), version, serverPublicKey, customAttributes, userInfo,
    activationRecovery.

``status --base URL --state FILE``
    ``/pa/v3/activation/status``; prints state (CREATED/PENDING_COMMIT/ACTIVE/BLOCKED/REMOVED/
    DEADLOCK), stateCode, currentVersion, upgradeVersion, failCount, maxFailCount, ctrLookAhead,
    ctrByte, counterMatched, counterDistance, counterResynced, customObject.

``sign --state FILE --factors F --method M --uri-id ID --body STR [--body-file PATH]
[--password P] [--nonce B64] [--reuse-nonce] [--ctr-skip N] [--keep-ctr]``
    Computes the ``X-PowerAuth-Authorization`` value; prints header, headerName, signature,
    signatureType, nonce, normalizedData (``METHOD&b64(uriId)&nonce&b64(body)``, what a
    relying service passes to verifySignature, i.e. WITHOUT ``&APP_SECRET``), dataForSigning
    (with it), version, ctrDataUsed. F is possession, knowledge, biometry, possession_knowledge,
    possession_biometry, possession_knowledge_biometry (knowledge/biometry alone are allowed
    for negative tests). A wrong ``--password`` decrypts the stored knowledge key into a wrong
    key, as in the SDK, so the knowledge component is wrong.

``signed-request --base URL --state FILE --factors F --method POST --uri-id ID --path PATH
--body STR [...sign options]``
    Signs and sends; prints httpStatus, responseBody (and responseJson when JSON), header.

``offline-sign --state FILE --factors F --uri-id ID --body STR --nonce B64 [--digits 8]``
    Offline (QR) signature: decimal components of ``--digits`` digits over
    ``POST&b64(uriId)&nonce&b64(body)&offline``; advances CTR_DATA; prints signature.

``token-create --base URL --state FILE --factors F [--password P] [--token-name NAME]``
    ``/pa/v3/token/create`` (signed + activation-scope ECIES, sharedInfo1 ``/pa/token/create``);
    stores and prints tokenId (and tokenSecret).

``token-header --state FILE [--token ID] [--timestamp-ms N] [--timestamp-offset-ms N]
[--reuse-nonce] [--version V]``
    Prints header/headerName ``X-PowerAuth-Token`` for a stored token (default: last created).

``token-remove --base URL --state FILE [--token ID] --factors possession``
    ``/pa/v3/token/remove`` signed; forgets the token locally on success.

``vault-unlock --base URL --state FILE --factors possession_knowledge --password P
[--reason X]``
    ``/pa/v3/vault/unlock``; decrypts the vault key with KEY_TRANSPORT, checks it decrypts the
    stored encrypted device private key into the key matching the device public key (what the
    SDK does with it); prints vaultKeyMatches, vaultKeySha256 (hex).

``remove --base URL --state FILE [--factors possession_knowledge --password P]``
    ``/pa/v3/activation/remove`` signed (default factors possession_knowledge).

``operation-list --base URL --state FILE [--token ID]``,
``operation-approve --base URL --state FILE --id ID [--data DATA] [--factors
possession_knowledge] [--password P]``, ``operation-reject --base URL --state FILE --id ID
--reason R``
    Mobile Token API of enrollment-server 1.9 (``/api/auth/token/app/operation/{list,
    authorize,cancel}``). ``operation-approve`` looks the operation's ``data`` up with a list
    call when ``--data`` is not given.

``replay --base URL --state FILE``
    Sends the exact bytes (method, path, headers, body) of the previous request again.
    Every network subcommand also takes ``--replay-last``, which does the same and nothing else.

Attack helpers: ``--reuse-nonce`` (reuse the previous ECIES nonce, signature nonce or token
nonce stored in the state), ``--timestamp-offset-ms N`` (shifts the ECIES timestamp and the
token timestamp by N ms, negative for too old), ``--ctr-skip N`` (sign with CTR_DATA N steps
ahead; the state then continues after the used value), ``--keep-ctr`` (do not advance CTR_DATA:
a counter replay), ``--replay-last``.

The wire contract (what is sent and expected)
=============================================

All bodies are JSON (``Content-Type: application/json``, ``Accept: application/json``),
serialized compactly; Base64 is standard with padding unless stated (JWT parts: base64url,
no padding). ECIES request object (``EciesEncryptedRequest``): ``ephemeralPublicKey``,
``encryptedData``, ``mac`` (3.0); ``+ nonce`` (3.1); ``+ timestamp`` (3.2, number, ms);
``+ temporaryKeyId`` (3.3, first key). ECIES response: ``encryptedData``, ``mac``
(3.0/3.1); ``+ nonce, timestamp`` (3.2+). Non-encrypted requests are wrapped as
``{"requestObject": ...}`` and responses are read from ``{"status":"OK","responseObject":...}``;
encrypted ones are bare ECIES JSON both ways.

- ``POST /pa/v3/keystore/create`` (3.3 only) body ``{"requestObject":{"jwt":J}}``, J =
  ``eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.`` + b64url({"applicationKey","activationId"?,
  "challenge"}) + "." + b64url(HMAC-SHA256(key, header.payload)); key = Base64-decoded
  APP_SECRET (application scope) or KDF_INTERNAL(KEY_TRANSPORT, decoded APP_SECRET)
  (activation scope). challenge = Base64(18 random bytes). Expects
  ``responseObject.jwt`` with header alg ES256, typ JWT, signed (JOSE r||s) by
  KEY_SERVER_MASTER_PRIVATE (application scope) or KEY_SERVER_PRIVATE (activation scope),
  claims ``sub`` (temporaryKeyId), ``publicKey``, ``applicationKey``, ``activationId``,
  ``challenge`` (must echo), ``iat_ms``, ``exp_ms``.
- ``POST /pa/v3/activation/create``: header ``X-PowerAuth-Encryption: PowerAuth
  version="V", application_key="K"``; body = ECIES(application scope, sh1
  ``/pa/generic/application``) of ``{"type":"CODE","identityAttributes":{"code":C},
  "customAttributes"?:{...},"activationData":ECIES(application scope, sh1 ``/pa/activation``)
  of {"devicePublicKey","activationName","extras"?,"activationOtp"?,"platform","deviceInfo"}}``.
  Response: ECIES of ``{"activationData":ECIES-response,"customAttributes"?,"userInfo"?}``;
  the inner decrypts to ``{"activationId","serverPublicKey","ctrData","activationRecovery"?}``.
- ``POST /pa/v3/activation/status`` body ``{"requestObject":{"activationId","challenge"}}``
  (challenge = Base64(16 random), omitted for 3.0); expects ``responseObject``
  ``{"activationId","encryptedStatusBlob","nonce","customObject"?}``.
- ``POST /pa/v3/activation/remove`` signed (uriId ``/pa/activation/remove``), body ``{}``.
- ``POST /pa/v3/token/create`` signed (uriId ``/pa/token/create``), body = ECIES(activation
  scope, sh1 ``/pa/token/create``) of ``{}``; response ECIES of ``{"tokenId","tokenSecret"}``.
- ``POST /pa/v3/token/remove`` signed (uriId ``/pa/token/remove``), body
  ``{"requestObject":{"tokenId":T}}``.
- ``POST /pa/v3/vault/unlock`` signed (uriId ``/pa/vault/unlock``), body = ECIES(activation
  scope, sh1 ``/pa/vault/unlock``) of ``{"reason":R}``; response ECIES of
  ``{"activationId","encryptedVaultEncryptionKey"}``.
- A signed request never carries ``X-PowerAuth-Encryption`` (the SDK leaves it out when it
  sends the signature header). The signature header is ``X-PowerAuth-Authorization:
  PowerAuth pa_version="V", pa_activation_id="A", pa_application_key="K", pa_nonce="N",
  pa_signature_type="F", pa_signature="S"``.
- Token header ``X-PowerAuth-Token: PowerAuth version="V", token_id="T",
  token_digest="D", nonce="N", timestamp="MS"``.
- Mobile Token: ``POST /api/auth/token/app/operation/list`` with ``X-PowerAuth-Token``, body
  ``{}`` (as the mtoken SDKs send it; the server reads no body); ``.../operation/authorize``
  signed (uriId ``/operation/authorize``) body ``{"requestObject":{"id","data"}}``; ``.../operation/cancel`` signed possession (uriId
  ``/operation/cancel``) body ``{"requestObject":{"id","reason"}}``.

Version-dependent rules implemented, and where they come from
==============================================================

(repository + path; every vector file under /work/shared/vectors/powerauth decides first)

- KDF(K, i) = AES-ECB(K, 0^8 || BE64(i)) (index in the LAST 8 bytes); KDF_INTERNAL(K, d) =
  HMAC-SHA256(K, d) with the two halves XORed; master secret = halves of the ECDH X XORed;
  possession 1, knowledge 2, biometry 3, transport 1000, vault 2000 --
  wultra/powerauth-mobile-sdk src/PowerAuth/protocol/ProtocolUtils.cpp; vectors
  compute-master-secret-key, compute-derived-keys.
- Signature: per factor key K_i, KEY_DERIVED = HMAC(K_i, CTR); for j < i KEY_DERIVED =
  HMAC(HMAC(K_{j+1}, CTR), KEY_DERIVED); component = HMAC(KEY_DERIVED, data). 3.0 and offline:
  decimal of the LAST 4 bytes (31 bits) mod 10^digits joined by ``-``; 3.1+: Base64 of the last
  16 bytes of each component concatenated. CTR = CTR_DATA (16 bytes), next CTR_DATA =
  halves-XOR of SHA256(CTR_DATA); (2.x used 0^8||BE64(counter)) -- ProtocolUtils.cpp
  CalculateSignature (cc7 HMAC_SHA256(data, key) argument order); vectors signatures-v2/v3/
  v31/offline, activation-status-blob-data (counter distance).
- Normalized data ``METHOD&b64(uriId)&b64nonce&b64(body)&APP_SECRET`` (APP_SECRET as its
  Base64 text), offline uses the literal ``offline`` instead of APP_SECRET -- ProtocolUtils.cpp
  NormalizeDataForSignature; header layout -- src/PowerAuth/protocol/Constants.cpp.
- Activation fingerprint (3.x): decimalize(SHA256(devicePubX || activationId || serverPubX)),
  X without leading zero bytes -- Session.cpp activationFingerprint; vector
  public-key-fingerprint-v3. (The legacy ``public-key-fingerprint.json`` hashes the Java
  BigInteger quirk array; reproduced only in the selftest.)
- Status blob: IV = KDF_INTERNAL(KDF(KEY_TRANSPORT, 3000), challenge || nonce); AES-CBC no
  padding with KEY_TRANSPORT; layout magic DEC0DED1, status, currentVersion, upgradeVersion,
  5 reserved, ctrByte, failCount, maxFailCount, ctrLookAhead, ctrDataHash =
  KDF_INTERNAL(KDF(KEY_TRANSPORT, 4000), CTR_DATA); counter distance = steps the local
  CTR_DATA must move forward to match (searched up to ctrLookAhead; the SDK then moves the
  local counter) -- vectors activation-status-blob-iv/-data (they decided the 3000/4000 keys);
  wultra/powerauth-crypto docs/Activation-Status.md. 3.0: no challenge, zero IV.
- ECIES: X9.63-SHA256 KDF to 48 bytes (K_ENC | K_MAC | K_IV); info = sh1 || ephemeral key
  bytes exactly as sent (3.0/3.1) and VERSION || sh1 || key (3.2+) --
  wultra/powerauth-crypto powerauth-java-crypto/.../encryptor/model/EncryptorId.java
  getEciesSharedInfo1, .../ecies/EciesEnvelopeKey.java, mobile SDK src/PowerAuth/ECIES.cpp.
  IV = zero (3.0), KDF_INTERNAL(K_IV, nonce) (3.1+; a 3.1 response reuses the request IV,
  3.2+ responses carry their own nonce). sharedInfo2 base = SHA256(APP_SECRET text)
  (application) or HMAC(KEY_TRANSPORT, APP_SECRET text) (activation). sharedInfo2 = base
  (3.0/3.1) or concatWithSizes(base, nonce, BE64(timestamp), ephemeralKey|empty for responses,
  associatedData) with associatedData = concatWithSizes(version, appKey[, activationId]
  [, temporaryKeyId (3.3)]) -- powerauth-java-crypto/.../lib/util/EciesUtils.java; every
  E2ee vector (3.0-3.3, both scopes) decided. MAC = HMAC(K_MAC, ciphertext || sharedInfo2).
  Ephemeral and device keys are sent COMPRESSED (SDK), ``--uncompressed-keys`` to send 65 bytes.
- 3.3 temporary keys: SDK GetTemporaryKeyTask.java
  (proj-android/.../sdk/impl/GetTemporaryKeyTask.java, GetTemporaryKeyRequest/Response.java,
  endpoints/GetTemporaryKeyEndpoint.java); server powerauth-java-server/.../tasks/
  TemporaryKeyBehavior.java (HMAC key = decoded APP_SECRET, or deriveSecretKeyHmac(transport,
  decoded APP_SECRET) = KDF_INTERNAL; ES256 response with iat_ms/exp_ms).
- Token digest: HMAC-SHA256(tokenSecret, nonceBytes & timestamp) (3.0/3.1) or
  (nonceBytes & timestamp & version) (3.2+), timestamp in ms as decimal text --
  powerauth-java-crypto/.../lib/util/TokenUtils.java computeTokenDigest; header layout --
  mobile SDK src/PowerAuth/HttpHeaderHelper.cpp buildTokenHeader.
- ``X-PowerAuth-Encryption`` keys ``version``, ``application_key``, ``activation_id`` --
  powerauth-crypto powerauth-java-http PowerAuthEncryptionHttpHeader.java.
- Request envelopes, ``{}`` for a missing request object, no encryption header with a
  signature -- proj-android/.../networking/client/HttpRequestHelper.java, JsonSerialization.java.
- Activation layers: proj-android/.../networking/model/request/ActivationLayer1Request.java
  (``type``, ``identityAttributes``, ``customAttributes``, ``activationData``),
  ActivationLayer2Request.java.
- Knowledge key stored as AES(PBKDF2-HMAC-SHA1(password, salt 16 B, 10000 it.), K, zero IV)
  and the vault-protected device private key AES-CBC-PKCS7(KEY_ENCRYPTION_VAULT, 0 IV) --
  ProtocolUtils.cpp LockSignatureKeys, Session.cpp completeActivation.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

VERSIONS = ("3.0", "3.1", "3.2", "3.3")
DEFAULT_VERSION = "3.3"
ZERO_IV = bytes(16)


class Refused(Exception):
    """The server refused, or its answer failed a protocol check (exit status 1)."""

    def __init__(self, message: str, status: int | None = None, body: bytes | None = None):
        super().__init__(message)
        self.status = status
        self.body = body


class LocalError(Exception):
    """A usage or local state error (exit status 2)."""


# ------------------------------------------------------------------------------------------
# Encoding helpers
# ------------------------------------------------------------------------------------------


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def b64url_e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_bytes(obj: Any) -> bytes:
    """Compact JSON, the form Gson (the SDK's serializer) produces; null members left out."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------------------------------
# Cryptographic primitives
# ------------------------------------------------------------------------------------------


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def xor_halves(data: bytes) -> bytes:
    """convert32Bto16B / ReduceSharedSecret: the two 16-byte halves XORed."""
    half = len(data) // 2
    return bytes(a ^ b for a, b in zip(data[:half], data[half:]))


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes, padding: bool = True) -> bytes:
    if padding:
        n = 16 - len(data) % 16
        data = data + bytes([n]) * n
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes, padding: bool = True) -> bytes:
    if len(data) == 0 or len(data) % 16:
        raise ValueError("ciphertext length is not a multiple of 16")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = dec.update(data) + dec.finalize()
    if not padding:
        return plain
    n = plain[-1]
    if n < 1 or n > 16 or plain[-n:] != bytes([n]) * n:
        raise ValueError("bad PKCS#7 padding")
    return plain[:-n]


def kdf(key: bytes, index: int) -> bytes:
    """KDF: AES(KEY, 0^8 || BE64(index)), the index in the last 8 bytes of the block."""
    return aes_cbc_encrypt(key, ZERO_IV, bytes(8) + struct.pack(">Q", index), padding=False)


def kdf_internal(key: bytes, index: bytes) -> bytes:
    """KDF_INTERNAL: HMAC-SHA256(KEY, index) reduced to 16 bytes by XOR of the halves."""
    return xor_halves(hmac_sha256(key, index))


def kdf_x963(shared: bytes, info: bytes, length: int = 48) -> bytes:
    return X963KDF(algorithm=hashes.SHA256(), length=length, sharedinfo=info).derive(shared)


def pbkdf2_sha1(password: bytes, salt: bytes, iterations: int, length: int = 16) -> bytes:
    return hashlib.pbkdf2_hmac("sha1", password, salt, iterations, length)


CURVE = ec.SECP256R1()


def ec_private_from_bytes(raw: bytes) -> ec.EllipticCurvePrivateKey:
    """Private scalar; Java BigInteger bytes (leading 0x00) are fine."""
    return ec.derive_private_key(int.from_bytes(raw, "big"), CURVE)


def ec_private_to_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes(32, "big")


def ec_public_from_bytes(raw: bytes) -> ec.EllipticCurvePublicKey:
    """Compressed (33) or uncompressed (65) X9.62 point."""
    return ec.EllipticCurvePublicKey.from_encoded_point(CURVE, raw)


def ec_public_to_bytes(key: ec.EllipticCurvePublicKey, compressed: bool = True) -> bytes:
    fmt = serialization.PublicFormat.CompressedPoint if compressed else serialization.PublicFormat.UncompressedPoint
    return key.public_bytes(serialization.Encoding.X962, fmt)


def ec_x(raw_public: bytes) -> bytes:
    """X coordinate, 32 bytes big-endian."""
    return ec_public_to_bytes(ec_public_from_bytes(raw_public), compressed=False)[1:33]


def ecdh(private: ec.EllipticCurvePrivateKey, public_raw: bytes) -> bytes:
    return private.exchange(ec.ECDH(), ec_public_from_bytes(public_raw))


def ecdsa_verify_der(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    try:
        ec_public_from_bytes(public_raw).verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def ecdsa_verify_jose(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    if len(signature) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    return ecdsa_verify_der(public_raw, der, data)


def ecdsa_sign_jose(private: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def concat_with_sizes(*items: bytes | str | None) -> bytes:
    """ByteUtils.concatWithSizes: each item as BE32(length) || bytes; None is an empty item."""
    out = bytearray()
    for item in items:
        if item is None:
            item = b""
        if isinstance(item, str):
            item = item.encode("utf-8")
        out += struct.pack(">I", len(item)) + item
    return bytes(out)


# ------------------------------------------------------------------------------------------
# PowerAuth key schedule, signatures, fingerprints, status blob
# ------------------------------------------------------------------------------------------

KEY_INDEX = {"possession": 1, "knowledge": 2, "biometry": 3, "transport": 1000, "vault": 2000}
FACTOR_TYPES = (
    "possession",
    "knowledge",
    "biometry",
    "possession_knowledge",
    "possession_biometry",
    "possession_knowledge_biometry",
)


def master_secret(device_private: ec.EllipticCurvePrivateKey, server_public_raw: bytes) -> bytes:
    return xor_halves(ecdh(device_private, server_public_raw))


def derive_keys(master: bytes) -> dict[str, bytes]:
    return {name: kdf(master, idx) for name, idx in KEY_INDEX.items()}


def next_ctr_data(ctr: bytes) -> bytes:
    return xor_halves(sha256(ctr))


def numeric_ctr(counter: int) -> bytes:
    """2.x counter block (only used by the v2 vectors)."""
    return bytes(8) + struct.pack(">Q", counter)


def decimalize(mac: bytes, digits: int = 8) -> str:
    """Dynamic truncation on the LAST 4 bytes, 31 bits, modulo 10^digits, zero padded."""
    o = len(mac) - 4
    value = ((mac[o] & 0x7F) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3]
    return str(value % (10**digits)).zfill(digits)


def signature_components(keys: list[bytes], ctr: bytes, data: bytes) -> list[bytes]:
    comps = []
    for i, key in enumerate(keys):
        derived = hmac_sha256(key, ctr)
        for j in range(i):
            # cc7 HMAC_SHA256(data, key): derived = HMAC(key=HMAC(K_{j+1}, ctr), data=derived)
            derived = hmac_sha256(hmac_sha256(keys[j + 1], ctr), derived)
        comps.append(hmac_sha256(derived, data))
    return comps


def format_signature(comps: list[bytes], fmt: str, digits: int = 8) -> str:
    if fmt == "decimal":
        return "-".join(decimalize(c, digits) for c in comps)
    return b64e(b"".join(c[-16:] for c in comps))


def signature_format_for(version: str) -> str:
    return "decimal" if version == "3.0" else "base64"


def normalized_data(method: str, uri_id: str, nonce_b64: str, body: bytes) -> str:
    return "&".join([method.upper(), b64e(uri_id.encode("utf-8")), nonce_b64, b64e(body)])


def fingerprint_v3(device_public_raw: bytes, activation_id: str, server_public_raw: bytes) -> str:
    dx = ec_x(device_public_raw).lstrip(b"\x00")
    sx = ec_x(server_public_raw).lstrip(b"\x00")
    return decimalize(sha256(dx + activation_id.encode("utf-8") + sx))


def fingerprint_v2(public_raw: bytes) -> str:
    return decimalize(sha256(ec_x(public_raw).lstrip(b"\x00")))


def java_biginteger_x(public_raw: bytes) -> bytes:
    """The array the legacy Java fingerprint hashed: BigInteger(x).toByteArray(), and when its
    first byte is 0x00, Arrays.copyOfRange(a, 1, 33) (zero padded at the end)."""
    x = int.from_bytes(ec_x(public_raw), "big")
    arr = x.to_bytes((x.bit_length() + 8) // 8, "big")  # with sign bit room, like Java
    if arr[0] == 0:
        arr = (arr[1:] + bytes(32))[:32]
    return arr


STATUS_NAMES = {1: "CREATED", 2: "PENDING_COMMIT", 3: "ACTIVE", 4: "BLOCKED", 5: "REMOVED", 128: "DEADLOCK"}


def status_blob_iv(transport: bytes, challenge: bytes, nonce: bytes) -> bytes:
    return kdf_internal(kdf(transport, 3000), challenge + nonce)


def ctr_data_hash(transport: bytes, ctr: bytes) -> bytes:
    return kdf_internal(kdf(transport, 4000), ctr)


def decode_status_blob(transport: bytes, encrypted: bytes, challenge: bytes | None, nonce: bytes | None) -> dict:
    iv = status_blob_iv(transport, challenge, nonce) if challenge is not None and nonce is not None else ZERO_IV
    blob = aes_cbc_decrypt(transport, iv, encrypted, padding=False)
    if len(blob) < 32 or blob[:4] != b"\xde\xc0\xde\xd1":
        raise Refused("status blob: bad magic (wrong key, IV or layout): " + blob[:4].hex())
    return {
        "stateCode": blob[4],
        "state": STATUS_NAMES.get(blob[4], "UNKNOWN"),
        "currentVersion": blob[5],
        "upgradeVersion": blob[6],
        "ctrByte": blob[12],
        "failCount": blob[13],
        "maxFailCount": blob[14],
        "ctrLookAhead": blob[15],
        "ctrDataHash": blob[16:32],
    }


def counter_distance(transport: bytes, local_ctr: bytes, server_hash: bytes, look_ahead: int) -> int | None:
    """How many steps the local CTR_DATA must move forward to equal the server's, or None."""
    ctr = local_ctr
    for distance in range(0, max(look_ahead, 0) + 1):
        if hmac.compare_digest(ctr_data_hash(transport, ctr), server_hash):
            return distance
        ctr = next_ctr_data(ctr)
    return None


def encrypt_status_blob(transport: bytes, info: dict, challenge: bytes | None, nonce: bytes | None) -> bytes:
    """Server half (selftest only)."""
    blob = (
        b"\xde\xc0\xde\xd1"
        + bytes([info["stateCode"], info["currentVersion"], info["upgradeVersion"]])
        + secrets.token_bytes(5)
        + bytes([info["ctrByte"], info["failCount"], info["maxFailCount"], info["ctrLookAhead"]])
        + info["ctrDataHash"]
    )
    iv = status_blob_iv(transport, challenge, nonce) if challenge is not None else ZERO_IV
    return aes_cbc_encrypt(transport, iv, blob, padding=False)


# ------------------------------------------------------------------------------------------
# ECIES (PowerAuth flavour)
# ------------------------------------------------------------------------------------------

SH1_APPLICATION_GENERIC = "/pa/generic/application"
SH1_ACTIVATION_GENERIC = "/pa/generic/activation"
SH1_ACTIVATION_LAYER2 = "/pa/activation"
SH1_TOKEN_CREATE = "/pa/token/create"
SH1_VAULT_UNLOCK = "/pa/vault/unlock"


class EciesScope:
    """Everything that binds one ECIES exchange: version, scope, sharedInfo1/2, associated data."""

    def __init__(
        self,
        version: str,
        sh1: str,
        app_key: str,
        app_secret: str,
        activation_id: str | None = None,
        transport_key: bytes | None = None,
        temporary_key_id: str | None = None,
    ):
        if version not in VERSIONS:
            raise LocalError("unsupported version " + version)
        self.version = version
        self.sh1 = sh1
        self.app_key = app_key
        self.app_secret = app_secret
        self.activation_id = activation_id
        self.transport_key = transport_key
        self.temporary_key_id = temporary_key_id if version == "3.3" else None
        if activation_id is None:
            self.sh2_base = sha256(app_secret.encode("utf-8"))
        else:
            if transport_key is None:
                raise LocalError("activation scope needs KEY_TRANSPORT")
            self.sh2_base = hmac_sha256(transport_key, app_secret.encode("utf-8"))

    @property
    def modern(self) -> bool:  # 3.2+: version-prefixed KDF info, timestamp, associated data
        return self.version in ("3.2", "3.3")

    def kdf_info(self, ephemeral_raw: bytes) -> bytes:
        sh1 = self.sh1.encode("utf-8")
        if self.modern:
            return self.version.encode("utf-8") + sh1 + ephemeral_raw
        return sh1 + ephemeral_raw

    def associated_data(self) -> bytes | None:
        if not self.modern:
            return None
        parts: list[str] = [self.version, self.app_key]
        if self.activation_id is not None:
            parts.append(self.activation_id)
        if self.version == "3.3":
            if self.temporary_key_id is None:
                raise LocalError("3.3 needs a temporary key id")
            parts.append(self.temporary_key_id)
        return concat_with_sizes(*parts)

    def shared_info2(self, nonce: bytes | None, timestamp: int | None, ephemeral_raw: bytes | None) -> bytes:
        if not self.modern:
            return self.sh2_base
        return concat_with_sizes(
            self.sh2_base, nonce, struct.pack(">q", timestamp), ephemeral_raw, self.associated_data()
        )


def ecies_iv(envelope: bytes, nonce: bytes | None) -> bytes:
    return kdf_internal(envelope[32:48], nonce) if nonce is not None else ZERO_IV


def ecies_seal(envelope: bytes, iv: bytes, plaintext: bytes, sh2: bytes) -> tuple[bytes, bytes]:
    encrypted = aes_cbc_encrypt(envelope[:16], iv, plaintext)
    return encrypted, hmac_sha256(envelope[16:32], encrypted + sh2)


def ecies_open(envelope: bytes, iv: bytes, encrypted: bytes, mac: bytes, sh2: bytes) -> bytes:
    expected = hmac_sha256(envelope[16:32], encrypted + sh2)
    if not hmac.compare_digest(expected, mac):
        raise Refused("ECIES MAC mismatch")
    return aes_cbc_decrypt(envelope[:16], iv, encrypted)


class EciesContext:
    """Client side of one request/response exchange."""

    def __init__(self, scope: EciesScope, envelope: bytes, request_nonce: bytes | None):
        self.scope = scope
        self.envelope = envelope
        self.request_nonce = request_nonce


def ecies_encrypt_request(
    scope: EciesScope,
    public_raw: bytes,
    plaintext: bytes,
    *,
    compressed: bool = True,
    timestamp_offset_ms: int = 0,
    nonce: bytes | None = None,
) -> tuple[dict, EciesContext]:
    ephemeral = ec.generate_private_key(CURVE)
    ephemeral_raw = ec_public_to_bytes(ephemeral.public_key(), compressed)
    envelope = kdf_x963(ecdh(ephemeral, public_raw), scope.kdf_info(ephemeral_raw))
    if scope.version == "3.0":
        nonce = None
    elif nonce is None:
        nonce = secrets.token_bytes(16)
    timestamp = now_ms() + timestamp_offset_ms if scope.modern else None
    sh2 = scope.shared_info2(nonce, timestamp, ephemeral_raw)
    encrypted, mac = ecies_seal(envelope, ecies_iv(envelope, nonce), plaintext, sh2)
    request: dict[str, Any] = {}
    if scope.version == "3.3":
        request["temporaryKeyId"] = scope.temporary_key_id
    request["ephemeralPublicKey"] = b64e(ephemeral_raw)
    request["encryptedData"] = b64e(encrypted)
    request["mac"] = b64e(mac)
    if nonce is not None:
        request["nonce"] = b64e(nonce)
    if timestamp is not None:
        request["timestamp"] = timestamp
    return request, EciesContext(scope, envelope, nonce)


def ecies_decrypt_response(ctx: EciesContext, response: Any) -> bytes:
    if not isinstance(response, dict) or "encryptedData" not in response or "mac" not in response:
        raise Refused("ECIES response lacks encryptedData/mac")
    try:
        encrypted = b64d(response["encryptedData"])
        mac = b64d(response["mac"])
    except (ValueError, TypeError) as exc:
        raise Refused("ECIES response is not Base64: %s" % exc) from exc
    scope = ctx.scope
    if scope.modern:
        if "nonce" not in response or "timestamp" not in response:
            raise Refused("ECIES %s response lacks nonce/timestamp" % scope.version)
        nonce = b64d(response["nonce"])
        timestamp = int(response["timestamp"])
        sh2 = scope.shared_info2(nonce, timestamp, None)
        iv = ecies_iv(ctx.envelope, nonce)
    else:
        sh2 = scope.shared_info2(None, None, None)
        iv = ecies_iv(ctx.envelope, ctx.request_nonce)
    return ecies_open(ctx.envelope, iv, encrypted, mac, sh2)


def ecies_server_decrypt(scope: EciesScope, private: ec.EllipticCurvePrivateKey, request: dict) -> tuple[bytes, bytes, bytes | None]:
    """Server half (selftest only): returns (plaintext, envelope, request nonce)."""
    ephemeral_raw = b64d(request["ephemeralPublicKey"])
    envelope = kdf_x963(ecdh(private, ephemeral_raw), scope.kdf_info(ephemeral_raw))
    nonce = b64d(request["nonce"]) if "nonce" in request else None
    timestamp = request.get("timestamp")
    sh2 = scope.shared_info2(nonce, timestamp, ephemeral_raw)
    plain = ecies_open(envelope, ecies_iv(envelope, nonce), b64d(request["encryptedData"]), b64d(request["mac"]), sh2)
    return plain, envelope, nonce


def ecies_server_encrypt(scope: EciesScope, envelope: bytes, request_nonce: bytes | None, plaintext: bytes,
                         nonce: bytes | None = None, timestamp: int | None = None) -> dict:
    """Server half: the response (explicit nonce/timestamp make it deterministic for vectors)."""
    if scope.modern:
        nonce = nonce if nonce is not None else secrets.token_bytes(16)
        timestamp = timestamp if timestamp is not None else now_ms()
        sh2 = scope.shared_info2(nonce, timestamp, None)
        encrypted, mac = ecies_seal(envelope, ecies_iv(envelope, nonce), plaintext, sh2)
        return {"encryptedData": b64e(encrypted), "mac": b64e(mac), "nonce": b64e(nonce), "timestamp": timestamp}
    sh2 = scope.shared_info2(None, None, None)
    encrypted, mac = ecies_seal(envelope, ecies_iv(envelope, request_nonce), plaintext, sh2)
    return {"encryptedData": b64e(encrypted), "mac": b64e(mac)}


# ------------------------------------------------------------------------------------------
# HTTP and the device state file
# ------------------------------------------------------------------------------------------

# The selftest swaps this for an in-process fake server: (method, url, headers, body) -> (status, body)
TRANSPORT: Callable[[str, str, dict, bytes], tuple[int, bytes]] | None = None

HEADER_AUTH = "X-PowerAuth-Authorization"
HEADER_ENCRYPTION = "X-PowerAuth-Encryption"
HEADER_TOKEN = "X-PowerAuth-Token"


def _raw_send(method: str, url: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    if TRANSPORT is not None:
        return TRANSPORT(method, url, headers, body)
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise LocalError("cannot reach %s: %s" % (url, exc.reason)) from exc


def http_send(st: "State", base: str, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    """Sends and remembers the exact request in the state (for --replay-last)."""
    full_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    full_headers.update(headers)
    st.data["lastRequest"] = {"method": method, "path": path, "headers": full_headers, "body": b64e(body)}
    st.save()
    return _raw_send(method, base.rstrip("/") + path, full_headers, body)


def body_text(body: bytes | None) -> str:
    return "" if body is None else body.decode("utf-8", errors="replace")


def require_2xx(status: int, body: bytes, what: str) -> None:
    if not 200 <= status < 300:
        raise Refused("%s: HTTP %d" % (what, status), status, body)


def parse_json(status: int, body: bytes, what: str) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused("%s: response is not JSON" % what, status, body) from exc


def unwrap_object_response(status: int, body: bytes, what: str) -> Any:
    require_2xx(status, body, what)
    doc = parse_json(status, body, what)
    if not isinstance(doc, dict) or str(doc.get("status", "")).upper() != "OK":
        raise Refused("%s: envelope status is not OK" % what, status, body)
    return doc.get("responseObject")


class State:
    """The simulated phone's persistent storage (a JSON file)."""

    def __init__(self, path: str, data: dict | None = None):
        self.path = path
        self.data = data if data is not None else {}

    @classmethod
    def load(cls, path: str, must_exist: bool = True) -> "State":
        if not os.path.exists(path):
            if must_exist:
                raise LocalError("state file %s does not exist" % path)
            return cls(path, {})
        with open(path, "r", encoding="utf-8") as fh:
            return cls(path, json.load(fh))

    def save(self) -> None:
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.data, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def get(self, key: str) -> Any:
        if key not in self.data:
            raise LocalError("state has no %s (not activated?)" % key)
        return self.data[key]

    def b(self, key: str) -> bytes:
        return b64d(self.get(key))

    def require_activation(self) -> None:
        if not self.data.get("activationId"):
            raise LocalError("the state holds no activation")


def effective_version(st: State, args: argparse.Namespace) -> str:
    version = getattr(args, "version", None) or st.data.get("version") or DEFAULT_VERSION
    if version not in VERSIONS:
        raise LocalError("unsupported version %s" % version)
    return version


# ------------------------------------------------------------------------------------------
# 3.3 temporary encryption keys (/pa/v3/keystore/create)
# ------------------------------------------------------------------------------------------

JWT_HS256_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}, as the SDK hardcodes it


def temp_key_request_jwt(app_key: str, activation_id: str | None, challenge: str, key: bytes) -> str:
    payload = b64url_e(json_bytes(drop_none({"applicationKey": app_key, "activationId": activation_id, "challenge": challenge})))
    signed = JWT_HS256_HEADER + "." + payload
    return signed + "." + b64url_e(hmac_sha256(key, signed.encode("ascii")))


def temp_key_hmac_key(app_secret: str, transport: bytes | None) -> bytes:
    secret = b64d(app_secret)
    return secret if transport is None else kdf_internal(transport, secret)


def verify_temp_key_response(jwt: str, verify_public_raw: bytes) -> dict:
    parts = jwt.split(".")
    if len(parts) != 3 or not all(parts):
        raise Refused("keystore: response is not a JWT")
    try:
        header = json.loads(b64url_d(parts[0]))
        claims = json.loads(b64url_d(parts[1]))
        signature = b64url_d(parts[2])
    except ValueError as exc:
        raise Refused("keystore: undecodable JWT: %s" % exc) from exc
    if header.get("typ") != "JWT" or header.get("alg") != "ES256":
        raise Refused("keystore: JWT header must be typ JWT, alg ES256: %r" % header)
    if not ecdsa_verify_jose(verify_public_raw, signature, (parts[0] + "." + parts[1]).encode("ascii")):
        raise Refused("keystore: JWT signature does not verify")
    return claims


def get_temporary_key(st: State, base: str, activation_scope: bool, force: bool) -> tuple[str, bytes]:
    name = "activation" if activation_scope else "application"
    cache = st.data.setdefault("temporaryKeys", {})
    cached = cache.get(name)
    activation_id = st.data.get("activationId") if activation_scope else None
    if (
        cached
        and not force
        and cached.get("expMs", 0) - now_ms() > 10_000
        and cached.get("activationId") == activation_id
        and cached.get("applicationKey") == st.data["appKey"]
    ):
        return cached["keyId"], b64d(cached["publicKey"])
    transport = st.b("transportKey") if activation_scope else None
    challenge = b64e(secrets.token_bytes(18))
    jwt = temp_key_request_jwt(st.data["appKey"], activation_id, challenge, temp_key_hmac_key(st.data["appSecret"], transport))
    status, body = http_send(st, base, "POST", "/pa/v3/keystore/create", {}, json_bytes({"requestObject": {"jwt": jwt}}))
    obj = unwrap_object_response(status, body, "keystore/create")
    if not isinstance(obj, dict) or not isinstance(obj.get("jwt"), str):
        raise Refused("keystore/create: responseObject.jwt missing", status, body)
    verify_key = st.b("serverPublicKey") if activation_scope else st.b("masterPublicKey")
    try:
        claims = verify_temp_key_response(obj["jwt"], verify_key)
    except Refused as exc:
        raise Refused(str(exc), status, body) from exc
    if claims.get("challenge") != challenge or claims.get("applicationKey") != st.data["appKey"]:
        raise Refused("keystore/create: JWT does not echo challenge/applicationKey", status, body)
    if activation_scope and claims.get("activationId") != activation_id:
        raise Refused("keystore/create: JWT does not echo activationId", status, body)
    if not claims.get("sub") or not claims.get("publicKey"):
        raise Refused("keystore/create: JWT lacks sub/publicKey", status, body)
    public_raw = b64d(claims["publicKey"])
    ec_public_from_bytes(public_raw)
    cache[name] = {
        "keyId": claims["sub"],
        "publicKey": claims["publicKey"],
        "expMs": int(claims.get("exp_ms", 0)),
        "iatMs": int(claims.get("iat_ms", 0)),
        "activationId": activation_id,
        "applicationKey": st.data["appKey"],
    }
    st.save()
    return claims["sub"], public_raw


# ------------------------------------------------------------------------------------------
# Signatures (X-PowerAuth-Authorization), offline signatures, tokens
# ------------------------------------------------------------------------------------------

PBKDF2_PASS_ITERATIONS = 10000


def lock_knowledge_key(knowledge: bytes, password: str, salt: bytes) -> bytes:
    return aes_cbc_encrypt(pbkdf2_sha1(password.encode("utf-8"), salt, PBKDF2_PASS_ITERATIONS), ZERO_IV, knowledge, padding=False)


def unlock_knowledge_key(st: State, password: str | None) -> bytes:
    if password is None:
        password = st.data.get("password")
    if password is None:
        raise LocalError("knowledge factor needs --password")
    key = pbkdf2_sha1(password.encode("utf-8"), st.b("passwordSalt"), PBKDF2_PASS_ITERATIONS)
    return aes_cbc_decrypt(key, ZERO_IV, st.b("cKnowledgeKey"), padding=False)


def factor_keys(st: State, factors: str, password: str | None) -> list[bytes]:
    if factors not in FACTOR_TYPES:
        raise LocalError("unknown factors %s (one of %s)" % (factors, ", ".join(FACTOR_TYPES)))
    keys = []
    parts = factors.split("_")
    if "possession" in parts:
        keys.append(st.b("possessionKey"))
    if "knowledge" in parts:
        keys.append(unlock_knowledge_key(st, password))
    if "biometry" in parts:
        keys.append(st.b("biometryKey"))
    return keys


def take_counter(st: State, ctr_skip: int, keep_ctr: bool) -> bytes:
    """The CTR_DATA used for this signature; moves the stored one past it (saved by caller)."""
    ctr = st.b("ctrData")
    for _ in range(max(ctr_skip, 0)):
        ctr = next_ctr_data(ctr)
    if not keep_ctr:
        st.data["ctrData"] = b64e(next_ctr_data(ctr))
        st.data["signatureCount"] = st.data.get("signatureCount", 0) + 1 + max(ctr_skip, 0)
    return ctr


def compute_authorization(st: State, version: str, factors: str, method: str, uri_id: str, body: bytes,
                          password: str | None = None, nonce_b64: str | None = None, reuse_nonce: bool = False,
                          ctr_skip: int = 0, keep_ctr: bool = False) -> dict:
    st.require_activation()
    keys = factor_keys(st, factors, password)
    if reuse_nonce:
        nonce_b64 = st.data.get("lastSignatureNonce") or nonce_b64
    if nonce_b64 is None:
        nonce_b64 = b64e(secrets.token_bytes(16))
    ctr = take_counter(st, ctr_skip, keep_ctr)
    normalized = normalized_data(method, uri_id, nonce_b64, body)
    data_for_signing = normalized + "&" + st.data["appSecret"]
    signature = format_signature(signature_components(keys, ctr, data_for_signing.encode("utf-8")), signature_format_for(version))
    header = (
        'PowerAuth pa_version="%s", pa_activation_id="%s", pa_application_key="%s", pa_nonce="%s", '
        'pa_signature_type="%s", pa_signature="%s"'
        % (version, st.data["activationId"], st.data["appKey"], nonce_b64, factors, signature)
    )
    st.data["lastSignatureNonce"] = nonce_b64
    st.save()
    return {
        "headerName": HEADER_AUTH,
        "header": header,
        "signature": signature,
        "signatureType": factors,
        "nonce": nonce_b64,
        "normalizedData": normalized,
        "dataForSigning": data_for_signing,
        "version": version,
        "ctrDataUsed": b64e(ctr),
    }


def token_header(st: State, version: str, token_id: str, timestamp_ms: int, reuse_nonce: bool = False) -> dict:
    tokens = st.data.get("tokens", {})
    if token_id not in tokens:
        raise LocalError("unknown token %s" % token_id)
    secret = b64d(tokens[token_id]["secret"])
    nonce = b64d(st.data["lastTokenNonce"]) if reuse_nonce and st.data.get("lastTokenNonce") else secrets.token_bytes(16)
    ts = str(timestamp_ms)
    data = nonce + b"&" + ts.encode("ascii")
    if version in ("3.2", "3.3"):
        data += b"&" + version.encode("ascii")
    digest = b64e(hmac_sha256(secret, data))
    st.data["lastTokenNonce"] = b64e(nonce)
    st.save()
    header = 'PowerAuth version="%s", token_id="%s", token_digest="%s", nonce="%s", timestamp="%s"' % (
        version, token_id, digest, b64e(nonce), ts)
    return {"headerName": HEADER_TOKEN, "header": header, "tokenId": token_id, "digest": digest,
            "nonce": b64e(nonce), "timestamp": ts, "version": version}


# ------------------------------------------------------------------------------------------
# Subcommands
# ------------------------------------------------------------------------------------------


def ecies_nonce_for(st: State, args: argparse.Namespace) -> bytes | None:
    if getattr(args, "reuse_nonce", False) and st.data.get("lastEciesNonce"):
        return b64d(st.data["lastEciesNonce"])
    return None


def remember_ecies(st: State, request: dict) -> None:
    if "nonce" in request:
        st.data["lastEciesNonce"] = request["nonce"]


def send_signed(st: State, args: argparse.Namespace, version: str, factors: str, uri_id: str, path: str,
                body: bytes, extra_headers: dict | None = None) -> tuple[dict, int, bytes]:
    auth = compute_authorization(
        st, version, factors, "POST", uri_id, body,
        password=getattr(args, "password", None),
        nonce_b64=getattr(args, "nonce", None),
        reuse_nonce=getattr(args, "reuse_nonce", False),
        ctr_skip=getattr(args, "ctr_skip", 0) or 0,
        keep_ctr=getattr(args, "keep_ctr", False),
    )
    headers = {HEADER_AUTH: auth["header"]}
    headers.update(extra_headers or {})
    status, resp = http_send(st, args.base, "POST", path, headers, body)
    return auth, status, resp


def parse_code(code: str, signature: str | None) -> tuple[str, str | None]:
    if "#" in code:
        code, embedded = code.split("#", 1)
        signature = signature or embedded
    return code, signature


def cmd_activate(args: argparse.Namespace) -> dict:
    old = State.load(args.state, must_exist=False)
    version = args.version or DEFAULT_VERSION
    if version not in VERSIONS:
        raise LocalError("unsupported version %s" % version)
    # Keep only what the attack helpers need from a previous run of this state file.
    st = State(args.state, {k: v for k, v in old.data.items() if k in ("lastEciesNonce", "lastRequest")})
    st.data.update({"version": version, "appKey": args.app_key, "appSecret": args.app_secret,
                    "masterPublicKey": args.master_public_key, "base": args.base})
    master_public = b64d(args.master_public_key)
    ec_public_from_bytes(master_public)
    b64d(args.app_secret)
    code, code_signature = parse_code(args.code, args.code_signature)
    if code_signature is not None:
        # The SDK refuses to start an activation with a code whose signature does not verify.
        if not ecdsa_verify_der(master_public, b64d(code_signature), code.encode("utf-8")):
            raise Refused("activation code signature does not verify with the master public key")
    compressed = not args.uncompressed_keys
    device = ec.generate_private_key(CURVE)
    device_public = ec_public_to_bytes(device.public_key(), compressed)
    layer2 = drop_none({
        "devicePublicKey": b64e(device_public),
        "activationName": args.activation_name,
        "extras": args.extras,
        "activationOtp": args.otp,
        "platform": args.platform,
        "deviceInfo": args.device_info,
    })
    temp_id, encrypt_to = None, master_public
    if version == "3.3":
        temp_id, encrypt_to = get_temporary_key(st, args.base, activation_scope=False, force=args.new_temp_key)
    offset = args.timestamp_offset_ms or 0
    scope2 = EciesScope(version, SH1_ACTIVATION_LAYER2, args.app_key, args.app_secret, temporary_key_id=temp_id)
    req2, ctx2 = ecies_encrypt_request(scope2, encrypt_to, json_bytes(layer2), compressed=compressed,
                                       timestamp_offset_ms=offset, nonce=ecies_nonce_for(st, args))
    layer1: dict[str, Any] = {"type": "CODE", "identityAttributes": {"code": code}}
    if args.custom_attributes:
        layer1["customAttributes"] = json.loads(args.custom_attributes)
    layer1["activationData"] = req2
    scope1 = EciesScope(version, SH1_APPLICATION_GENERIC, args.app_key, args.app_secret, temporary_key_id=temp_id)
    req1, ctx1 = ecies_encrypt_request(scope1, encrypt_to, json_bytes(layer1), compressed=compressed,
                                       timestamp_offset_ms=offset, nonce=ecies_nonce_for(st, args))
    remember_ecies(st, req1)
    header = 'PowerAuth version="%s", application_key="%s"' % (version, args.app_key)
    status, body = http_send(st, args.base, "POST", "/pa/v3/activation/create", {HEADER_ENCRYPTION: header}, json_bytes(req1))
    require_2xx(status, body, "activation/create")
    try:
        resp1 = json.loads(ecies_decrypt_response(ctx1, parse_json(status, body, "activation/create")))
        resp2 = json.loads(ecies_decrypt_response(ctx2, resp1.get("activationData")))
    except Refused as exc:
        raise Refused("activation/create: " + str(exc), status, body) from exc
    except ValueError as exc:
        raise Refused("activation/create: decrypted payload is not JSON", status, body) from exc
    for field in ("activationId", "serverPublicKey", "ctrData"):
        if not isinstance(resp2.get(field), str):
            raise Refused("activation/create: layer 2 lacks " + field, status, body)
    server_public = b64d(resp2["serverPublicKey"])
    ctr_data = b64d(resp2["ctrData"])
    if len(ctr_data) != 16:
        raise Refused("activation/create: ctrData is not 16 bytes", status, body)
    keys = derive_keys(master_secret(device, server_public))
    salt = secrets.token_bytes(16)
    password = args.password
    st.data.update({
        "activationId": resp2["activationId"],
        "devicePublicKey": b64e(device_public),
        "devicePrivateKey": b64e(ec_private_to_bytes(device)),
        # What the SDK keeps: the device private key encrypted by KEY_ENCRYPTION_VAULT.
        "cDevicePrivateKey": b64e(aes_cbc_encrypt(keys["vault"], ZERO_IV, ec_private_to_bytes(device))),
        "serverPublicKey": resp2["serverPublicKey"],
        "ctrData": b64e(ctr_data),
        "possessionKey": b64e(keys["possession"]),
        "biometryKey": b64e(keys["biometry"]),
        "transportKey": b64e(keys["transport"]),
        "passwordSalt": b64e(salt),
        "cKnowledgeKey": b64e(lock_knowledge_key(keys["knowledge"], password, salt)),
        "password": password,
        "tokens": {},
        "signatureCount": 0,
    })
    fingerprint = fingerprint_v3(device_public, resp2["activationId"], server_public)
    st.data["fingerprint"] = fingerprint
    st.save()
    return {
        "activationId": resp2["activationId"],
        "fingerprint": fingerprint,
        "version": version,
        "serverPublicKey": resp2["serverPublicKey"],
        "devicePublicKey": b64e(device_public),
        "customAttributes": resp1.get("customAttributes"),
        "userInfo": resp1.get("userInfo"),
        "activationRecovery": resp2.get("activationRecovery"),
        "temporaryKeyId": temp_id,
        "httpStatus": status,
    }


def cmd_status(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    st.require_activation()
    version = effective_version(st, args)
    challenge = None if version == "3.0" else secrets.token_bytes(16)
    request = drop_none({"activationId": st.data["activationId"], "challenge": b64e(challenge) if challenge else None})
    status, body = http_send(st, args.base, "POST", "/pa/v3/activation/status", {}, json_bytes({"requestObject": request}))
    obj = unwrap_object_response(status, body, "activation/status")
    if not isinstance(obj, dict) or not isinstance(obj.get("encryptedStatusBlob"), str):
        raise Refused("activation/status: responseObject.encryptedStatusBlob missing", status, body)
    if obj.get("activationId") not in (None, st.data["activationId"]):
        raise Refused("activation/status: activationId does not match", status, body)
    nonce = None
    if challenge is not None:
        if not isinstance(obj.get("nonce"), str):
            raise Refused("activation/status: nonce missing (3.1+)", status, body)
        nonce = b64d(obj["nonce"])
    transport = st.b("transportKey")
    try:
        info = decode_status_blob(transport, b64d(obj["encryptedStatusBlob"]), challenge, nonce)
    except (Refused, ValueError) as exc:
        raise Refused("activation/status: " + str(exc), status, body) from exc
    distance = counter_distance(transport, st.b("ctrData"), info["ctrDataHash"], info["ctrLookAhead"])
    resynced = False
    if distance:
        # The local counter is behind the server's: move it forward, as the SDK does.
        ctr = st.b("ctrData")
        for _ in range(distance):
            ctr = next_ctr_data(ctr)
        st.data["ctrData"] = b64e(ctr)
        resynced = True
    st.data["lastStatus"] = info["state"]
    st.save()
    result = {k: v for k, v in info.items() if k != "ctrDataHash"}
    result.update({
        "activationId": st.data["activationId"],
        "counterMatched": distance == 0,
        "counterDistance": distance,
        "counterResynced": resynced,
        "customObject": obj.get("customObject"),
        "httpStatus": status,
    })
    return result


def read_body(args: argparse.Namespace) -> bytes:
    if getattr(args, "body_file", None):
        with open(args.body_file, "rb") as fh:
            return fh.read()
    return (args.body or "").encode("utf-8")


def cmd_sign(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    return compute_authorization(st, version, args.factors, args.method, args.uri_id, read_body(args),
                                 password=args.password, nonce_b64=args.nonce, reuse_nonce=args.reuse_nonce,
                                 ctr_skip=args.ctr_skip or 0, keep_ctr=args.keep_ctr)


def response_summary(status: int, body: bytes) -> dict:
    out: dict[str, Any] = {"httpStatus": status, "responseBody": body_text(body)}
    try:
        out["responseJson"] = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        pass
    return out


def cmd_signed_request(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    body = read_body(args)
    auth = compute_authorization(st, version, args.factors, args.method, args.uri_id, body,
                                 password=args.password, nonce_b64=args.nonce, reuse_nonce=args.reuse_nonce,
                                 ctr_skip=args.ctr_skip or 0, keep_ctr=args.keep_ctr)
    status, resp = http_send(st, args.base, args.method.upper(), args.path, {HEADER_AUTH: auth["header"]}, body)
    result = dict(auth)
    result.update(response_summary(status, resp))
    require_2xx_result(status, resp, "signed request", result)
    return result


def require_2xx_result(status: int, body: bytes, what: str, result: dict) -> None:
    if not 200 <= status < 300:
        exc = Refused("%s: HTTP %d" % (what, status), status, body)
        exc.result = result  # type: ignore[attr-defined]
        raise exc


def cmd_offline_sign(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    st.require_activation()
    if not 4 <= args.digits <= 8:
        raise LocalError("--digits must be 4..8")
    keys = factor_keys(st, args.factors, args.password)
    ctr = take_counter(st, args.ctr_skip or 0, args.keep_ctr)
    st.save()
    normalized = normalized_data("POST", args.uri_id, args.nonce, read_body(args))
    data = normalized + "&offline"
    signature = format_signature(signature_components(keys, ctr, data.encode("utf-8")), "decimal", args.digits)
    return {"signature": signature, "signatureType": args.factors, "normalizedData": normalized,
            "dataForSigning": data, "ctrDataUsed": b64e(ctr)}


def activation_scope_encrypt(st: State, args: argparse.Namespace, version: str, sh1: str, plaintext: bytes) -> tuple[dict, EciesContext]:
    temp_id, encrypt_to = None, st.b("serverPublicKey")
    if version == "3.3":
        temp_id, encrypt_to = get_temporary_key(st, args.base, activation_scope=True, force=getattr(args, "new_temp_key", False))
    scope = EciesScope(version, sh1, st.data["appKey"], st.data["appSecret"], activation_id=st.data["activationId"],
                       transport_key=st.b("transportKey"), temporary_key_id=temp_id)
    request, ctx = ecies_encrypt_request(scope, encrypt_to, plaintext, compressed=not getattr(args, "uncompressed_keys", False),
                                         timestamp_offset_ms=getattr(args, "timestamp_offset_ms", 0) or 0,
                                         nonce=ecies_nonce_for(st, args))
    remember_ecies(st, request)
    return request, ctx


def decrypt_json_response(ctx: EciesContext, status: int, body: bytes, what: str) -> dict:
    require_2xx(status, body, what)
    try:
        plain = ecies_decrypt_response(ctx, parse_json(status, body, what))
        doc = json.loads(plain)
    except Refused as exc:
        raise Refused("%s: %s" % (what, exc), status, body) from exc
    except ValueError as exc:
        raise Refused("%s: decrypted payload is not JSON" % what, status, body) from exc
    if not isinstance(doc, dict):
        raise Refused("%s: decrypted payload is not an object" % what, status, body)
    return doc


def cmd_token_create(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    st.require_activation()
    version = effective_version(st, args)
    request, ctx = activation_scope_encrypt(st, args, version, SH1_TOKEN_CREATE, b"{}")
    auth, status, body = send_signed(st, args, version, args.factors, "/pa/token/create", "/pa/v3/token/create", json_bytes(request))
    doc = decrypt_json_response(ctx, status, body, "token/create")
    if not isinstance(doc.get("tokenId"), str) or not isinstance(doc.get("tokenSecret"), str):
        raise Refused("token/create: tokenId/tokenSecret missing", status, body)
    if len(b64d(doc["tokenSecret"])) != 16:
        raise Refused("token/create: tokenSecret is not 16 bytes", status, body)
    st.data.setdefault("tokens", {})[doc["tokenId"]] = {"secret": doc["tokenSecret"], "name": args.token_name}
    st.data["lastTokenId"] = doc["tokenId"]
    st.save()
    return {"tokenId": doc["tokenId"], "tokenSecret": doc["tokenSecret"], "httpStatus": status, "authorization": auth["header"]}


def resolve_token(st: State, token: str | None) -> str:
    token = token or st.data.get("lastTokenId")
    if not token:
        raise LocalError("no token (run token-create or pass --token)")
    return token


def cmd_token_header(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    ts = args.timestamp_ms if args.timestamp_ms is not None else now_ms() + (args.timestamp_offset_ms or 0)
    return token_header(st, version, resolve_token(st, args.token), ts, args.reuse_nonce)


def cmd_token_remove(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    token = resolve_token(st, args.token)
    body = json_bytes({"requestObject": {"tokenId": token}})
    auth, status, resp = send_signed(st, args, version, args.factors, "/pa/token/remove", "/pa/v3/token/remove", body)
    obj = unwrap_object_response(status, resp, "token/remove")
    st.data.get("tokens", {}).pop(token, None)
    if st.data.get("lastTokenId") == token:
        st.data.pop("lastTokenId")
    st.save()
    return {"tokenId": token, "responseObject": obj, "httpStatus": status}


def cmd_vault_unlock(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    st.require_activation()
    version = effective_version(st, args)
    request, ctx = activation_scope_encrypt(st, args, version, SH1_VAULT_UNLOCK, json_bytes(drop_none({"reason": args.reason})))
    auth, status, body = send_signed(st, args, version, args.factors, "/pa/vault/unlock", "/pa/v3/vault/unlock", json_bytes(request))
    doc = decrypt_json_response(ctx, status, body, "vault/unlock")
    if not isinstance(doc.get("encryptedVaultEncryptionKey"), str):
        raise Refused("vault/unlock: encryptedVaultEncryptionKey missing", status, body)
    if doc.get("activationId") not in (None, st.data["activationId"]):
        raise Refused("vault/unlock: activationId does not match", status, body)
    encrypted = b64d(doc["encryptedVaultEncryptionKey"])
    try:
        vault_key = aes_cbc_decrypt(st.b("transportKey"), ZERO_IV, encrypted, padding=True)
    except ValueError as exc:
        raise Refused("vault/unlock: cannot decrypt the vault key with KEY_TRANSPORT: %s" % exc, status, body) from exc
    matches = False
    if len(vault_key) == 16:
        try:
            device_private = aes_cbc_decrypt(vault_key, ZERO_IV, st.b("cDevicePrivateKey"))
            derived_public = ec_private_from_bytes(device_private).public_key()
            matches = ec_x(ec_public_to_bytes(derived_public)) == ec_x(st.b("devicePublicKey"))
        except ValueError:
            matches = False
    result = {"vaultKeyMatches": matches, "vaultKeySha256": sha256(vault_key).hex(), "httpStatus": status,
              "activationId": doc.get("activationId")}
    if not matches:
        exc = Refused("vault/unlock: the vault key does not decrypt the device private key", status, body)
        exc.result = result  # type: ignore[attr-defined]
        raise exc
    return result


def cmd_remove(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    auth, status, resp = send_signed(st, args, version, args.factors, "/pa/activation/remove", "/pa/v3/activation/remove", b"{}")
    obj = unwrap_object_response(status, resp, "activation/remove")
    st.data["removed"] = True
    st.save()
    return {"activationId": st.data["activationId"], "responseObject": obj, "httpStatus": status}


def cmd_operation_list(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    hdr = token_header(st, version, resolve_token(st, args.token), now_ms() + (args.timestamp_offset_ms or 0), args.reuse_nonce)
    # The Mobile Token SDKs post an empty object (enrollment-server's list takes no request body).
    status, body = http_send(st, args.base, "POST", "/api/auth/token/app/operation/list", {HEADER_TOKEN: hdr["header"]},
                             json_bytes({}))
    obj = unwrap_object_response(status, body, "operation/list")
    return {"operations": obj, "httpStatus": status}


def cmd_operation_approve(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    data = args.data
    if data is None:
        listed = cmd_operation_list(argparse.Namespace(**{**vars(args), "reuse_nonce": False}))
        ops = listed["operations"]
        ops = ops if isinstance(ops, list) else (ops or {}).get("operations", [])
        found = [op for op in ops if isinstance(op, dict) and op.get("id") == args.id]
        if not found:
            raise Refused("operation %s is not in the pending list" % args.id)
        data = found[0].get("data")
        st = State.load(args.state)
    body = json_bytes({"requestObject": {"id": args.id, "data": data}})
    auth, status, resp = send_signed(st, args, version, args.factors, "/operation/authorize",
                                     "/api/auth/token/app/operation/authorize", body)
    result = {"id": args.id, "data": data, "authorization": auth["header"]}
    result.update(response_summary(status, resp))
    require_2xx_result(status, resp, "operation/authorize", result)
    return result


def cmd_operation_reject(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    version = effective_version(st, args)
    body = json_bytes({"requestObject": {"id": args.id, "reason": args.reason}})
    auth, status, resp = send_signed(st, args, version, args.factors, "/operation/cancel",
                                     "/api/auth/token/app/operation/cancel", body)
    result = {"id": args.id, "authorization": auth["header"]}
    result.update(response_summary(status, resp))
    require_2xx_result(status, resp, "operation/cancel", result)
    return result


def cmd_replay(args: argparse.Namespace) -> dict:
    st = State.load(args.state)
    last = st.data.get("lastRequest")
    if not last:
        raise LocalError("no previous request in the state")
    body = b64d(last["body"])
    status, resp = _raw_send(last["method"], args.base.rstrip("/") + last["path"], last["headers"], body)
    result = {"replayed": last["path"], "requestHeaders": last["headers"], "requestBody": body_text(body)}
    result.update(response_summary(status, resp))
    require_2xx_result(status, resp, "replayed request", result)
    return result


# ------------------------------------------------------------------------------------------
# Selftest part 1: every published vector
# ------------------------------------------------------------------------------------------


class SelftestFailure(Exception):
    pass


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise SelftestFailure(what)


def _vector_data(directory: str, name: str) -> list:
    with open(os.path.join(directory, name), "r", encoding="utf-8") as fh:
        doc = json.load(fh)
    if "data" in doc:
        return doc["data"]
    return next(v for v in doc.values() if isinstance(v, list))


def _vector_keys(inp: dict) -> list[bytes]:
    parts = inp["signatureType"].split("_")
    out = []
    for factor, field in (("possession", "signaturePossessionKey"), ("knowledge", "signatureKnowledgeKey"),
                          ("biometry", "signatureBiometryKey")):
        if factor in parts:
            out.append(b64d(inp[field]))
    return out


def selftest_vectors(root: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    tv = os.path.join(root, "pa-test-vectors")
    ev = os.path.join(root, "pa-e2ee-vectors")

    def run(name: str, directory: str, fn: Callable[[dict], None]) -> None:
        # The repository keeps the protocol-3 files only (powerauth/tests/vectors/); the full
        # published set (../shared/vectors/powerauth/) has the protocol-2 ones too.
        if not os.path.exists(os.path.join(directory, name)):
            counts[name] = 0
            return
        n = 0
        for i, vec in enumerate(_vector_data(directory, name)):
            try:
                fn(vec)
            except SelftestFailure as exc:
                raise SelftestFailure("%s #%d: %s" % (name, i, exc)) from exc
            n += 1
        counts[name] = n

    def master(v: dict) -> None:
        i = v["input"]
        m1 = master_secret(ec_private_from_bytes(b64d(i["devicePrivateKey"])), b64d(i["serverPublicKey"]))
        m2 = master_secret(ec_private_from_bytes(b64d(i["serverPrivateKey"])), b64d(i["devicePublicKey"]))
        _check(b64e(m1) == v["output"]["masterSecretKey"] and m1 == m2, "master secret")

    def derived(v: dict) -> None:
        k = derive_keys(b64d(v["input"]["masterSecretKey"]))
        o = v["output"]
        _check([b64e(k[n]) for n in ("possession", "knowledge", "biometry", "transport", "vault")] ==
               [o["signaturePossessionKey"], o["signatureKnowledgeKey"], o["signatureBiometryKey"],
                o["transportKey"], o["vaultEncryptionKey"]], "derived keys")

    def signature(fmt: str) -> Callable[[dict], None]:
        def check(v: dict) -> None:
            i = v["input"]
            ctr = numeric_ctr(int(i["counter"])) if "counter" in i else b64d(i["counterData"])
            digits = int(i.get("signatureComponentLength", 8))
            got = format_signature(signature_components(_vector_keys(i), ctr, b64d(i["data"])), fmt, digits)
            _check(got == v["output"]["signature"], "signature %s != %s" % (got, v["output"]["signature"]))
        return check

    def fp_legacy(v: dict) -> None:
        raw = b64d(v["input"]["publicKey"])
        arr = java_biginteger_x(raw)
        _check(b64e(arr) == v["output"]["publicKeyCoordX"], "coordX")
        _check(decimalize(sha256(arr)) == v["output"]["fingerprint"], "fingerprint")

    def fp_v2(v: dict) -> None:
        raw = b64d(v["input"]["publicKey"])
        _check(b64e(ec_x(raw).lstrip(b"\0")) == v["output"]["publicKeyCoordX"], "coordX")
        _check(fingerprint_v2(raw) == v["output"]["fingerprint"], "fingerprint")

    def fp_v3(v: dict) -> None:
        i, o = v["input"], v["output"]
        _check(b64e(ec_x(b64d(i["devicePublicKey"])).lstrip(b"\0")) == o["devicePublicKeyCoordX"], "device X")
        _check(b64e(ec_x(b64d(i["serverPublicKey"])).lstrip(b"\0")) == o["serverPublicKeyCoordX"], "server X")
        # Compressed keys (what the SDK sends) must give the same fingerprint.
        dev = ec_public_to_bytes(ec_public_from_bytes(b64d(i["devicePublicKey"])), True)
        _check(fingerprint_v3(dev, o["activationId"], b64d(i["serverPublicKey"])) == o["fingerprint"], "fingerprint")

    def blob_iv(v: dict) -> None:
        i = v["input"]
        iv = status_blob_iv(b64d(i["transportKey"]), b64d(i["challenge"]), b64d(i["nonce"]))
        _check(b64e(iv) == v["output"]["iv"], "status IV")

    def blob_data(v: dict) -> None:
        i, o = v["input"], v["output"]
        tk = b64d(i["transportKey"])
        info = decode_status_blob(tk, b64d(i["encryptedStatusBlob"]), b64d(i["challenge"]), b64d(i["nonce"]))
        got = {"activationStatus": info["stateCode"], "currentVersion": info["currentVersion"],
               "upgradeVersion": info["upgradeVersion"], "failedAttempts": info["failCount"],
               "maxFailedAttempts": info["maxFailCount"], "ctrLookAhead": info["ctrLookAhead"],
               "ctrByte": info["ctrByte"]}
        _check(all(str(got[k]) == o[k] for k in got), "blob fields %r" % got)
        _check(b64e(info["ctrDataHash"]) == o["ctrDataHash"], "ctrDataHash")
        dist = counter_distance(tk, b64d(i["ctrData"]), info["ctrDataHash"], info["ctrLookAhead"])
        _check(str(dist) == o["counterDistance"], "counter distance %s" % dist)

    def code_sig_v3(v: dict) -> None:
        i = v["input"]
        pub = ec_public_to_bytes(ec_private_from_bytes(b64d(i["masterPrivateKey"])).public_key(), False)
        _check(pub == b64d(i["masterPublicKey"]), "master key pair")
        _check(ecdsa_verify_der(b64d(i["masterPublicKey"]), b64d(v["output"]["activationSignature"]),
                                i["activationCode"].encode()), "activation code signature")
        _check(not ecdsa_verify_der(b64d(i["masterPublicKey"]), b64d(v["output"]["activationSignature"]),
                                    (i["activationCode"] + "X").encode()), "tampered code accepted")

    def code_sig_v2(v: dict) -> None:
        i = v["input"]
        _check(ecdsa_verify_der(b64d(i["masterPublicKey"]), b64d(v["output"]["activationSignature"]),
                                (i["activationIdShort"] + "-" + i["activationOtp"]).encode()), "short id/OTP signature")

    def srv_sig_v2(v: dict) -> None:
        # This file's "signature" is a 65-byte uncompressed EC point, not an ECDSA signature
        # (a generator bug upstream): only the structure and the key pair can be checked.
        i = v["input"]
        sig = b64d(v["output"]["encryptedServerPublicKeySignature"])
        ec_public_from_bytes(sig)
        pub = ec_public_to_bytes(ec_private_from_bytes(b64d(i["masterServerPrivateKey"])).public_key(), False)
        _check(pub == b64d(i["masterServerPublicKey"]), "master key pair")

    def v2_expand_otp(i: dict) -> bytes:
        return pbkdf2_sha1(i["activationOtp"].encode(), i["activationIdShort"].encode(), 10000)

    def enc_dev_v2(v: dict) -> None:
        i, o = v["input"], v["output"]
        nonce = b64d(i["activationNonce"])
        ephemeral = xor_halves(ecdh(ec_private_from_bytes(b64d(i["ephemeralPrivateKey"])), b64d(i["masterPublicKey"])))
        c = aes_cbc_encrypt(ephemeral, nonce, aes_cbc_encrypt(v2_expand_otp(i), nonce, b64d(i["devicePublicKey"])))
        _check(b64e(c) == o["cDevicePublicKey"], "cDevicePublicKey")
        sig = hmac_sha256(b64d(i["applicationSecret"]), "&".join(
            [i["activationIdShort"], i["activationNonce"], b64e(c), i["applicationKey"]]).encode())
        _check(b64e(sig) == o["applicationSignature"], "application signature")

    def dec_srv_v2(v: dict) -> None:
        i = v["input"]
        nonce = b64d(i["activationNonce"])
        ephemeral = xor_halves(ecdh(ec_private_from_bytes(b64d(i["devicePrivateKey"])), b64d(i["ephemeralPublicKey"])))
        plain = aes_cbc_decrypt(v2_expand_otp(i), nonce, aes_cbc_decrypt(ephemeral, nonce, b64d(i["encryptedServerPublicKey"])))
        _check(b64e(plain) == v["output"]["serverPublicKey"], "server public key")

    run("compute-master-secret-key.json", tv, master)
    run("compute-derived-keys.json", tv, derived)
    run("signatures-v2.json", tv, signature("decimal"))
    run("signatures-v3.json", tv, signature("decimal"))
    run("signatures-v31.json", tv, signature("base64"))
    run("signatures-offline.json", tv, signature("decimal"))
    run("public-key-fingerprint.json", tv, fp_legacy)
    run("public-key-fingerprint-v2.json", tv, fp_v2)
    run("public-key-fingerprint-v3.json", tv, fp_v3)
    run("activation-status-blob-iv.json", tv, blob_iv)
    run("activation-status-blob-data.json", tv, blob_data)
    run("verify-activation-data-signature-v3.json", tv, code_sig_v3)
    run("verify-activation-data-signature-v2.json", tv, code_sig_v2)
    run("verify-encrypted-server-public-key-signature-v2.json", tv, srv_sig_v2)
    run("encrypt-device-public-key-v2.json", tv, enc_dev_v2)
    run("decrypt-server-public-key-v2.json", tv, dec_srv_v2)

    def e2ee(v: dict) -> None:
        version = v["protocolVersion"]
        activation = v["encryptorScope"] == "ACTIVATION_SCOPE"
        sh1 = SH1_ACTIVATION_GENERIC if activation else SH1_APPLICATION_GENERIC
        scope = EciesScope(version, sh1, v["applicationKey"], v["applicationSecret"],
                           activation_id=v.get("activationId") if activation else None,
                           transport_key=b64d(v["transportKey"]) if activation else None,
                           temporary_key_id=v.get("temporaryKeyId"))
        _check(b64e(scope.sh2_base) == v["sharedInfo2Base"], "sharedInfo2 base")
        envelope = b64d(v["envelopeKey"])
        eph = b64d(v["requestEphemeralPublicKey"])
        nonce = b64d(v["requestNonce"]) if "requestNonce" in v else None
        ts = int(v["timestampRequest"]) if "timestampRequest" in v else None
        # Request: encrypt with the vector's envelope key and nonce -> same bytes and MAC.
        enc, mac = ecies_seal(envelope, ecies_iv(envelope, nonce), v["requestData"].encode(), scope.shared_info2(nonce, ts, eph))
        _check(b64e(enc) == v["encryptedDataRequest"], "request ciphertext")
        _check(b64e(mac) == v["requestMac"], "request MAC")
        # Response: the client decrypts the vector's response ...
        ctx = EciesContext(scope, envelope, nonce)
        resp = {"encryptedData": v["encryptedDataResponse"], "mac": v["responseMac"]}
        if "responseNonce" in v:
            resp.update({"nonce": v["responseNonce"], "timestamp": int(v["timestampResponse"])})
        _check(ecies_decrypt_response(ctx, resp) == v["responseData"].encode(), "response plaintext")
        # ... and the server half re-creates it byte for byte.
        again = ecies_server_encrypt(scope, envelope, nonce, v["responseData"].encode(),
                                     b64d(v["responseNonce"]) if "responseNonce" in v else None,
                                     int(v["timestampResponse"]) if "timestampResponse" in v else None)
        _check(again["encryptedData"] == v["encryptedDataResponse"] and again["mac"] == v["responseMac"], "response re-encryption")
        # A flipped MAC must be refused.
        bad = dict(resp, mac=b64e(bytes([b64d(v["responseMac"])[0] ^ 1]) + b64d(v["responseMac"])[1:]))
        try:
            ecies_decrypt_response(ctx, bad)
            raise SelftestFailure("tampered MAC accepted")
        except Refused:
            pass

    for ver in ("30", "31", "32", "33"):
        for scope_name in ("Application", "Activation"):
            run("E2ee_%s_Scope_Test_Vectors_%s.json" % (scope_name, ver), ev, e2ee)
    return counts


# ------------------------------------------------------------------------------------------
# Selftest part 2: every client flow against an in-process fake server
# (a deliberately small server half, written only to check the client is self-consistent)
# ------------------------------------------------------------------------------------------


class FakeServer:
    LOOK_AHEAD = 20

    def __init__(self) -> None:
        self.app_key = b64e(secrets.token_bytes(16))
        self.app_secret = b64e(secrets.token_bytes(16))
        self.master = ec.generate_private_key(CURVE)
        self.master_public = ec_public_to_bytes(self.master.public_key(), False)
        self.code = "AAAAA-BBBBB-CCCCC-DDDDD"
        self.code_signature = b64e(self.master.sign(self.code.encode(), ec.ECDSA(hashes.SHA256())))
        self.activations: dict[str, dict] = {}
        self.temp_keys: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.seen_nonces: set = set()

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def ok(obj: Any) -> tuple[int, bytes]:
        return 200, json_bytes({"status": "OK", "responseObject": obj})

    @staticmethod
    def err(status: int, code: str) -> tuple[int, bytes]:
        return status, json_bytes({"status": "ERROR", "responseObject": {"code": code, "message": code}})

    @staticmethod
    def parse_header(value: str) -> dict:
        _, _, rest = value.partition(" ")
        out = {}
        for part in rest.split(","):
            k, _, v = part.strip().partition("=")
            out[k] = v.strip('"')
        return out

    def transport_key(self, act: dict) -> bytes:
        return derive_keys(master_secret(act["server"], act["devicePublic"]))["transport"]

    def decrypt(self, scope: EciesScope, default_private: ec.EllipticCurvePrivateKey, req: dict) -> tuple[bytes, bytes, bytes | None]:
        key = (req.get("ephemeralPublicKey"), req.get("nonce"))
        if key in self.seen_nonces:
            raise Refused("replayed ECIES request")
        private = default_private
        if scope.version == "3.3":
            temp = self.temp_keys.get(req.get("temporaryKeyId", ""))
            if temp is None or temp["activationId"] != scope.activation_id:
                raise Refused("unknown temporary key")
            private = temp["private"]
        if scope.modern and abs(now_ms() - int(req["timestamp"])) > 60_000:
            raise Refused("ECIES timestamp out of window")
        result = ecies_server_decrypt(scope, private, req)
        self.seen_nonces.add(key)
        return result

    def verify_signature(self, header: str, method: str, body: bytes, uri_id: str, offline_nonce: str | None = None) -> dict | None:
        h = self.parse_header(header)
        act = self.activations.get(h.get("pa_activation_id", ""))
        if act is None or act["status"] != 3 or h.get("pa_application_key") != self.app_key:
            return None
        keys = derive_keys(master_secret(act["server"], act["devicePublic"]))
        factor_keys_ = [keys[f] for f in h["pa_signature_type"].split("_")]
        data = (normalized_data(method, uri_id, h["pa_nonce"], body) + "&" + self.app_secret).encode()
        ctr = act["ctr"]
        for step in range(self.LOOK_AHEAD):
            sig = format_signature(signature_components(factor_keys_, ctr, data), signature_format_for(h["pa_version"]))
            if hmac.compare_digest(sig, h["pa_signature"]):
                act["ctr"] = next_ctr_data(ctr)
                act["fail"] = 0
                return act
            ctr = next_ctr_data(ctr)
        act["fail"] += 1
        return None

    # -- endpoints -------------------------------------------------------------------------
    def handle(self, method: str, url: str, headers: dict, body: bytes) -> tuple[int, bytes]:
        path = "/" + url.split("/", 3)[3]
        try:
            handler = {
                "/pa/v3/keystore/create": self.keystore,
                "/pa/v3/activation/create": self.activation_create,
                "/pa/v3/activation/status": self.activation_status,
                "/pa/v3/activation/remove": self.activation_remove,
                "/pa/v3/signature/validate": self.signature_validate,
                "/pa/v3/token/create": self.token_create,
                "/pa/v3/token/remove": self.token_remove,
                "/pa/v3/vault/unlock": self.vault_unlock,
                "/api/auth/token/app/operation/list": self.operation_list,
            }[path]
        except KeyError:
            return self.err(404, "NOT_FOUND")
        try:
            return handler(headers, body)
        except Refused as exc:
            return self.err(400, "ERR_ENCRYPTION:" + str(exc))

    def keystore(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        jwt = json.loads(body)["requestObject"]["jwt"]
        head, payload, sig = jwt.split(".")
        claims = json.loads(b64url_d(payload))
        activation_id = claims.get("activationId")
        if activation_id:
            act = self.activations[activation_id]
            mac_key, signer = kdf_internal(self.transport_key(act), b64d(self.app_secret)), act["server"]
        else:
            mac_key, signer = b64d(self.app_secret), self.master
        if not hmac.compare_digest(hmac_sha256(mac_key, (head + "." + payload).encode()), b64url_d(sig)):
            return self.err(400, "INVALID_REQUEST")
        temp = ec.generate_private_key(CURVE)
        key_id = "tmp-" + secrets.token_hex(8)
        self.temp_keys[key_id] = {"private": temp, "activationId": activation_id}
        now = now_ms()
        out = drop_none({"sub": key_id, "applicationKey": claims["applicationKey"], "activationId": activation_id,
                         "challenge": claims["challenge"], "publicKey": b64e(ec_public_to_bytes(temp.public_key(), False)),
                         "iat": now // 1000, "exp": now // 1000 + 300, "iat_ms": now, "exp_ms": now + 300_000})
        signed = b64url_e(json_bytes({"alg": "ES256", "typ": "JWT"})) + "." + b64url_e(json_bytes(out))
        return self.ok({"jwt": signed + "." + b64url_e(ecdsa_sign_jose(signer, signed.encode()))})

    def activation_create(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        h = self.parse_header(headers[HEADER_ENCRYPTION])
        version = h["version"]
        req1 = json.loads(body)
        s1 = EciesScope(version, SH1_APPLICATION_GENERIC, h["application_key"], self.app_secret, temporary_key_id=req1.get("temporaryKeyId"))
        plain1, env1, n1 = self.decrypt(s1, self.master, req1)
        layer1 = json.loads(plain1)
        if layer1.get("type") != "CODE" or layer1["identityAttributes"]["code"] != self.code:
            return self.err(400, "ACTIVATION_NOT_FOUND")
        req2 = layer1["activationData"]
        s2 = EciesScope(version, SH1_ACTIVATION_LAYER2, h["application_key"], self.app_secret, temporary_key_id=req2.get("temporaryKeyId"))
        plain2, env2, n2 = self.decrypt(s2, self.master, req2)
        layer2 = json.loads(plain2)
        server = ec.generate_private_key(CURVE)
        activation_id = "act-" + secrets.token_hex(8)
        ctr = secrets.token_bytes(16)
        self.activations[activation_id] = {"server": server, "devicePublic": b64d(layer2["devicePublicKey"]), "ctr": ctr,
                                           "status": 3, "fail": 0, "version": version}
        resp2 = {"activationId": activation_id, "serverPublicKey": b64e(ec_public_to_bytes(server.public_key(), False)), "ctrData": b64e(ctr)}
        resp1 = {"activationData": ecies_server_encrypt(s2, env2, n2, json_bytes(resp2)), "customAttributes": {"k": "v"}}
        return 200, json_bytes(ecies_server_encrypt(s1, env1, n1, json_bytes(resp1)))

    def activation_status(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        ro = json.loads(body)["requestObject"]
        act = self.activations.get(ro["activationId"])
        if act is None:
            return self.err(400, "ACTIVATION_NOT_FOUND")
        tk = self.transport_key(act)
        challenge = b64d(ro["challenge"]) if "challenge" in ro else None
        nonce = secrets.token_bytes(16) if challenge is not None else None
        info = {"stateCode": act["status"], "currentVersion": 3, "upgradeVersion": 3, "ctrByte": 0, "failCount": act["fail"],
                "maxFailCount": 5, "ctrLookAhead": self.LOOK_AHEAD, "ctrDataHash": ctr_data_hash(tk, act["ctr"])}
        return self.ok(drop_none({"activationId": ro["activationId"], "encryptedStatusBlob": b64e(encrypt_status_blob(tk, info, challenge, nonce)),
                                  "nonce": b64e(nonce) if nonce else None}))

    def signature_validate(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        if self.verify_signature(headers.get(HEADER_AUTH, ""), "POST", body, "/pa/signature/validate") is None:
            return self.err(401, "POWERAUTH_AUTH_FAIL")
        return self.ok(None)

    def activation_remove(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        act = self.verify_signature(headers.get(HEADER_AUTH, ""), "POST", body, "/pa/activation/remove")
        if act is None:
            return self.err(401, "POWERAUTH_AUTH_FAIL")
        act["status"] = 5
        return self.ok({"activationId": self.parse_header(headers[HEADER_AUTH])["pa_activation_id"]})

    def activation_scope(self, headers: dict, sh1: str, req: dict) -> tuple[EciesScope, dict]:
        h = self.parse_header(headers[HEADER_AUTH])
        act = self.activations[h["pa_activation_id"]]
        scope = EciesScope(h["pa_version"], sh1, self.app_key, self.app_secret, activation_id=h["pa_activation_id"],
                           transport_key=self.transport_key(act), temporary_key_id=req.get("temporaryKeyId"))
        return scope, act

    def token_create(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        if self.verify_signature(headers.get(HEADER_AUTH, ""), "POST", body, "/pa/token/create") is None:
            return self.err(401, "POWERAUTH_AUTH_FAIL")
        req = json.loads(body)
        scope, act = self.activation_scope(headers, SH1_TOKEN_CREATE, req)
        plain, env, nonce = self.decrypt(scope, act["server"], req)
        _check(plain == b"{}", "token request payload")
        token_id, secret = "tok-" + secrets.token_hex(8), secrets.token_bytes(16)
        self.tokens[token_id] = {"secret": secret, "activationId": scope.activation_id}
        return 200, json_bytes(ecies_server_encrypt(scope, env, nonce, json_bytes({"tokenId": token_id, "tokenSecret": b64e(secret)})))

    def token_remove(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        if self.verify_signature(headers.get(HEADER_AUTH, ""), "POST", body, "/pa/token/remove") is None:
            return self.err(401, "POWERAUTH_AUTH_FAIL")
        token_id = json.loads(body)["requestObject"]["tokenId"]
        self.tokens.pop(token_id, None)
        return self.ok({"tokenId": token_id})

    def vault_unlock(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        if self.verify_signature(headers.get(HEADER_AUTH, ""), "POST", body, "/pa/vault/unlock") is None:
            return self.err(401, "POWERAUTH_AUTH_FAIL")
        req = json.loads(body)
        scope, act = self.activation_scope(headers, SH1_VAULT_UNLOCK, req)
        plain, env, nonce = self.decrypt(scope, act["server"], req)
        keys = derive_keys(master_secret(act["server"], act["devicePublic"]))
        c_vault = aes_cbc_encrypt(keys["transport"], ZERO_IV, keys["vault"])
        resp = {"activationId": scope.activation_id, "encryptedVaultEncryptionKey": b64e(c_vault)}
        return 200, json_bytes(ecies_server_encrypt(scope, env, nonce, json_bytes(resp)))

    def operation_list(self, headers: dict, body: bytes) -> tuple[int, bytes]:
        h = self.parse_header(headers.get(HEADER_TOKEN, ""))
        token = self.tokens.get(h.get("token_id", ""))
        if token is None:
            return self.err(401, "POWERAUTH_TOKEN_INVALID")
        data = b64d(h["nonce"]) + b"&" + h["timestamp"].encode()
        if h["version"] in ("3.2", "3.3"):
            data += b"&" + h["version"].encode()
        if not hmac.compare_digest(b64e(hmac_sha256(token["secret"], data)), h["token_digest"]):
            return self.err(401, "POWERAUTH_TOKEN_INVALID")
        return self.ok([])

    def verify_offline(self, activation_id: str, factors: str, uri_id: str, body: bytes, nonce: str, signature: str, digits: int) -> bool:
        act = self.activations[activation_id]
        keys = derive_keys(master_secret(act["server"], act["devicePublic"]))
        data = (normalized_data("POST", uri_id, nonce, body) + "&offline").encode()
        ctr = act["ctr"]
        for _ in range(self.LOOK_AHEAD):
            if format_signature(signature_components([keys[f] for f in factors.split("_")], ctr, data), "decimal", digits) == signature:
                act["ctr"] = next_ctr_data(ctr)
                return True
            ctr = next_ctr_data(ctr)
        return False


def selftest_flows() -> dict[str, int]:
    import tempfile
    global TRANSPORT
    counts: dict[str, int] = {}
    saved = TRANSPORT
    try:
        for version in VERSIONS:
            server = FakeServer()
            TRANSPORT = server.handle
            n = 0
            with tempfile.TemporaryDirectory() as tmp:
                state = os.path.join(tmp, "phone.json")
                base = "http://fake.invalid"

                def run(*argv: str, expect_ok: bool = True) -> dict:
                    nonlocal n
                    code, result = run_cli(list(argv) + ["--state", state])
                    _check((code == 0) == expect_ok, "%s %s -> exit %d %r" % (version, argv[0], code, result))
                    n += 1
                    return result

                for compressed in (True, False):
                    extra = [] if compressed else ["--uncompressed-keys"]
                    act = run("activate", "--base", base, "--app-key", server.app_key, "--app-secret", server.app_secret,
                              "--master-public-key", b64e(server.master_public), "--code", server.code + "#" + server.code_signature,
                              "--password", "1234", "--version", version, *extra)
                    a = server.activations[act["activationId"]]
                    _check(act["fingerprint"] == fingerprint_v3(a["devicePublic"], act["activationId"],
                                                                ec_public_to_bytes(a["server"].public_key())), "fingerprint")
                    _check(len(a["devicePublic"]) == (33 if compressed else 65), "device key form")
                # A bad code signature is refused before anything is sent.
                run("activate", "--base", base, "--app-key", server.app_key, "--app-secret", server.app_secret,
                    "--master-public-key", b64e(server.master_public), "--code", server.code,
                    "--code-signature", server.code_signature[:-8] + "AAAAAAA=", "--version", version, expect_ok=False)
                act = run("activate", "--base", base, "--app-key", server.app_key, "--app-secret", server.app_secret,
                          "--master-public-key", b64e(server.master_public), "--code", server.code,
                          "--password", "1234", "--version", version)
                st = run("status", "--base", base)
                _check(st["state"] == "ACTIVE" and st["counterMatched"], "status after activation")
                sign = ["--method", "POST", "--uri-id", "/pa/signature/validate", "--path", "/pa/v3/signature/validate", "--body", '{"a":1}']
                for factors in FACTOR_TYPES[3:]:
                    run("signed-request", "--base", base, "--factors", factors, *sign)
                run("signed-request", "--base", base, "--factors", "possession_knowledge", "--password", "0000", *sign, expect_ok=False)
                run("signed-request", "--base", base, "--factors", "possession", "--ctr-skip", "3", *sign)
                # Local counter behind the server: status finds the distance and moves it.
                before = State.load(state).data["ctrData"]
                run("signed-request", "--base", base, "--factors", "possession", *sign)
                run("signed-request", "--base", base, "--factors", "possession", *sign)
                s = State.load(state)
                s.data["ctrData"] = before
                s.save()
                st = run("status", "--base", base)
                _check(st["counterDistance"] == 2 and st["counterResynced"], "counter resync %r" % st)
                st = run("status", "--base", base)
                _check(st["counterDistance"] == 0, "counter after resync")
                # Counter replay (--keep-ctr twice): second one is refused.
                run("signed-request", "--base", base, "--factors", "possession", "--keep-ctr", *sign)
                run("signed-request", "--base", base, "--factors", "possession", *sign, expect_ok=False)
                hdr = run("sign", "--factors", "possession_knowledge", "--method", "POST", "--uri-id", "/x", "--body", "")
                _check(hdr["normalizedData"].startswith("POST&L3g=&") and hdr["normalizedData"].endswith("&"), "normalized data")
                _check(("-" in hdr["signature"] or len(hdr["signature"]) == 8) if version == "3.0" else len(b64d(hdr["signature"])) == 32, "format")
                # Offline signature
                s = State.load(state)
                nonce = b64e(secrets.token_bytes(16))
                server.activations[act["activationId"]]["ctr"] = s.b("ctrData")
                off = run("offline-sign", "--factors", "possession_knowledge", "--uri-id", "/operation/authorize",
                          "--body", "A1*B2", "--nonce", nonce, "--digits", "8")
                _check(server.verify_offline(act["activationId"], "possession_knowledge", "/operation/authorize", b"A1*B2", nonce,
                                             off["signature"], 8), "offline signature")
                # Tokens
                tok = run("token-create", "--base", base, "--factors", "possession_knowledge")
                run("operation-list", "--base", base)
                run("token-header", "--timestamp-offset-ms", "-1000")
                run("replay", "--base", base)          # token headers are not replay-checked by the fake
                run("token-remove", "--base", base, "--factors", "possession")
                _check(tok["tokenId"] not in server.tokens, "token removed")
                # Vault and ECIES replay
                vault = run("vault-unlock", "--base", base, "--factors", "possession_knowledge", "--reason", "TEST")
                _check(vault["vaultKeyMatches"], "vault key")
                run("replay", "--base", base, expect_ok=False)
                run("vault-unlock", "--base", base, "--factors", "possession_knowledge", "--timestamp-offset-ms",
                    "-3600000", expect_ok=version in ("3.0", "3.1"))
                run("remove", "--base", base)
                st = run("status", "--base", base)
                _check(st["state"] == "REMOVED", "removed")
            counts["flows-" + version] = n
    finally:
        TRANSPORT = saved
    return counts


def cmd_selftest(args: argparse.Namespace) -> dict:
    try:
        vectors = selftest_vectors(args.vectors)
        flows = selftest_flows()
    except SelftestFailure as exc:
        raise Refused("selftest failed: %s" % exc) from exc
    return {"vectors": vectors, "vectorTotal": sum(vectors.values()), "flows": flows,
            "total": sum(vectors.values()) + sum(flows.values())}


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="powerauth_mobile.py", description="Simulated PowerAuth 3.x mobile client")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable, network: bool = True, state: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name)
        sp.set_defaults(fn=fn, network=network)
        if state:
            sp.add_argument("--state", required=True)
            sp.add_argument("--version", choices=VERSIONS)
        if network:
            sp.add_argument("--base", required=True)
            sp.add_argument("--replay-last", action="store_true")
            sp.add_argument("--timestamp-offset-ms", type=int, default=0)
            sp.add_argument("--reuse-nonce", action="store_true")
            sp.add_argument("--new-temp-key", action="store_true", help="3.3: fetch a fresh temporary key")
            sp.add_argument("--uncompressed-keys", action="store_true")
        return sp

    def signing(sp: argparse.ArgumentParser, factors_default: str | None = None) -> None:
        sp.add_argument("--factors", required=factors_default is None, default=factors_default)
        sp.add_argument("--password")
        sp.add_argument("--nonce")
        sp.add_argument("--ctr-skip", type=int, default=0)
        sp.add_argument("--keep-ctr", action="store_true")

    sp = sub.add_parser("selftest")
    sp.set_defaults(fn=cmd_selftest, network=False)
    sp.add_argument("--vectors", required=True)

    sp = add("activate", cmd_activate)
    sp.add_argument("--app-key", required=True)
    sp.add_argument("--app-secret", required=True)
    sp.add_argument("--master-public-key", required=True)
    sp.add_argument("--code", required=True)
    sp.add_argument("--code-signature")
    sp.add_argument("--otp")
    sp.add_argument("--password", default="1234")
    sp.add_argument("--activation-name", default="Countersign test phone")
    sp.add_argument("--platform", default="android")
    sp.add_argument("--device-info", default="python-powerauth-mobile")
    sp.add_argument("--extras")
    sp.add_argument("--custom-attributes")

    add("status", cmd_status)

    sp = add("sign", cmd_sign, network=False)
    signing(sp)
    sp.add_argument("--method", default="POST")
    sp.add_argument("--uri-id", required=True)
    sp.add_argument("--body", default="")
    sp.add_argument("--body-file")
    sp.add_argument("--reuse-nonce", action="store_true")

    sp = add("signed-request", cmd_signed_request)
    signing(sp)
    sp.add_argument("--method", default="POST")
    sp.add_argument("--uri-id", required=True)
    sp.add_argument("--path", required=True)
    sp.add_argument("--body", default="")
    sp.add_argument("--body-file")

    sp = add("offline-sign", cmd_offline_sign, network=False)
    signing(sp, "possession_knowledge")
    sp.add_argument("--uri-id", required=True)
    sp.add_argument("--body", default="")
    sp.add_argument("--body-file")
    sp.add_argument("--digits", type=int, default=8)

    sp = add("token-create", cmd_token_create)
    signing(sp)
    sp.add_argument("--token-name", default="possession_universal")

    sp = add("token-header", cmd_token_header, network=False)
    sp.add_argument("--token")
    sp.add_argument("--timestamp-ms", type=int)
    sp.add_argument("--timestamp-offset-ms", type=int, default=0)
    sp.add_argument("--reuse-nonce", action="store_true")

    sp = add("token-remove", cmd_token_remove)
    signing(sp, "possession")
    sp.add_argument("--token")

    sp = add("vault-unlock", cmd_vault_unlock)
    signing(sp, "possession_knowledge")
    sp.add_argument("--reason", default="NOT_SPECIFIED")

    sp = add("remove", cmd_remove)
    signing(sp, "possession_knowledge")

    sp = add("operation-list", cmd_operation_list)
    sp.add_argument("--token")

    sp = add("operation-approve", cmd_operation_approve)
    signing(sp, "possession_knowledge")
    sp.add_argument("--id", required=True)
    sp.add_argument("--data")
    sp.add_argument("--token")

    sp = add("operation-reject", cmd_operation_reject)
    signing(sp, "possession")
    sp.add_argument("--id", required=True)
    sp.add_argument("--reason", default="UNKNOWN")

    add("replay", cmd_replay)
    return p


def run_cli(argv: list[str]) -> tuple[int, dict]:
    """Runs one command; returns (exit status, the JSON object to print)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 2, {"ok": False, "error": "bad arguments (exit %s)" % exc.code}
    try:
        if getattr(args, "network", False) and getattr(args, "replay_last", False) and args.command != "replay":
            result = cmd_replay(args)
        else:
            result = args.fn(args)
        out = {"ok": True, "command": args.command}
        out.update(result)
        return 0, out
    except Refused as exc:
        out = {"ok": False, "command": args.command, "error": str(exc)}
        out.update(getattr(exc, "result", {}) or {})
        if exc.status is not None:
            out["httpStatus"] = exc.status
        if exc.body is not None:
            out["responseBody"] = body_text(exc.body)
        return 1, out
    except (LocalError, OSError, ValueError, KeyError, TypeError) as exc:
        return 2, {"ok": False, "command": args.command, "error": "%s: %s" % (type(exc).__name__, exc)}


def main() -> int:
    code, out = run_cli(sys.argv[1:])
    print(json.dumps(out, sort_keys=True))
    if code != 0:
        msg = out.get("error", "failed")
        if "httpStatus" in out:
            msg += " (HTTP %s: %s)" % (out["httpStatus"], out.get("responseBody", "")[:500])
        print("powerauth_mobile: " + msg, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
