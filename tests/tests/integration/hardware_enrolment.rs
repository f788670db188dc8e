//! Hardware enrolment against virtual YubiKeys on a private pcscd: PIV (3DES and AES-192
//! management keys, attestation, certificate issued by the HSM CA, PIV authentication), OATH
//! (codes from ykman accepted), refusals, removal mid-enrolment, and two cards at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use countersign_tests::{bin, openssl, write, Daemon, HOTP_PLUGIN as HOTP, TOTP_PLUGIN as TOTP};
use countersign_vcard::{AttestationIssuer, CardSpec, Pcscd, TestRoot, VirtualYubiKey};
use serde_json::{json, Value};

struct Rig {
    pcscd: Pcscd,
    root: TestRoot,
    d: Daemon,
}

impl Rig {
    fn new(pairs: usize) -> Rig {
        Rig::with_config(pairs, "")
    }

    /// [`Rig::new`] with `extra` configuration.
    fn with_config(pairs: usize, extra: &str) -> Rig {
        let rig = Rig::configured(pairs, extra);
        rig.d.cli_json(&["ca", "init"]);
        rig
    }

    fn without_ca(pairs: usize) -> Rig {
        Rig::configured(pairs, "")
    }

    fn configured(pairs: usize, extra: &str) -> Rig {
        let pcscd = Pcscd::start(pairs).expect("pcscd starts (run scripts/install-deps.sh)");
        let root = TestRoot::generate("Countersign Test PIV Attestation Root");
        let mut d = Daemon::configure("");
        let (k, v) = pcscd.env();
        d.env.push((k.to_owned(), v.display().to_string()));
        let roots = write(d.work.path(), "attestation-roots.pem", root.cert_pem().as_bytes());
        d.install_plugins(
            &[HOTP, TOTP],
            &format!(
                "[enrolment]\nattestation_roots = [\"{}\"]\nattestation_intermediates = []\n{extra}",
                roots.display()
            ),
        );
        d.spawn().expect("countersignd starts");
        for u in ["alice", "bob"] {
            d.cli_json(&["user", "add", u]);
        }
        Rig { pcscd, root, d }
    }

    fn reader(&self, i: usize) -> String {
        self.pcscd.readers()[i].name.clone()
    }

    /// A card in reader `i`, inserted and seen by pcscd.
    fn card(&self, i: usize, serial: u32, firmware: (u8, u8, u8)) -> VirtualYubiKey {
        self.card_with(i, CardSpec::new(serial, firmware))
    }

    fn card_with(&self, i: usize, spec: CardSpec) -> VirtualYubiKey {
        let card = VirtualYubiKey::new(spec, &self.root);
        let r = &self.pcscd.readers()[i];
        card.insert(r.port).unwrap();
        self.pcscd.wait_for_card_state(&r.name, true, Duration::from_secs(10)).unwrap();
        card
    }

    /// Runs `countersign --json enrol ...`; returns the last NDJSON line and every line.
    fn enrol(&self, args: &[&str], stdin: &str) -> (Value, Vec<Value>, String) {
        let mut a = vec!["--json", "enrol"];
        a.extend_from_slice(args);
        let out = self.d.cli_stdin(&a, stdin);
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let last = lines.last().cloned().unwrap_or(Value::Null);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.success(), last.get("result").is_some(), "exit status and last line disagree: {stderr}");
        (last, lines, stderr)
    }

    fn ca_pem(&self) -> PathBuf {
        let pem = self.d.cli(&["ca", "show", "--pem"]);
        assert!(pem.status.success());
        write(self.d.work.path(), "ca.pem", &pem.stdout)
    }

    /// Triggers a challenge for `user`'s certificate token; returns (transaction id, nonce).
    fn piv_challenge(&self, user: &str) -> (String, Vec<u8>) {
        let (status, v) = self.d.api("POST", "/v1/validate/triggerchallenge", Some(json!({ "user": user })));
        assert_eq!(status, 200, "{v}");
        let c = v["challenges"].as_array().unwrap().iter().find(|c| c["type"] == "certificate").unwrap().clone();
        (c["transaction_id"].as_str().unwrap().to_owned(), hex::decode(c["nonce"].as_str().unwrap()).unwrap())
    }

    fn answer(&self, user: &str, tx: &str, signature: &[u8]) -> bool {
        let (status, v) = self.d.check(json!({ "user": user, "transaction_id": tx, "pass": hex::encode(signature) }));
        assert_eq!(status, 200, "{v}");
        v["accepted"].as_bool().unwrap()
    }

    fn tokens_of(&self, user: &str) -> Vec<Value> {
        self.d.cli_json(&["token", "list", "--user", user])["tokens"].as_array().unwrap().clone()
    }

    fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let (k, v) = self.pcscd.env();
        c.env(k, v);
        c
    }
}

