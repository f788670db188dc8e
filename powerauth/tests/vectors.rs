//! PowerAuth's published test vectors (`tests/vectors/`, see its README), every entry of every
//! file driven through the crate's public API. Each test asserts how many entries it read, so
//! an emptied or truncated file fails instead of passing on nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step must stop the test loudly"
)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use countersign_powerauth::activation_code::{self, ActivationCode};
use countersign_powerauth::ecies::{self, Context, EnvelopeKey, Request};
use countersign_powerauth::fingerprint::activation_fingerprint;
use countersign_powerauth::keys::{master_secret, DerivedKeys, FactorKeys, PrivateKey, PublicKey, SecretKey};
use countersign_powerauth::signature::{self, CtrData, SignatureFormat, SignatureType};
use countersign_powerauth::status::{self, StatusBlob};
use countersign_powerauth::ProtocolVersion;
use serde_json::Value;

fn load(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    // The pa-test-vectors files hold {"data": [...]}, the E2EE files {"<name>": [...]}.
    let list = match json.get("data") {
        Some(data) => data.clone(),
        None => json.as_object().and_then(|o| o.values().next()).cloned().unwrap_or(Value::Null),
    };
    list.as_array().cloned().unwrap_or_else(|| panic!("{path}: no list of vectors"))
}

/// A string field, by path (`"input.data"`).
fn s<'a>(entry: &'a Value, path: &str) -> &'a str {
    let mut v = entry;
    for key in path.split('.') {
        v = v.get(key).unwrap_or_else(|| panic!("missing {path} in {entry}"));
    }
    v.as_str().unwrap_or_else(|| panic!("{path} is not a string in {entry}"))
}

