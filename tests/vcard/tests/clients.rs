//! Acceptance tests: real, independent clients (ykman, yubico-piv-tool, oathtool, openssl)
//! against the emulated YubiKey through a private pcscd. Each test starts its own pcscd.
// Reason: test code; failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countersign_vcard::{output_with_timeout, pem, CardSpec, Pcscd, TestRoot, VirtualYubiKey};

const HINT: &str = "run scripts/install-deps.sh";
const MGMT_KEY: &str = "010203040506070801020304050607080102030405060708";
const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const WAIT: Duration = Duration::from_secs(10);
/// Longest any one client command may run.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ykman_path() -> PathBuf {
    let path = std::env::var_os("YKMAN").map_or_else(|| workspace().join(".tools/venv/bin/ykman"), PathBuf::from);
    assert!(path.is_file(), "ykman not found at {} (set YKMAN or {HINT})", path.display());
    path
}

fn tool(name: &str) -> PathBuf {
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is missing: {HINT}"))
}

/// One pcscd, a scratch directory (also HOME for ykman) and the test root.
struct Rig {
    pcscd: Pcscd,
    reader0: String,
    dir: tempfile::TempDir,
    root: TestRoot,
}

impl Rig {
    fn new(pairs: usize) -> Rig {
        let pcscd = Pcscd::start(pairs).expect("start pcscd");
        let reader0 = pcscd.readers()[0].name.clone();
        Rig { pcscd, reader0, dir: tempfile::tempdir().unwrap(), root: TestRoot::generate("Countersign Test Root") }
    }

    fn card(&self, serial: u32, firmware: (u8, u8, u8)) -> VirtualYubiKey {
        VirtualYubiKey::new(CardSpec::new(serial, firmware), &self.root)
    }

    /// Inserts `card` in reader `index` and waits until pcscd has seen it.
    fn insert(&self, card: &VirtualYubiKey, index: usize) -> String {
        let reader = self.pcscd.readers()[index].clone();
        card.insert(reader.port).unwrap();
        if let Err(e) = self.pcscd.wait_for_card_state(&reader.name, true, WAIT) {
            panic!("{e}\npcscd log:\n{}", self.pcscd.log());
        }
        reader.name
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        let (k, v) = self.pcscd.env();
        c.env(k, v).env("HOME", self.dir.path()).env("XDG_CONFIG_HOME", self.dir.path().join(".config"));
        c.current_dir(self.dir.path());
        c
    }

    fn run(&self, program: &Path, args: &[&str]) -> Output {
        output_with_timeout(self.cmd(program).args(args), CLIENT_LIMIT).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, program: &Path, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// ykman on reader 0 unless `args` pick a device: every pcscd entry has two readers and
    /// ykman refuses to choose when more than one YubiKey-named reader exists, even empty.
    fn ykman(&self, args: &[&str]) -> String {
        self.ok(&ykman_path(), &self.ykman_args(args))
    }

    fn ykman_run(&self, args: &[&str]) -> Output {
        self.run(&ykman_path(), &self.ykman_args(args))
    }

    fn ykman_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = Vec::new();
        if !matches!(args.first(), Some(&"--reader" | &"--device")) {
            all.extend(["--reader", self.reader0.as_str()]);
        }
        all.extend_from_slice(args);
        all
    }

    fn piv_tool(&self, reader: &str, args: &[&str]) -> String {
        let mut all = vec!["-r", reader];
        all.extend_from_slice(args);
        self.ok(&tool("yubico-piv-tool"), &all)
    }
}

fn now_window() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 30
}

/// The code ykman prints for the single account matching `query`.
fn code_of(output: &str, name: &str) -> String {
    let line = output.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} not in {output}"));
    line.split_whitespace().last().unwrap().to_string()
}

