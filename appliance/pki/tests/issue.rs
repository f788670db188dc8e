//! The appliance CA: self-signed certificate, issued card certificates and the CSR, checked with the real openssl
//! binary, plus the subject template and the refusals of issue_certificate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failed step must abort the test loudly"
)]

mod common;

use common::{openssl, write_pem, SoftSigner, TestKey, DAY, NOW};
use countersign_pki::{
    ca_csr, certificate_info, issue_certificate, self_signed_ca, CaAlgorithm, CaConfig, CaSigner, CertificateProfile,
    PkiError, SubjectVars,
};

const VARS: SubjectVars<'static> =
    SubjectVars { login: "alice", realm: "staff", card_serial: "12345678", token_serial: "PIVX0001" };

fn upn_profile() -> CertificateProfile {
    CertificateProfile { upn_domain: Some("corp.example".to_string()), ..CertificateProfile::default() }
}

fn ca(signer: &SoftSigner) -> Vec<u8> {
    self_signed_ca(signer, "CN=Countersign Test CA,O=Countersign", &[0x9c; 16], NOW - DAY, 3650).unwrap()
}

#[test]
fn ca_and_issued_certificate_pass_openssl_verify_for_both_curves() {
    for alg in [CaAlgorithm::EcP256, CaAlgorithm::EcP384] {
        let dir = tempfile::tempdir().unwrap();
        let signer = SoftSigner::new(alg);
        let ca_der = ca(&signer);
        let card = TestKey::p256();
        let leaf =
            issue_certificate(&signer, &ca_der, &card.spki_der(), &upn_profile(), &VARS, &[0x42; 16], NOW).unwrap();
        let ca_pem = write_pem(dir.path(), "ca.pem", &ca_der, "CERTIFICATE");
        let leaf_pem = write_pem(dir.path(), "leaf.pem", &leaf, "CERTIFICATE");
        let (ok, out) = openssl(&[
            "verify",
            "-x509_strict",
            "-attime",
            &NOW.to_string(),
            "-CAfile",
            ca_pem.to_str().unwrap(),
            leaf_pem.to_str().unwrap(),
        ]);
        assert!(ok && out.contains(": OK"), "{alg:?}: {out}");
        // also with the purpose a smartcard logon client would check
        let (ok, out) = openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-attime",
            &NOW.to_string(),
            "-CAfile",
            ca_pem.to_str().unwrap(),
            leaf_pem.to_str().unwrap(),
        ]);
        assert!(ok, "{alg:?} sslclient: {out}");

        // negative control: the same leaf does not verify under another CA with the same name
        let other = SoftSigner::new(alg);
        let other_pem = write_pem(dir.path(), "other.pem", &ca(&other), "CERTIFICATE");
        let (ok, out) = openssl(&[
            "verify",
            "-attime",
            &NOW.to_string(),
            "-CAfile",
            other_pem.to_str().unwrap(),
            leaf_pem.to_str().unwrap(),
        ]);
        assert!(!ok, "verified under the wrong CA: {out}");
    }
}

#[test]
fn ca_certificate_extensions_as_openssl_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SoftSigner::new(CaAlgorithm::EcP384);
    let ca_pem = write_pem(dir.path(), "ca.pem", &ca(&signer), "CERTIFICATE");
    let (ok, text) = openssl(&["x509", "-in", ca_pem.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("X509v3 Basic Constraints: critical"), "{text}");
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("ecdsa-with-SHA384"), "{text}");
    assert!(text.contains("Subject: O = Countersign, CN = Countersign Test CA"), "{text}");
    let info = certificate_info(&ca(&signer)).unwrap();
    assert_eq!(info.not_after - info.not_before, 3650 * DAY);
    assert_eq!(info.serial_hex, "9c".repeat(16));
}