fn ykman() -> String {
    std::env::var("YKMAN").unwrap_or_else(|_| format!("{}/../.tools/venv/bin/ykman", env!("CARGO_MANIFEST_DIR")))
}

/// Enrols PIV on a card of `firmware` and proves the result with independent tools.
fn piv_round_trip(firmware: (u8, u8, u8), alg_id: u8) {
    let rig = Rig::new(1);
    let card = rig.card(0, 31_000_001, firmware);
    assert_eq!(card.management_key().0, alg_id, "the emulated card starts with its firmware's default algorithm");
    let (last, lines, stderr) = rig.enrol(&["piv", "--user", "alice", "--pin-stdin"], "24681357\n");
    let r = &last["result"];
    assert!(r.is_object(), "enrolment failed: {last} {stderr}");
    let steps: Vec<&str> = lines.iter().filter_map(|l| l.pointer("/progress/step").and_then(Value::as_str)).collect();
    for s in ["card", "authenticate", "generate", "attest", "issue", "write", "management-key", "pin", "register"] {
        assert!(steps.contains(&s), "step {s} missing from {steps:?}");
    }
    let serial = r["token"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(serial, "PIV31000001-9A");
    assert_eq!(r["token"]["device"], "yubikey 31000001");

    // The certificate is on the card, chains to the appliance CA, and certifies the card's key.
    let cert = card.slot_certificate(0x9A).expect("a certificate in slot 9a");
    let leaf = write(rig.d.work.path(), "leaf.der", &cert);
    let ca = rig.ca_pem();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&ca)
        .arg(write(rig.d.work.path(), "leaf.pem", countersign_vcard::pem("CERTIFICATE", &cert).as_bytes()))
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl verify: {}", String::from_utf8_lossy(&out.stderr));
    let _ = leaf;
    let status = rig.tool("yubico-piv-tool").args(["-r", &rig.reader(0), "-a", "status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success() && text.contains("Slot 9a"), "yubico-piv-tool status: {text}");
    assert!(text.contains("CN=alice"), "yubico-piv-tool shows the issued subject: {text}");

    // The card leaves with a random management key of the same algorithm, and the PIN given.
    let (alg, key) = card.management_key();
    assert_eq!(alg, alg_id);
    assert_ne!(key, countersign::devices::management_key::FACTORY_KEY.to_vec());
    assert_eq!(card.pin(), b"24681357".to_vec());
    assert_ne!(card.puk(), b"12345678".to_vec());

    // PIV authentication: the card's signature over the nonce is accepted once.
    let (tx, nonce) = rig.piv_challenge("alice");
    let sig = card.sign_with_slot(0x9A, &nonce).unwrap();
    assert!(rig.answer("alice", &tx, &sig), "the card's signature over the nonce is accepted");
    assert!(!rig.answer("alice", &tx, &sig), "a challenge is answered once");
    // A signature over another nonce is rejected.
    let (tx2, _) = rig.piv_challenge("alice");
    assert!(!rig.answer("alice", &tx2, &sig));

    // Neither the management key nor the PUK is in the database files.
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the management key and PUK") {
        for f in ["countersign.db", "countersign.db-wal"] {
            if let Ok(bytes) = std::fs::read(rig.d.work.path().join(f)) {
                assert!(!contains(&bytes, &key), "the management key is in {f}");
                assert!(!contains(&bytes, &card.puk()), "the PUK is in {f}");
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn piv_enrolment_firmware_5_7_aes192() {
    piv_round_trip((5, 7, 1), 0x0A);
}

#[test]
fn piv_enrolment_firmware_5_4_3des() {
    piv_round_trip((5, 4, 3), 0x03);
}

#[test]
fn another_cards_signature_is_rejected() {
    let rig = Rig::new(1);
    let a = rig.card(0, 32_000_001, (5, 7, 1));
    let b = rig.card(1, 32_000_002, (5, 4, 3));
    let (last, _, e) = rig.enrol(&["piv", "--user", "alice", "--serial", "32000001"], "");
    assert!(last["result"].is_object(), "{last} {e}");
    let (last, _, e) = rig.enrol(&["piv", "--user", "bob", "--serial", "32000002"], "");
    assert!(last["result"].is_object(), "{last} {e}");
    let (tx, nonce) = rig.piv_challenge("alice");
    let from_b = b.sign_with_slot(0x9A, &nonce).unwrap();
    assert!(!rig.answer("alice", &tx, &from_b), "bob's card cannot answer alice's challenge");
    let from_a = a.sign_with_slot(0x9A, &nonce).unwrap();
    assert!(rig.answer("alice", &tx, &from_a));
}

#[test]
fn untrusted_attestation_is_refused_and_nothing_registered() {
    let rig = Rig::new(1);
    let stranger = TestRoot::generate("Not A Trusted Root");
    let mut spec = CardSpec::new(33_000_001, (5, 7, 1));
    spec.attestation = AttestationIssuer::Other(stranger);
    let _card = rig.card_with(0, spec);
    let (last, _, stderr) = rig.enrol(&["piv", "--user", "alice"], "");
    assert_eq!(last["error"]["code"], "attestation", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("attestation"), "{last}");
    assert!(stderr.contains("the card:"), "the CLI says what state the card is in: {stderr}");
    assert!(rig.tokens_of("alice").is_empty(), "nothing registered");
    let audit = rig.d.auth_audit();
    let row = audit.iter().find(|r| r["action"] == "token/enrol-piv").expect("the failed enrolment is audited");
    assert_eq!(row["result"], "error");
    assert!(row["detail"].as_str().unwrap().contains("attestation"), "{row}");
}

#[test]
fn removal_mid_enrolment_leaves_nothing_half_registered() {
    let rig = Rig::new(1);
    let card = rig.card(0, 34_000_001, (5, 7, 1));
    // Yank the card when the certificate is being written.
    card.remove_on(|apdu| apdu.ins == 0xDB);
    let (last, _, stderr) = rig.enrol(&["piv", "--user", "alice"], "");
    let e = &last["error"];
    assert_eq!(e["code"], "card_missing", "{last}");
    let state = e["card_state"].as_str().unwrap();
    assert!(state.contains("slot 9a") && state.contains("nothing was registered"), "{state}");
    assert!(stderr.contains("removed"), "{stderr}");
    assert!(rig.tokens_of("alice").is_empty(), "nothing registered");
    // The management key was not changed, so the card can be enrolled again once back.
    assert_eq!(card.management_key().1, countersign::devices::management_key::FACTORY_KEY.to_vec());
    card.insert(rig.pcscd.readers()[0].port).unwrap();
    rig.pcscd.wait_for_card_state(&rig.reader(0), true, Duration::from_secs(10)).unwrap();
    let (last, _, e) = rig.enrol(&["piv", "--user", "alice"], "");
    assert!(last["result"].is_object(), "{last} {e}");
}

#[test]
fn two_cards_enrolment_touches_only_the_one_asked_for() {
    let rig = Rig::new(1);
    let a = rig.card(0, 35_000_001, (5, 7, 1));
    let b = rig.card(1, 35_000_002, (5, 7, 1));
    let without_serial = rig.enrol(&["piv", "--user", "alice"], "");
    assert_eq!(without_serial.0["error"]["code"], "wrong_card", "two cards and no choice: {}", without_serial.0);
    let (last, _, e) = rig.enrol(&["piv", "--user", "alice", "--reader", &rig.reader(1)], "");
    assert!(last["result"].is_object(), "{last} {e}");
    assert_eq!(last["result"]["card_serial"], "35000002");
    assert!(b.slot_certificate(0x9A).is_some());
    assert!(a.slot_certificate(0x9A).is_none(), "the other card is untouched");
    assert!(!a.apdu_log().iter().any(|c| c.ins == 0x47 || c.ins == 0xDB || c.ins == 0xFF), "no writes to card a");
    assert_eq!(a.management_key().1, countersign::devices::management_key::FACTORY_KEY.to_vec());
}

#[test]
fn oath_enrolment_codes_from_ykman_are_accepted() {
    let rig = Rig::new(1);
    let card = rig.card(0, 36_000_001, (5, 7, 1));
    let (last, _, e) = rig.enrol(&["oath", "--user", "alice", "--type", "totp"], "");
    let r = &last["result"];
    assert!(r.is_object(), "{last} {e}");
    let serial = r["token"]["serial"].as_str().unwrap().to_owned();
    let account = r["oath_account"].as_str().unwrap().to_owned();
    assert_eq!(account, "Countersign:alice");
    assert!(card.oath_credentials().contains(&account));
    assert!(r.get("otpauth_uri").is_none(), "the seed is never shown");
    let code = |rig: &Rig| -> String {
        let out = rig
            .tool(&ykman())
            .args(["--reader", &rig.reader(0), "oath", "accounts", "code", "--single", &account])
            .output()
            .unwrap();
        assert!(out.status.success(), "ykman: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let c = code(&rig);
    assert!(rig.d.accepts(&serial, &c), "ykman's code {c} is accepted");
    assert!(!rig.d.accepts(&serial, &c), "and only once");
    // The seed is on the card and not in the SQLite files.
    let seed = card.oath_secret(&account).expect("the card holds the credential's secret");
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the seed") {
        for f in ["countersign.db", "countersign.db-wal", "countersign.db-shm"] {
            if let Ok(bytes) = std::fs::read(rig.d.work.path().join(f)) {
                assert!(!contains(&bytes, &seed[..16]), "the seed is in {f}");
            }
        }
    }
    // HOTP too, with ykman's counter in step with the appliance's.
    let (last, _, e) = rig.enrol(&["oath", "--user", "bob", "--type", "hotp"], "");
    let r = &last["result"];
    assert!(r.is_object(), "{last} {e}");
    let hotp_serial = r["token"]["serial"].as_str().unwrap().to_owned();
    let hotp_account = r["oath_account"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let out = rig
            .tool(&ykman())
            .args(["--reader", &rig.reader(0), "oath", "accounts", "code", "--single", &hotp_account])
            .output()
            .unwrap();
        let c = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(rig.d.accepts(&hotp_serial, &c), "HOTP code {c} accepted");
    }
}

#[test]
fn oath_password_is_required_and_used() {
    let rig = Rig::new(1);
    let card = rig.card(0, 37_000_001, (5, 4, 3));
    card.set_oath_password("hunter22");
    let (last, _, _) = rig.enrol(&["oath", "--user", "alice"], "");
    assert_eq!(last["error"]["code"], "card_locked", "{last}");
    assert!(rig.tokens_of("alice").is_empty());
    let (last, _, _) = rig.enrol(&["oath", "--user", "alice", "--oath-password-stdin"], "wrong\n");
    assert_eq!(last["error"]["code"], "card_locked", "{last}");
    let (last, _, e) = rig.enrol(&["oath", "--user", "alice", "--oath-password-stdin"], "hunter22\n");
    assert!(last["result"].is_object(), "{last} {e}");
}

#[test]
fn devices_list_shows_readers_cards_and_enrolled_cards() {
    let rig = Rig::new(1);
    let _card = rig.card(0, 38_000_001, (5, 7, 1));
    let v = rig.d.cli_json(&["devices", "list"]);
    let readers = v["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 2);
    let with_card = readers.iter().find(|r| r["card_present"] == true).unwrap();
    assert_eq!(with_card["kind"], "yubikey");
    assert_eq!(with_card["serial"], "38000001");
    assert_eq!(with_card["firmware"], "5.7.1");
    assert!(readers.iter().any(|r| r["card_present"] == false));
    let text = rig.d.cli(&["devices", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("yubikey serial 38000001"));
}

#[test]
fn devices_watch_reports_insertion_and_removal() {
    use std::io::BufRead;
    let rig = Rig::new(1);
    let mut child = Command::new(bin("countersign"))
        .arg("--socket")
        .arg(rig.d.admin_sock())
        .args(["--json", "devices", "watch", "--seconds", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let next_event = |what: &str| -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("no {what} event within 20 s"));
            if line.pointer("/event/event").and_then(Value::as_str) == Some(what) {
                return line["event"].clone();
            }
        }
    };
    let watching = next_event("watching");
    assert_eq!(watching["reader"], "2 readers, 0 with a card");
    let card = rig.card(1, 40_000_001, (5, 7, 1));
    let inserted = next_event("inserted");
    assert_eq!(inserted["reader"], rig.reader(1));
    assert_eq!(inserted["card"]["serial"], "40000001");
    card.remove();
    let removed = next_event("removed");
    assert_eq!(removed["reader"], rig.reader(1));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn external_ca_csr_then_imported_certificate_issues_card_certificates() {
    let rig = Rig::without_ca(1);
    let init = rig.d.cli_json(&["ca", "init", "--csr"]);
    assert!(init["ca"]["certificate_pem"].is_null() && init["ca"]["csr_pem"].is_string(), "{init}");
    let card = rig.card(0, 41_000_001, (5, 7, 1));
    // No enrolment before the CA has its certificate, and the card is not touched.
    let (last, _, _) = rig.enrol(&["piv", "--user", "alice"], "");
    assert_eq!(last["error"]["code"], "invalid", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("import-cert"), "{last}");
    assert!(card.apdu_log().is_empty() || !card.apdu_log().iter().any(|c| c.ins == 0x47));

    let w = rig.d.work.path();
    let csr = rig.d.cli(&["ca", "show", "--pem"]);
    assert!(String::from_utf8_lossy(&csr.stdout).contains("BEGIN CERTIFICATE REQUEST"));
    let csr = write(w, "appliance.csr", &csr.stdout);
    let (ok, out) = openssl(&["req", "-verify", "-noout", "-in", csr.to_str().unwrap()]);
    assert!(ok, "the CSR verifies: {out}");
    // The organisation's own CA signs it.
    let root_key = w.join("root.key");
    let root = w.join("root.pem");
    countersign_tests::self_signed_p256(&root_key, &root, "/CN=Example Corp Root", 30, &[]);
    let ext = write(
        w,
        "ca.ext",
        b"basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    let issued = w.join("appliance-ca.pem");
    let (ok, out) = openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        root.to_str().unwrap(),
        "-CAkey",
        root_key.to_str().unwrap(),
        "-CAcreateserial",
        "-out",
        issued.to_str().unwrap(),
        "-days",
        "30",
        "-extfile",
        ext.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // A certificate for another key is refused.
    let wrong = rig.d.cli(&["ca", "import-cert", root.to_str().unwrap()]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("another key"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    let imported = rig.d.cli_json(&["ca", "import-cert", issued.to_str().unwrap()]);
    assert_eq!(imported["ca"]["self_signed"], false, "{imported}");

    let (last, _, e) = rig.enrol(&["piv", "--user", "alice"], "");
    assert!(last["result"].is_object(), "{last} {e}");
    let leaf = write(w, "leaf.pem", last["result"]["certificate_pem"].as_str().unwrap().as_bytes());
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        root.to_str().unwrap(),
        "-untrusted",
        issued.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(ok, "the card's certificate chains to the organisation's root: {out}");
}

/// OpenSC's PKCS#11 module: a PIV client no one here wrote.
const OPENSC: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";

/// PIV authentication with a client that knows nothing of Countersign: OpenSC finds the
/// enrolled key (id 01 = slot 9a), the card signs the nonce, the appliance accepts it.
#[test]
fn opensc_signs_the_nonce_with_the_enrolled_card() {
    let rig = Rig::new(1);
    let _card = rig.card(0, 42_000_001, (5, 7, 1));
    let (last, _, e) = rig.enrol(&["piv", "--user", "alice", "--pin-stdin"], "24681357\n");
    assert!(last["result"].is_object(), "{last} {e}");
    let (tx, nonce) = rig.piv_challenge("alice");
    let w = rig.d.work.path();
    let input = write(w, "nonce.bin", &nonce);
    let sig = w.join("nonce.sig");
    assert!(std::path::Path::new(OPENSC).exists(), "{OPENSC} is missing: run scripts/install-deps.sh");
    let out = rig
        .tool("pkcs11-tool")
        .args(["--module", OPENSC, "--login", "--pin", "24681357"])
        .args(["--sign", "--mechanism", "ECDSA-SHA256", "--id", "01", "--signature-format", "openssl"])
        .arg("--input-file")
        .arg(&input)
        .arg("--output-file")
        .arg(&sig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pkcs11-tool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let signature = std::fs::read(&sig).unwrap();
    assert!(rig.answer("alice", &tx, &signature), "OpenSC's signature by the card is accepted");
}

#[test]
fn a_card_is_enrolled_from_the_web_console_with_its_progress_streamed_to_the_page() {
    use countersign_tests::console::{console_user, csrf, exchange, form, sign_in};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rig =
        Rig::with_config(1, &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n[validate]\nthrottle_base_ms = 0\n"));
    rig.d.cli_json(&["realm", "add", "partners"]);
    let _card = rig.card(0, 31_000_201, (5, 7, 1));
    let admin = console_user(&rig.d, "ad", "admin", &[]);
    let cookie = sign_in(port, "ad", &admin);
    let token = csrf(port, &cookie);

    // The card page lists the appliance's readers and what is in them.
    let (status, _, page) = exchange(port, "GET", "/console/users/default/alice/card", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&rig.reader(0)) && page.contains("31000201"), "{page}");

    // The enrolment's answer grows step by step, then shows the PIN the appliance chose, once.
    let body = form(&[("_csrf", &token), ("kind", "piv"), ("reader", &rig.reader(0)), ("description", "badge")]);
    let post = |cookie: &str, body: &str| {
        exchange(
            port,
            "POST",
            "/console/users/default/alice/card",
            &[("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")],
            body,
        )
    };
    let (status, headers, page) = post(&cookie, &body);
    assert_eq!(status, 200, "{page}");
    assert!(headers.iter().any(|(k, v)| k == "content-security-policy" && v.contains("script-src 'self'")));
    assert!(headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked"), "streamed: {headers:?}");
    let steps = page.matches("<li><strong>").count();
    assert!(steps >= 4, "each card step is a line of the page ({steps}): {page}");
    assert!(page.contains("is enrolled on card 31000201"), "{page}");
    let pin_at = page.find("data-secret>").unwrap() + "data-secret>".len();
    let pin = &page[pin_at..pin_at + 8];
    assert!(pin.chars().all(|c| c.is_ascii_digit()), "the chosen PIN is shown: {pin}");
    assert!(page.rfind("</html>") > page.find("is enrolled on card"), "the page is whole after the outcome");
    let tokens = rig.tokens_of("alice");
    assert!(tokens.iter().any(|t| t["type"] == "certificate" && t["description"] == "badge"), "{tokens:?}");
    let rows = rig.d.cli_json(&["audit", "auth", "--action", "token/enrol-piv"]);
    assert!(rows.to_string().contains("console:ad"), "audited under the console user: {rows}");

    // A helpdesk of another realm gets neither the page nor the enrolment, even forged.
    let hd = console_user(&rig.d, "hd", "helpdesk", &["partners"]);
    let hd_cookie = sign_in(port, "hd", &hd);
    let hd_token = csrf(port, &hd_cookie);
    assert_eq!(exchange(port, "GET", "/console/users/default/alice/card", &[("Cookie", &hd_cookie)], "").0, 403);
    let forged = form(&[("_csrf", &hd_token), ("kind", "oath-totp"), ("reader", &rig.reader(0))]);
    assert_eq!(post(&hd_cookie, &forged).0, 403);
    assert_eq!(rig.tokens_of("alice").len(), tokens.len(), "nothing enrolled");
}