#[test]
fn oath_totp_and_hotp_match_oathtool() {
    let rig = Rig::new(1);
    let card = rig.card(10_000_001, (5, 4, 3));
    rig.insert(&card, 0);
    rig.ykman(&["oath", "accounts", "add", "-o", "TOTP", "-a", "SHA1", "-d", "6", "-i", "Example", "alice", SECRET]);
    rig.ykman(&["oath", "accounts", "add", "-o", "HOTP", "-a", "SHA1", "-d", "6", "bob", SECRET]);
    let list = rig.ykman(&["oath", "accounts", "list"]);
    assert!(list.contains("Example:alice") && list.contains("bob"), "{list}");
    assert_eq!(card.oath_credentials(), vec!["Example:alice".to_string(), "bob".to_string()]);

    let oathtool = tool("oathtool");
    let mut matched = false;
    for _ in 0..2 {
        let before = now_window();
        let out = rig.ykman(&["oath", "accounts", "code", "alice"]);
        let expected = rig.ok(&oathtool, &["--totp", "-b", SECRET]);
        if before != now_window() {
            continue; // straddled a 30 s boundary: try once more
        }
        assert_eq!(code_of(&out, "Example:alice"), expected.trim(), "TOTP mismatch: {out}");
        matched = true;
        break;
    }
    assert!(matched, "TOTP straddled two window boundaries in a row");

    for counter in 0..3 {
        let out = rig.ykman(&["oath", "accounts", "code", "bob"]);
        let expected = rig.ok(&oathtool, &["-b", "-c", &counter.to_string(), SECRET]);
        assert_eq!(code_of(&out, "bob"), expected.trim(), "HOTP counter {counter}: {out}");
    }

    rig.ykman(&["oath", "accounts", "rename", "-f", "bob", "Example:bob"]);
    rig.ykman(&["oath", "accounts", "delete", "-f", "alice"]);
    assert_eq!(card.oath_credentials(), vec!["Example:bob".to_string()]);
    // The HOTP counter moved with the rename.
    let out = rig.ykman(&["oath", "accounts", "code", "bob"]);
    let expected = rig.ok(&oathtool, &["-b", "-c", "3", SECRET]);
    assert_eq!(code_of(&out, "Example:bob"), expected.trim(), "{out}");
}

#[test]
fn ykman_piv_info_on_5_4_and_5_7_shows_generated_key_and_certificate() {
    let rig = Rig::new(1);
    for (i, fw) in [(5, 4, 3), (5, 7, 1)].into_iter().enumerate() {
        let card = rig.card(10_000_100 + i as u32, fw);
        rig.insert(&card, i);
        let reader = &rig.pcscd.readers()[i].name;
        let version = format!("{}.{}.{}", fw.0, fw.1, fw.2);
        let info = rig.ykman(&["--reader", reader, "piv", "info"]);
        assert!(info.contains(&format!("PIV version:              {version}")) || info.contains(&version), "{info}");
        let expected_alg = if fw >= (5, 7, 0) { "AES192" } else { "TDES" };
        assert!(info.contains(expected_alg), "management key algorithm {expected_alg} not in:\n{info}");

        let pubkey = rig.path(&format!("pub{i}.pem"));
        let pubkey = pubkey.to_str().unwrap();
        rig.ykman(&["--reader", reader, "piv", "keys", "generate", "-m", MGMT_KEY, "-a", "ECCP256", "9a", pubkey]);
        rig.ykman(&[
            "--reader",
            reader,
            "piv",
            "certificates",
            "generate",
            "-m",
            MGMT_KEY,
            "-P",
            "123456",
            "-s",
            "CN=vcard-9a",
            "9a",
            pubkey,
        ]);
        let info = rig.ykman(&["--reader", reader, "piv", "info"]);
        assert!(info.contains("vcard-9a"), "certificate subject not in piv info:\n{info}");
        let attestation = rig.path(&format!("attest{i}.pem"));
        rig.ykman(&["--reader", reader, "piv", "keys", "attest", "9a", attestation.to_str().unwrap()]);
        assert!(std::fs::read_to_string(&attestation).unwrap().contains("BEGIN CERTIFICATE"));
        assert!(card.slot_certificate(0x9a).is_some());
        let card_spki = card.slot_public_key_spki(0x9a).unwrap();
        let pem_spki = pem("PUBLIC KEY", &card_spki);
        assert_eq!(std::fs::read_to_string(pubkey).unwrap().trim(), pem_spki.trim());
    }
}