#[test]
fn issued_certificate_carries_the_profile() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SoftSigner::new(CaAlgorithm::EcP256);
    let ca_der = ca(&signer);
    let card = TestKey::p384();
    let leaf = issue_certificate(&signer, &ca_der, &card.spki_der(), &upn_profile(), &VARS, &[0x42; 16], NOW).unwrap();
    let path = write_pem(dir.path(), "leaf.pem", &leaf, "CERTIFICATE");
    let (ok, text) = openssl(&["x509", "-in", path.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"), "{text}");
    assert!(text.contains("TLS Web Client Authentication, Microsoft Smartcard Login"), "{text}");
    assert!(text.contains("X509v3 Basic Constraints: critical\n                CA:FALSE"), "{text}");
    assert!(text.contains("othername: UPN::alice@corp.example"), "{text}");
    // the AKI is the CA's SKI
    let ca_path = write_pem(dir.path(), "ca.pem", &ca_der, "CERTIFICATE");
    let (_, ca_text) = openssl(&["x509", "-in", ca_path.to_str().unwrap(), "-noout", "-text"]);
    let ski_line = |t: &str, heading: &str| {
        let lines: Vec<&str> = t.lines().collect();
        let at = lines.iter().position(|l| l.contains(heading)).unwrap();
        lines[at + 1].trim().to_string()
    };
    assert_eq!(ski_line(&text, "X509v3 Authority Key Identifier"), ski_line(&ca_text, "X509v3 Subject Key Identifier"));
    assert!(text.contains("Subject: O = Countersign, OU = staff, CN = alice"), "{text}");
    assert!(text.contains("Issuer: O = Countersign, CN = Countersign Test CA"), "{text}");

    let info = certificate_info(&leaf).unwrap();
    assert_eq!(info.not_before, NOW - countersign_pki::BACKDATE_SECONDS);
    assert_eq!(info.not_after, NOW + 365 * DAY);
    assert!(countersign_pki::spki_matches(&info.spki_der, &card.spki_der()));

    // a profile without EKUs and UPN has neither extension
    let bare = CertificateProfile { client_auth: false, smartcard_logon: false, ..CertificateProfile::default() };
    let leaf = issue_certificate(&signer, &ca_der, &card.spki_der(), &bare, &VARS, &[0x43; 16], NOW).unwrap();
    let path = write_pem(dir.path(), "bare.pem", &leaf, "CERTIFICATE");
    let (_, text) = openssl(&["x509", "-in", path.to_str().unwrap(), "-noout", "-text"]);
    assert!(!text.contains("Extended Key Usage") && !text.contains("Alternative Name"), "{text}");
}

#[test]
fn csr_passes_openssl_req_verify() {
    for alg in [CaAlgorithm::EcP256, CaAlgorithm::EcP384] {
        let dir = tempfile::tempdir().unwrap();
        let signer = SoftSigner::new(alg);
        let csr = ca_csr(&signer, "CN=Countersign Appliance CA,O=Example Corp,C=DE").unwrap();
        let path = write_pem(dir.path(), "ca.csr", &csr, "CERTIFICATE REQUEST");
        let (ok, out) = openssl(&["req", "-in", path.to_str().unwrap(), "-verify", "-noout", "-subject"]);
        assert!(ok && out.contains("verify OK"), "{alg:?}: {out}");
        assert!(out.contains("C = DE, O = Example Corp, CN = Countersign Appliance CA"), "{out}");

        // tampering with the signed part breaks the signature
        let mut broken = csr.clone();
        let at = broken.windows(7).position(|w| w == b"Example").unwrap();
        broken[at] = b'X';
        let path = write_pem(dir.path(), "broken.csr", &broken, "CERTIFICATE REQUEST");
        let (ok, out) = openssl(&["req", "-in", path.to_str().unwrap(), "-verify", "-noout"]);
        assert!(!ok || !out.contains("verify OK"), "{out}");
    }
}

#[test]
fn subject_values_are_escaped_not_interpreted() {
    let dir = tempfile::tempdir().unwrap();
    let signer = SoftSigner::new(CaAlgorithm::EcP256);
    let ca_der = ca(&signer);
    let card = TestKey::p256();
    let login = "eve,O=Evil+CN=root=x\\";
    let vars = SubjectVars { login, realm: " #lead", ..VARS };
    let leaf =
        issue_certificate(&signer, &ca_der, &card.spki_der(), &CertificateProfile::default(), &vars, &[7; 16], NOW)
            .unwrap();
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&leaf).unwrap();
    let subject = &cert.tbs_certificate.subject;
    assert_eq!(subject.0.len(), 3, "the login must not add RDNs: {subject}");
    let values: Vec<String> = subject
        .0
        .iter()
        .map(|rdn| {
            assert_eq!(rdn.0.len(), 1, "no multi-valued RDN may appear");
            String::from_utf8(rdn.0.get(0).unwrap().value.value().to_vec()).unwrap()
        })
        .collect();
    assert_eq!(values, vec!["Countersign".to_string(), " #lead".to_string(), login.to_string()]);

    let path = write_pem(dir.path(), "leaf.pem", &leaf, "CERTIFICATE");
    let (_, out) = openssl(&["x509", "-in", path.to_str().unwrap(), "-noout", "-subject", "-nameopt", "RFC2253"]);
    assert!(out.contains(r"CN=eve\,O=Evil\+CN=root=x\\,OU=\ #lead,O=Countersign"), "{out}");
}