fn b64(entry: &Value, path: &str) -> Vec<u8> {
    STANDARD.decode(s(entry, path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn key(entry: &Value, path: &str) -> SecretKey {
    SecretKey::from_slice(&b64(entry, path), "vector key").unwrap()
}

fn number<T: std::str::FromStr>(entry: &Value, path: &str) -> T {
    s(entry, path).parse().unwrap_or_else(|_| panic!("{path} is not a number"))
}

fn factor_keys(entry: &Value) -> FactorKeys {
    FactorKeys {
        possession: key(entry, "input.signaturePossessionKey"),
        knowledge: key(entry, "input.signatureKnowledgeKey"),
        biometry: key(entry, "input.signatureBiometryKey"),
    }
}

/// A copy of a decimal or Base64 signature with one character changed to another valid one.
fn altered(signature: &str) -> String {
    let mut chars: Vec<char> = signature.chars().collect();
    chars[0] = match chars[0] {
        '0' => '1',
        c if c.is_ascii_digit() => '0',
        'A' => 'B',
        _ => 'A',
    };
    chars.into_iter().collect()
}

#[test]
fn master_secret_both_ways() {
    let entries = load("pa-test-vectors/compute-master-secret-key.json");
    assert_eq!(entries.len(), 20);
    let mut with_sign_byte = 0;
    for e in &entries {
        let device_private = b64(e, "input.devicePrivateKey");
        with_sign_byte += usize::from(device_private.len() == 33);
        let device = PrivateKey::from_be_bytes(&device_private).unwrap();
        let server = PrivateKey::from_be_bytes(&b64(e, "input.serverPrivateKey")).unwrap();
        let device_public = PublicKey::from_sec1(&b64(e, "input.devicePublicKey")).unwrap();
        let server_public = PublicKey::from_sec1(&b64(e, "input.serverPublicKey")).unwrap();
        assert_eq!(device.public_key(), device_public);
        assert_eq!(server.public_key(), server_public);
        let expected = key(e, "output.masterSecretKey");
        assert_eq!(master_secret(&server, &device_public), expected, "server side");
        assert_eq!(master_secret(&device, &server_public), expected, "device side");
    }
    assert!(with_sign_byte > 0, "the vectors exercise Java's 33-byte BigInteger form");
}

#[test]
fn derived_keys_by_index() {
    let entries = load("pa-test-vectors/compute-derived-keys.json");
    assert_eq!(entries.len(), 20);
    for e in &entries {
        let derived = DerivedKeys::derive(&key(e, "input.masterSecretKey"));
        assert_eq!(derived.factors.possession, key(e, "output.signaturePossessionKey"));
        assert_eq!(derived.factors.knowledge, key(e, "output.signatureKnowledgeKey"));
        assert_eq!(derived.factors.biometry, key(e, "output.signatureBiometryKey"));
        assert_eq!(derived.transport, key(e, "output.transportKey"));
        assert_eq!(derived.vault_encryption, key(e, "output.vaultEncryptionKey"));
    }
}

/// Every entry: the computed signature equals the published one, it verifies, it is found at
/// step 0 of a window, and a one-character change of it does not verify.
fn check_signatures(file: &str, expected_entries: usize, format_of: impl Fn(&Value) -> SignatureFormat) -> [usize; 3] {
    let entries = load(file);
    assert_eq!(entries.len(), expected_entries, "{file}");
    let mut by_factors = [0usize; 3];
    for e in &entries {
        let keys = factor_keys(e);
        let ty: SignatureType = s(e, "input.signatureType").parse().unwrap();
        let ctr = CtrData::from_slice(&b64(e, "input.counterData")).unwrap();
        let data = b64(e, "input.data");
        let format = format_of(e);
        let expected = s(e, "output.signature");
        let computed = signature::compute(&keys, ty, &ctr, &data, format).unwrap();
        assert_eq!(computed.as_str(), expected, "{file}: {ty:?}");
        assert!(signature::verify(&keys, ty, &ctr, &data, format, expected).unwrap());
        assert!(!signature::verify(&keys, ty, &ctr, &data, format, &altered(expected)).unwrap());
        let hit = signature::verify_in_window(&keys, ty, &ctr, 20, &data, format, expected).unwrap().unwrap();
        assert_eq!((hit.steps, hit.matched, hit.next), (0, ctr, ctr.next()));
        by_factors[ty.factors().len() - 1] += 1;
    }
    by_factors
}

#[test]
fn signatures_v3_decimal() {
    let counts = check_signatures("pa-test-vectors/signatures-v3.json", 300, |_| SignatureFormat::DECIMAL_V3_0);
    assert_eq!(counts, [100, 100, 100]);
}

#[test]
fn signatures_v31_base64() {
    let counts = check_signatures("pa-test-vectors/signatures-v31.json", 300, |_| SignatureFormat::Base64);
    assert_eq!(counts, [100, 100, 100]);
}

#[test]
fn signatures_offline() {
    let counts = check_signatures("pa-test-vectors/signatures-offline.json", 200, |e| {
        SignatureFormat::offline(number(e, "input.signatureComponentLength")).unwrap()
    });
    assert_eq!(counts, [100, 100, 0]);
}

#[test]
fn activation_fingerprints_v3() {
    let entries = load("pa-test-vectors/public-key-fingerprint-v3.json");
    assert_eq!(entries.len(), 100);
    let mut short_x = 0;
    for e in &entries {
        let device = PublicKey::from_sec1(&b64(e, "input.devicePublicKey")).unwrap();
        let server = PublicKey::from_sec1(&b64(e, "input.serverPublicKey")).unwrap();
        short_x += usize::from(b64(e, "output.devicePublicKeyCoordX").len() < 32);
        let fingerprint = activation_fingerprint(&device, &server, s(e, "output.activationId"));
        assert_eq!(fingerprint, s(e, "output.fingerprint"), "{}", s(e, "output.activationId"));
    }
    assert!(short_x > 0, "the vectors hold an X coordinate with a leading zero byte");
}

#[test]
fn status_blob_iv() {
    let entries = load("pa-test-vectors/activation-status-blob-iv.json");
    assert_eq!(entries.len(), 32);
    for e in &entries {
        let iv = status::status_iv(&key(e, "input.transportKey"), &b64(e, "input.challenge"), &b64(e, "input.nonce"))
            .unwrap();
        assert_eq!(iv.to_vec(), b64(e, "output.iv"));
    }
}

#[test]
fn status_blob_data_both_ways() {
    let entries = load("pa-test-vectors/activation-status-blob-data.json");
    assert_eq!(entries.len(), 8);
    let mut ahead = 0;
    for e in &entries {
        let transport = key(e, "input.transportKey");
        let iv = status::status_iv(&transport, &b64(e, "input.challenge"), &b64(e, "input.nonce")).unwrap();
        let encrypted = b64(e, "input.encryptedStatusBlob");

        // The client's side: decrypt and read the fields.
        let blob = status::decrypt(&transport, &iv, &encrypted).unwrap();
        assert_eq!(blob.status, number::<u8>(e, "output.activationStatus"));
        assert_eq!(blob.current_version, number::<u8>(e, "output.currentVersion"));
        assert_eq!(blob.upgrade_version, number::<u8>(e, "output.upgradeVersion"));
        assert_eq!(blob.fail_count, number::<u8>(e, "output.failedAttempts"));
        assert_eq!(blob.max_fail_count, number::<u8>(e, "output.maxFailedAttempts"));
        assert_eq!(blob.ctr_look_ahead, number::<u8>(e, "output.ctrLookAhead"));
        assert_eq!(blob.ctr_byte, number::<u8>(e, "output.ctrByte"));
        assert_eq!(blob.ctr_data_hash.to_vec(), b64(e, "output.ctrDataHash"));

        // `ctrData` is the client's counter; the server's is `counterDistance` steps ahead.
        let client_ctr = CtrData::from_slice(&b64(e, "input.ctrData")).unwrap();
        let distance: u32 = number(e, "output.counterDistance");
        ahead += usize::from(distance > 0);
        assert_eq!(status::counter_distance(&transport, &client_ctr, &blob.ctr_data_hash, 100), Some(distance));
        let server_ctr = client_ctr.advance(distance);

        // The server's side: the same fields (and the reserved bytes it drew) encrypt to the
        // published blob, byte for byte.
        let rebuilt = StatusBlob { ctr_data_hash: status::ctr_data_hash(&transport, &server_ctr), ..blob.clone() };
        assert_eq!(rebuilt, blob);
        assert_eq!(status::encrypt(&transport, &iv, &rebuilt).to_vec(), encrypted);
    }
    assert!(ahead > 0, "the vectors hold a server counter ahead of the client's");
}

#[test]
fn activation_code_signatures_v3() {
    let entries = load("pa-test-vectors/verify-activation-data-signature-v3.json");
    assert_eq!(entries.len(), 20);
    let masters: Vec<PublicKey> =
        entries.iter().map(|e| PublicKey::from_sec1(&b64(e, "input.masterPublicKey")).unwrap()).collect();
    for (i, e) in entries.iter().enumerate() {
        let code: ActivationCode = s(e, "input.activationCode").parse().unwrap();
        assert_eq!(code.as_str(), s(e, "input.activationCode"), "already canonical");
        let master = PrivateKey::from_be_bytes(&b64(e, "input.masterPrivateKey")).unwrap();
        assert_eq!(master.public_key(), masters[i]);
        let signature = b64(e, "output.activationSignature");
        activation_code::verify_signature(&masters[i], &code, &signature).unwrap();
        // Another application's master key, or another code, does not verify.
        let other = &masters[(i + 1) % masters.len()];
        assert!(activation_code::verify_signature(other, &code, &signature).is_err());
        let other_code: ActivationCode = s(&entries[(i + 1) % entries.len()], "input.activationCode").parse().unwrap();
        assert!(activation_code::verify_signature(&masters[i], &other_code, &signature).is_err());
        let mut truncated = signature.clone();
        truncated.pop();
        assert!(activation_code::verify_signature(&masters[i], &code, &truncated).is_err());
    }
}

/// One E2EE file: the shared-info base, the request decrypted (and re-encrypted as the client
/// did), the response encrypted exactly as published (and decrypted as the client would).
fn check_e2ee(file: &str, version: ProtocolVersion, activation_scope: bool) {
    let entries = load(file);
    assert_eq!(entries.len(), 25, "{file}");
    for e in &entries {
        assert_eq!(s(e, "protocolVersion"), version.as_str());
        assert_eq!(s(e, "encryptorScope"), if activation_scope { "ACTIVATION_SCOPE" } else { "APPLICATION_SCOPE" });
        let secret = s(e, "applicationSecret");
        let base = if activation_scope {
            ecies::shared_info2_base_activation(&key(e, "transportKey"), secret)
        } else {
            ecies::shared_info2_base_application(secret)
        };
        assert_eq!(base.to_vec(), b64(e, "sharedInfo2Base"), "{file}");
        let context = Context {
            version,
            shared_info2_base: &base,
            application_key: s(e, "applicationKey"),
            activation_id: activation_scope.then(|| s(e, "activationId")),
            temporary_key_id: e.get("temporaryKeyId").and_then(Value::as_str),
        };
        let envelope = EnvelopeKey::from_slice(&b64(e, "envelopeKey")).unwrap();
        let ephemeral = b64(e, "requestEphemeralPublicKey");
        let request_nonce = e.get("requestNonce").map(|_| b64(e, "requestNonce"));
        let request_time = e.get("timestampRequest").map(|_| number::<u64>(e, "timestampRequest"));
        let encrypted = b64(e, "encryptedDataRequest");
        let mac = b64(e, "requestMac");
        let request = Request {
            ephemeral_public_key: &ephemeral,
            encrypted_data: &encrypted,
            mac: &mac,
            nonce: request_nonce.as_deref(),
            timestamp: request_time,
        };
        let plain = ecies::decrypt_request(&envelope, &context, &request).unwrap();
        assert_eq!(&**plain, s(e, "requestData").as_bytes(), "{file}");
        let mut forged = mac.clone();
        forged[31] ^= 1;
        let forged_request = Request { mac: &forged, ..request };
        assert_eq!(
            ecies::decrypt_request(&envelope, &context, &forged_request).unwrap_err(),
            countersign_powerauth::Error::EciesMac
        );
        // Reproduce the client's request (3.0 uses no nonce; any value stands in).
        let nonce_in: [u8; 16] = request_nonce.as_deref().map_or([0; 16], |n| n.try_into().unwrap());
        let (again, again_mac) = ecies::encrypt_request(
            &envelope,
            &context,
            &ephemeral,
            s(e, "requestData").as_bytes(),
            nonce_in,
            request_time.unwrap_or(0),
        )
        .unwrap();
        assert_eq!((again, again_mac.to_vec()), (encrypted.clone(), mac.clone()), "{file}");

        // Before 3.2 the response has no nonce or timestamp of its own: any value stands in.
        let response_nonce: [u8; 16] =
            e.get("responseNonce").map_or([0; 16], |_| b64(e, "responseNonce").try_into().unwrap());
        let response_time = e.get("timestampResponse").map_or(0, |_| number::<u64>(e, "timestampResponse"));
        let response = ecies::encrypt_response(
            &envelope,
            &context,
            request_nonce.as_deref(),
            s(e, "responseData").as_bytes(),
            response_nonce,
            response_time,
        )
        .unwrap();
        assert_eq!(response.encrypted_data, b64(e, "encryptedDataResponse"), "{file}");
        assert_eq!(response.mac.to_vec(), b64(e, "responseMac"), "{file}");
        assert_eq!(response.nonce.is_some(), version >= ProtocolVersion::V3_2);
        let reply = ecies::decrypt_response(&envelope, &context, request_nonce.as_deref(), &response).unwrap();
        assert_eq!(&**reply, s(e, "responseData").as_bytes());
    }
}

#[test]
fn e2ee_application_scope() {
    check_e2ee("pa-e2ee-vectors/E2ee_Application_Scope_Test_Vectors_30.json", ProtocolVersion::V3_0, false);
    check_e2ee("pa-e2ee-vectors/E2ee_Application_Scope_Test_Vectors_31.json", ProtocolVersion::V3_1, false);
    check_e2ee("pa-e2ee-vectors/E2ee_Application_Scope_Test_Vectors_32.json", ProtocolVersion::V3_2, false);
    check_e2ee("pa-e2ee-vectors/E2ee_Application_Scope_Test_Vectors_33.json", ProtocolVersion::V3_3, false);
}

#[test]
fn e2ee_activation_scope() {
    check_e2ee("pa-e2ee-vectors/E2ee_Activation_Scope_Test_Vectors_30.json", ProtocolVersion::V3_0, true);
    check_e2ee("pa-e2ee-vectors/E2ee_Activation_Scope_Test_Vectors_31.json", ProtocolVersion::V3_1, true);
    check_e2ee("pa-e2ee-vectors/E2ee_Activation_Scope_Test_Vectors_32.json", ProtocolVersion::V3_2, true);
    check_e2ee("pa-e2ee-vectors/E2ee_Activation_Scope_Test_Vectors_33.json", ProtocolVersion::V3_3, true);
}

/// Countersign's own cross-check of the envelope key derivation (see the README: generated with
/// another library from the specification, since the published vectors give only the result).
#[test]
fn ecies_envelope_derivation_cross_check() {
    let entries = load("countersign/ecies-envelope-derivation.json");
    assert_eq!(entries.len(), 6);
    let mut compressed = 0;
    for e in &entries {
        let version: ProtocolVersion = s(e, "protocolVersion").parse().unwrap();
        let private = PrivateKey::from_be_bytes(&b64(e, "serverPrivateKey")).unwrap();
        let ephemeral = b64(e, "ephemeralPublicKey");
        compressed += usize::from(ephemeral.len() == 33);
        let derived = EnvelopeKey::derive(&private, &ephemeral, s(e, "sharedInfo1").as_bytes(), version).unwrap();
        assert_eq!(derived, EnvelopeKey::from_slice(&b64(e, "envelopeKey")).unwrap(), "{version}");
    }
    assert!(compressed > 0);
}