#[test]
fn yubico_piv_tool_status_lists_certificate() {
    let rig = Rig::new(1);
    let card = rig.card(10_000_200, (5, 4, 3));
    let reader = rig.insert(&card, 0);
    let status = rig.piv_tool(&reader, &["-a", "status"]);
    assert!(status.contains("Version:\t5.4.3") || status.contains("5.4.3"), "{status}");
    rig.piv_tool(&reader, &["-a", "generate", "-s", "9a", "-A", "ECCP256", "-o", "pub.pem"]);
    // yubico-piv-tool 2.2's selfsign-certificate fails before sending any APDU on this
    // OpenSSL 3 system, so the certificate to import comes from openssl.
    let openssl = tool("openssl");
    rig.ok(
        &openssl,
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=pivtool-9a"]
            .iter()
            .copied()
            .chain(["-days", "30", "-keyout", "other.key", "-out", "cert.pem"])
            .collect::<Vec<_>>(),
    );
    rig.piv_tool(&reader, &["-a", "import-certificate", "-s", "9a", "-i", "cert.pem"]);
    let status = rig.piv_tool(&reader, &["-a", "status"]);
    assert!(status.contains("Slot 9a"), "{status}");
    assert!(status.contains("pivtool-9a"), "{status}");
}

#[test]
fn yubico_piv_tool_attest_chains_to_root_and_signature_verifies() {
    let rig = Rig::new(1);
    let card = rig.card(10_000_300, (5, 4, 3));
    let reader = rig.insert(&card, 0);
    let openssl = tool("openssl");
    rig.piv_tool(&reader, &["-a", "generate", "-s", "9a", "-A", "ECCP256", "-o", "pub.pem"]);
    rig.piv_tool(&reader, &["-a", "attest", "-s", "9a", "-o", "attest.pem"]);
    rig.piv_tool(&reader, &["-a", "read-certificate", "-s", "f9", "-o", "f9.pem"]);
    std::fs::write(rig.path("root.pem"), rig.root.cert_pem()).unwrap();
    let verify = rig.ok(&openssl, &["verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "attest.pem"]);
    assert!(verify.contains("attest.pem: OK"), "{verify}");
    let text = rig.ok(&openssl, &["x509", "-in", "attest.pem", "-noout", "-text"]);
    assert!(text.contains("YubiKey PIV Attestation 9a"), "{text}");
    assert!(text.contains("1.3.6.1.4.1.41482.3.7"), "{text}");
    // The attested key is the slot key.
    let attested = rig.ok(&openssl, &["x509", "-in", "attest.pem", "-noout", "-pubkey"]);
    assert_eq!(attested.trim(), std::fs::read_to_string(rig.path("pub.pem")).unwrap().trim());

    // A signature made by the card verifies with openssl against the slot public key: ykman
    // has the card sign a self-signed certificate (yubico-piv-tool 2.2 has no raw "sign" action
    // and its selfsign-certificate fails client-side with OpenSSL 3).
    rig.ykman(&["piv", "certificates", "generate", "-m", MGMT_KEY, "-P", "123456", "-s", "CN=signed", "9a", "pub.pem"]);
    rig.ykman(&["piv", "certificates", "export", "9a", "cert.pem"]);
    let cert_key = rig.ok(&openssl, &["x509", "-in", "cert.pem", "-noout", "-pubkey"]);
    assert_eq!(cert_key.trim(), std::fs::read_to_string(rig.path("pub.pem")).unwrap().trim());
    let ok = rig.ok(&openssl, &["verify", "-CAfile", "cert.pem", "-check_ss_sig", "cert.pem"]);
    assert!(ok.contains("cert.pem: OK"), "{ok}");
    // And yubico-piv-tool's own check: sign random data in 9a, verify with the stored certificate.
    let out = rig
        .piv_tool(&reader, &["-a", "verify-pin", "-P", "123456", "-a", "test-signature", "-s", "9a", "-i", "cert.pem"]);
    let _ = out;
}

#[test]
fn yubico_piv_tool_2_2_cannot_use_aes_default_key_of_5_7() {
    // yubico-piv-tool 2.2 speaks 3DES management keys only; a 5.7 card's default key is AES-192,
    // so authentication must be refused (as a real 5.7 key does), not silently accepted.
    let rig = Rig::new(1);
    let card = rig.card(10_000_350, (5, 7, 1));
    let reader = rig.insert(&card, 0);
    let out = rig.run(&tool("yubico-piv-tool"), &["-r", &reader, "-a", "generate", "-s", "9a", "-A", "ECCP256"]);
    assert!(!out.status.success(), "3DES authentication against an AES-192 key succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication"), "not an authentication failure: {stderr}");
    assert!(card.slot_public_key_spki(0x9a).is_none());
    assert_eq!(card.management_key().0, 0x0A);
}

#[test]
fn two_cards_are_addressed_separately() {
    let rig = Rig::new(1);
    let a = rig.card(11_111_111, (5, 4, 3));
    let b = rig.card(22_222_222, (5, 7, 1));
    let reader_a = rig.insert(&a, 0);
    let reader_b = rig.insert(&b, 1);
    rig.ykman(&["--device", "22222222", "oath", "accounts", "add", "only-b", SECRET]);
    assert!(a.oath_credentials().is_empty());
    assert_eq!(b.oath_credentials(), vec!["only-b".to_string()]);
    let info_a = rig.ykman(&["--reader", &reader_a, "info"]);
    assert!(info_a.contains("11111111"), "{info_a}");
    let info_b = rig.ykman(&["--device", "22222222", "info"]);
    assert!(info_b.contains("22222222") && info_b.contains("5.7.1"), "{info_b}");
    rig.piv_tool(&reader_a, &["-a", "generate", "-s", "9c", "-A", "ECCP256"]);
    assert!(a.slot_public_key_spki(0x9c).is_some());
    assert!(b.slot_public_key_spki(0x9c).is_none());
    let status_b = rig.piv_tool(&reader_b, &["-a", "status"]);
    assert!(status_b.contains("5.7.1"), "{status_b}");
}

#[test]
fn removal_and_yank_mid_put_data() {
    let rig = Rig::new(1);
    let card = rig.card(10_000_400, (5, 4, 3));
    let reader = rig.insert(&card, 0);
    card.remove();
    rig.pcscd.wait_for_card_state(&reader, false, WAIT).unwrap();
    rig.insert(&card, 0);

    rig.piv_tool(&reader, &["-a", "generate", "-s", "9a", "-A", "ECCP256", "-o", "pub.pem"]);
    card.remove_on(|apdu| apdu.ins == 0xDB);
    let out = rig.ykman_run(&[
        "piv",
        "certificates",
        "generate",
        "-m",
        MGMT_KEY,
        "-P",
        "123456",
        "-s",
        "CN=x",
        "9a",
        "pub.pem",
    ]);
    assert!(!out.status.success(), "PUT DATA should not have completed");
    assert!(!card.is_inserted(), "card still inserted; ykman said: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(card.apdu_log().last().map(|a| a.ins), Some(0xDB));
    rig.pcscd.wait_for_card_state(&reader, false, WAIT).unwrap();
    assert!(card.slot_certificate(0x9a).is_none());

    // State survives: re-inserted, the key generated before is still there.
    rig.insert(&card, 0);
    let info = rig.ykman(&["piv", "info"]);
    assert!(info.contains("9A"), "{info}");
    assert!(card.slot_public_key_spki(0x9a).is_some());

    // Dropping the last handle of a card removes it too.
    let other = rig.card(10_000_401, (5, 4, 3));
    let other_reader = rig.insert(&other, 1);
    drop(other);
    rig.pcscd.wait_for_card_state(&other_reader, false, WAIT).unwrap();
}

#[test]
fn oath_password_required_when_set() {
    let rig = Rig::new(1);
    let card = rig.card(10_000_500, (5, 4, 3));
    rig.insert(&card, 0);
    rig.ykman(&["oath", "accounts", "add", "guarded", SECRET]);
    card.set_oath_password("hunter2");
    let out = rig.ykman_run(&["oath", "accounts", "list"]);
    assert!(!out.status.success(), "listing without a password succeeded: {}", String::from_utf8_lossy(&out.stdout));
    let out = rig.ykman_run(&["oath", "accounts", "list", "-p", "wrong"]);
    assert!(!out.status.success(), "listing with a wrong password succeeded");
    let list = rig.ykman(&["oath", "accounts", "list", "-p", "hunter2"]);
    assert!(list.contains("guarded"), "{list}");
}

#[test]
fn ykman_changes_pin_puk_management_key_and_resets() {
    let rig = Rig::new(1);
    for (i, fw) in [(5, 4, 3), (5, 7, 1)].into_iter().enumerate() {
        let card = rig.card(10_000_600 + i as u32, fw);
        rig.insert(&card, i);
        let reader = rig.pcscd.readers()[i].name.clone();
        let r = reader.as_str();
        rig.ykman(&["--reader", r, "piv", "access", "change-pin", "-P", "123456", "-n", "24681357"]);
        rig.ykman(&["--reader", r, "piv", "access", "change-puk", "-p", "12345678", "-n", "87654321"]);
        assert_eq!(card.pin(), b"24681357");
        assert_eq!(card.puk(), b"87654321");
        let new_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        rig.ykman(&[
            "--reader",
            r,
            "piv",
            "access",
            "change-management-key",
            "-m",
            MGMT_KEY,
            "-a",
            "aes256",
            "-n",
            new_key,
            "-f",
        ]);
        assert_eq!(card.management_key(), (0x0C, hex::decode(new_key).unwrap()));
        rig.ykman(&["--reader", r, "piv", "keys", "generate", "-m", new_key, "-a", "ECCP384", "9d", "p384.pem"]);
        assert!(card.slot_public_key_spki(0x9d).is_some());
        let info = rig.ykman(&["--reader", r, "piv", "info"]);
        assert!(info.contains("AES256"), "{info}");

        // Wrong PIN three times blocks it; the PUK unblocks it.
        for _ in 0..3 {
            let out = rig.ykman_run(&["--reader", r, "piv", "access", "change-pin", "-P", "000000", "-n", "111111"]);
            assert!(!out.status.success());
        }
        rig.ykman(&["--reader", r, "piv", "access", "unblock-pin", "-p", "87654321", "-n", "13572468"]);
        assert_eq!(card.pin(), b"13572468");

        // A PIN-protected random management key (ykman keeps it in the printed-data object).
        rig.ykman(&[
            "--reader",
            r,
            "piv",
            "access",
            "change-management-key",
            "-m",
            new_key,
            "-P",
            "13572468",
            "--protect",
            "-f",
        ]);
        let (_, protected_key) = card.management_key();
        assert_ne!(protected_key, hex::decode(new_key).unwrap());
        rig.ykman(&["--reader", r, "piv", "keys", "generate", "-P", "13572468", "-a", "ECCP256", "9e", "p256.pem"]);
        assert!(card.slot_public_key_spki(0x9e).is_some());
        let new_key = hex::encode(&protected_key);
        let new_key = new_key.as_str();

        // SET PIN RETRIES: needs PIN and management key, resets PIN and PUK to the defaults.
        rig.ykman(&["--reader", r, "piv", "access", "set-retries", "-m", new_key, "-P", "13572468", "-f", "5", "4"]);
        assert_eq!((card.pin(), card.puk()), (b"123456".to_vec(), b"12345678".to_vec()));
        let info = rig.ykman(&["--reader", r, "piv", "info"]);
        assert!(info.contains("PIN tries remaining:      5/5") || info.contains("5/5"), "{info}");

        rig.ykman(&["--reader", r, "piv", "reset", "-f"]);
        assert_eq!(card.pin(), b"123456");
        assert_eq!(card.puk(), b"12345678");
        let default_alg = if fw >= (5, 7, 0) { 0x0A } else { 0x03 };
        assert_eq!(card.management_key(), (default_alg, hex::decode(MGMT_KEY).unwrap()));
        assert!(card.slot_public_key_spki(0x9d).is_none());
    }
}

#[test]
fn several_pairs_have_unique_reader_names() {
    let rig = Rig::new(2);
    let readers = rig.pcscd.readers();
    let listed = rig.pcscd.list_readers().unwrap();
    assert_eq!(readers.len(), 4);
    let mut names: Vec<&str> = readers.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 4, "{readers:?}");
    for r in &readers {
        assert!(listed.contains(&r.name), "{} not listed by pcscd: {listed:?}", r.name);
    }
    let card = rig.card(33_333_333, (5, 4, 3));
    let reader = rig.insert(&card, 3);
    let info = rig.ykman(&["--reader", &reader, "info"]);
    assert!(info.contains("33333333"), "{info}");
    let info = rig.ykman(&["--device", "33333333", "info"]);
    assert!(info.contains("33333333"), "{info}");
}

#[test]
fn rsa2048_generate_sign_and_attest() {
    let rig = Rig::new(1);
    let card = rig.card(10_000_700, (5, 4, 3));
    let reader = rig.insert(&card, 0);
    let openssl = tool("openssl");
    // RSA2048 is yubico-piv-tool's default algorithm; 9c has PIN policy "always".
    rig.piv_tool(&reader, &["-a", "generate", "-s", "9c", "-o", "rsa.pem"]);
    rig.ykman(&["piv", "certificates", "generate", "-m", MGMT_KEY, "-P", "123456", "-s", "CN=rsa-9c", "9c", "rsa.pem"]);
    rig.ykman(&["piv", "certificates", "export", "9c", "rsa-cert.pem"]);
    let ok = rig.ok(&openssl, &["verify", "-CAfile", "rsa-cert.pem", "-check_ss_sig", "rsa-cert.pem"]);
    assert!(ok.contains("rsa-cert.pem: OK"), "{ok}");
    let cert_key = rig.ok(&openssl, &["x509", "-in", "rsa-cert.pem", "-noout", "-pubkey"]);
    assert_eq!(cert_key.trim(), std::fs::read_to_string(rig.path("rsa.pem")).unwrap().trim());
    rig.piv_tool(
        &reader,
        &["-a", "verify-pin", "-P", "123456", "-a", "test-signature", "-s", "9c", "-i", "rsa-cert.pem"],
    );
    // PIN "always": a signature without a fresh VERIFY is refused.
    let out =
        rig.run(&tool("yubico-piv-tool"), &["-r", &reader, "-a", "test-signature", "-s", "9c", "-i", "rsa-cert.pem"]);
    assert!(!out.status.success(), "signing with 9c without the PIN succeeded");

    rig.piv_tool(&reader, &["-a", "attest", "-s", "9c", "-o", "attest.pem"]);
    rig.piv_tool(&reader, &["-a", "read-certificate", "-s", "f9", "-o", "f9.pem"]);
    std::fs::write(rig.path("root.pem"), rig.root.cert_pem()).unwrap();
    let verify = rig.ok(&openssl, &["verify", "-CAfile", "root.pem", "-untrusted", "f9.pem", "attest.pem"]);
    assert!(verify.contains("attest.pem: OK"), "{verify}");
    // The inspection helper's PKCS#1 v1.5 signature verifies too.
    std::fs::write(rig.path("msg.txt"), b"helper").unwrap();
    std::fs::write(rig.path("msg.sig"), card.sign_with_slot(0x9c, b"helper").unwrap()).unwrap();
    let ok = rig.ok(&openssl, &["dgst", "-sha256", "-verify", "rsa.pem", "-signature", "msg.sig", "msg.txt"]);
    assert!(ok.contains("Verified OK"), "{ok}");
}