#[test]
fn issuing_refuses_a_foreign_ca_certificate_and_times_outside_the_ca() {
    let signer = SoftSigner::new(CaAlgorithm::EcP256);
    let ca_der = ca(&signer);
    let card = TestKey::p256();
    let profile = CertificateProfile::default();
    let other = SoftSigner::new(CaAlgorithm::EcP256);
    let err = issue_certificate(&other, &ca_der, &card.spki_der(), &profile, &VARS, &[1; 16], NOW).unwrap_err();
    assert!(matches!(err, PkiError::SignerKeyMismatch), "{err}");

    let err =
        issue_certificate(&signer, &ca_der, &card.spki_der(), &profile, &VARS, &[1; 16], NOW - 2 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::NotYetValid { .. }), "{err}");
    let err =
        issue_certificate(&signer, &ca_der, &card.spki_der(), &profile, &VARS, &[1; 16], NOW + 3650 * DAY).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");

    // ten days before the CA ends, a one-year profile is cut to the CA's notAfter
    let ca_end = certificate_info(&ca_der).unwrap().not_after;
    let leaf =
        issue_certificate(&signer, &ca_der, &card.spki_der(), &profile, &VARS, &[1; 16], ca_end - 10 * DAY).unwrap();
    assert_eq!(certificate_info(&leaf).unwrap().not_after, ca_end);

    // an issued end-entity certificate cannot act as the CA certificate
    let leaf_signer_ca =
        issue_certificate(&signer, &ca_der, &signer.public_key_spki_der().unwrap(), &profile, &VARS, &[2; 16], NOW)
            .unwrap();
    let err =
        issue_certificate(&signer, &leaf_signer_ca, &card.spki_der(), &profile, &VARS, &[3; 16], NOW).unwrap_err();
    assert!(matches!(err, PkiError::Config(_)), "{err}");
}

#[test]
fn bad_templates_and_serials_are_refused() {
    let signer = SoftSigner::new(CaAlgorithm::EcP256);
    let ca_der = ca(&signer);
    let card = TestKey::p256();
    let profile = CertificateProfile { subject: "CN={user}".to_string(), ..CertificateProfile::default() };
    let err = issue_certificate(&signer, &ca_der, &card.spki_der(), &profile, &VARS, &[1; 16], NOW).unwrap_err();
    assert!(err.to_string().contains("unknown variable {user}"), "{err}");
    let empty_realm = SubjectVars { realm: "", ..VARS };
    let err = issue_certificate(
        &signer,
        &ca_der,
        &card.spki_der(),
        &CertificateProfile::default(),
        &empty_realm,
        &[1; 16],
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::BadSubject { .. }), "{err}");
    let err = self_signed_ca(&signer, "CN=x", &[0; 16], NOW, 10).unwrap_err();
    assert!(matches!(err, PkiError::Config(_)), "{err}");
    let err = self_signed_ca(&signer, "XX=x", &[1; 16], NOW, 10).unwrap_err();
    assert!(matches!(err, PkiError::BadSubject { .. }), "{err}");
}

#[test]
fn config_defaults_and_unknown_keys() {
    let config: CaConfig = toml::from_str("").unwrap();
    assert_eq!(config.algorithm, "ec-p256");
    assert_eq!(config.subject, "CN=Countersign Appliance CA");
    assert_eq!(config.validity_days, 3650);
    assert_eq!(config.profile.validity_days, 365);
    assert_eq!(config.profile.subject, "CN={login},OU={realm},O=Countersign");
    assert!(config.profile.client_auth && config.profile.smartcard_logon && config.profile.upn_domain.is_none());
    assert_eq!(config.attestation_roots[0], std::path::PathBuf::from("/etc/countersign/yubico-piv-root-ca.pem"));
    config.validate().unwrap();

    let config: CaConfig =
        toml::from_str("algorithm = \"ec-p384\"\n[profile]\nupn_domain = \"corp.example\"\nvalidity_days = 30\n")
            .unwrap();
    assert_eq!(CaAlgorithm::from_config(&config.algorithm).unwrap(), CaAlgorithm::EcP384);
    assert_eq!(config.profile.validity_days, 30);
    assert!(config.profile.smartcard_logon);

    assert!(toml::from_str::<CaConfig>("algoritm = \"ec-p256\"").is_err());
    assert!(toml::from_str::<CaConfig>("[profile]\nclientauth = true").is_err());
    let config: CaConfig = toml::from_str("algorithm = \"rsa-2048\"").unwrap();
    assert!(config.validate().unwrap_err().to_string().contains("rsa-2048"));
}

#[test]
fn signer_returning_garbage_is_caught() {
    struct Liar(SoftSigner);
    impl CaSigner for Liar {
        fn algorithm(&self) -> CaAlgorithm {
            self.0.algorithm()
        }
        fn public_key_spki_der(&self) -> Result<Vec<u8>, PkiError> {
            self.0.public_key_spki_der()
        }
        fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
            self.0.sign_raw(&[message, b"x"].concat())
        }
    }
    let err = self_signed_ca(&Liar(SoftSigner::new(CaAlgorithm::EcP256)), "CN=x", &[1; 16], NOW, 10).unwrap_err();
    assert!(matches!(err, PkiError::Signer(_)), "{err}");
}

#[test]
fn pem_round_trip_and_bundles() {
    let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
    let pem = countersign_pki::to_pem(&der, "CERTIFICATE");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(countersign_pki::from_pem(&format!("# comment\n{pem}")).unwrap(), der);
    let bundle = format!("{pem}text between\n{}", countersign_pki::to_pem(&[1, 2, 3], "CERTIFICATE"));
    assert_eq!(countersign_pki::certificates_from_pem(&bundle).unwrap(), vec![der.clone(), vec![1, 2, 3]]);
    assert!(countersign_pki::from_pem("nothing here").is_err());
    assert!(countersign_pki::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n").is_err());
    assert!(countersign_pki::from_pem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").is_err());
}
