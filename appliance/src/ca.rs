//! The appliance CA: its key pair generated in the HSM (never outside it), its certificate
//! (self-signed, or issued by an external CA for the CSR it makes), and issuing certificates
//! to keys generated on cards. Every signature the CA makes is an HSM operation through
//! [`HsmCaSigner`]; this module holds no private key material.

use countersign_core::caller::Caller;
use countersign_core::error::Refusal;
use std::sync::Arc;

use countersign_hsm::{Hsm, HsmError, KeyAlgorithm, KeyId, SignInput, SignScheme};
use countersign_pki::{CaAlgorithm, CaSigner, CertificateProfile, PkiError, SubjectVars};
use serde::Serialize;

use crate::service_error::{blocking, TokenError};
use crate::store::{AuthAuditRow, CaRecord, Store, StoreError};

/// The one CA the appliance runs.
pub const CA_NAME: &str = "appliance";

/// The appliance CA and the certificates it issues: resolved values, read from the
/// configuration by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSettings {
    /// The algorithm of the CA key generated in the HSM.
    pub algorithm: CaAlgorithm,
    /// The CA's own subject (RFC 4514).
    pub subject: String,
    /// Validity of a self-signed CA certificate, in days (positive).
    pub validity_days: u32,
    /// Validity of issued certificates, in days (positive; cut at the CA's own expiry).
    pub cert_validity_days: u32,
    /// Subject of issued certificates; `{login}`, `{realm}`, `{serial}` (card), `{token}`.
    pub cert_subject: String,
    /// Issued certificates carry the extended key usage TLS client authentication.
    pub client_auth: bool,
    /// Issued certificates carry the extended key usage Microsoft smart card logon.
    pub smartcard_logon: bool,
    /// When set, issued certificates carry the UPN `{login}@{upn_domain}` (Windows logon).
    pub upn_domain: Option<String>,
}

/// Why the CA could not be set up or could not issue.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// No CA has been set up.
    #[error("the appliance CA is not set up; run `countersign ca init` first")]
    Missing,
    /// The CA made a CSR and waits for the external CA's certificate.
    #[error("the appliance CA has a CSR but no certificate yet; import the certificate your CA issued with `countersign ca import-cert`")]
    NoCertificate,
    /// `init` on an appliance that has its CA already.
    #[error("the appliance CA already exists; it is not replaced")]
    Exists,
    /// The request is not acceptable (a certificate for another key, a key algorithm a CA
    /// cannot use, a server certificate without a name).
    #[error("{0}")]
    Invalid(String),
    /// The HSM failed (key generation, signing, random serials).
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// A certificate or CSR could not be built or read.
    #[error("certificate: {0}")]
    Pki(#[from] PkiError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<CaError> for TokenError {
    fn from(e: CaError) -> TokenError {
        match e {
            CaError::Missing | CaError::NoCertificate | CaError::Invalid(_) | CaError::Pki(_) => {
                TokenError::Refused(Refusal::Invalid(e.to_string()))
            }
            CaError::Exists => TokenError::Refused(Refusal::Duplicate("the appliance CA".into())),
            CaError::Hsm(h) => TokenError::Hsm(h),
            CaError::Store(s) => TokenError::from(s),
        }
    }
}

/// Signs with a key pair held in the HSM.
#[derive(Debug)]
pub struct HsmCaSigner<'a> {
    hsm: &'a Hsm,
    key: KeyId,
    alg: KeyAlgorithm,
}

fn pki_alg(alg: KeyAlgorithm) -> Result<CaAlgorithm, CaError> {
    match alg {
        KeyAlgorithm::EcP256 => Ok(CaAlgorithm::EcP256),
        KeyAlgorithm::EcP384 => Ok(CaAlgorithm::EcP384),
        other => Err(CaError::Invalid(format!("a CA key must be ec-p256 or ec-p384, not {other}"))),
    }
}

fn hsm_error(e: HsmError) -> PkiError {
    PkiError::Signer(e.to_string())
}

impl CaSigner for HsmCaSigner<'_> {
    fn algorithm(&self) -> CaAlgorithm {
        match self.alg {
            KeyAlgorithm::EcP384 => CaAlgorithm::EcP384,
            _ => CaAlgorithm::EcP256,
        }
    }

    fn public_key_spki_der(&self) -> Result<Vec<u8>, PkiError> {
        self.hsm.public_key(&self.key, self.alg).and_then(|k| k.to_spki_der()).map_err(hsm_error)
    }

    fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.hsm
            .sign(&self.key, self.alg, SignScheme::Ecdsa, self.alg.default_hash(), SignInput::Message(message))
            .map_err(hsm_error)
    }
}

/// What admins see of the CA.
#[derive(Debug, Clone, Serialize)]
pub struct CaView {
    /// The CA's name: always [`CA_NAME`].
    pub name: String,
    /// The key's algorithm (`ec-p256`, `ec-p384`).
    pub algorithm: String,
    /// The subject the CA was set up with (RFC 4514).
    pub subject: String,
    /// The key pair's id on the HSM, hex (never the key itself).
    pub hsm_key_id: String,
    /// PEM; absent while a CSR waits for an external CA.
    pub certificate_pem: Option<String>,
    /// PEM of the CSR made for an external CA; `None` for a self-signed CA.
    pub csr_pem: Option<String>,
    /// When the certificate expires, Unix seconds; `None` without a certificate.
    pub not_after: Option<i64>,
    /// Lowercase hex SHA-256 of the certificate's DER; `None` without a certificate.
    pub fingerprint: Option<String>,
    /// Whether the certificate's subject is its issuer.
    pub self_signed: bool,
}

/// The appliance CA: set up, certificate import, and issuing to cards and to the appliance's
/// own TLS listener. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CaService {
    store: Arc<Store>,
    hsm: Hsm,
    cfg: CaSettings,
    clock: crate::clock::Clock,
}

impl CaService {
    /// The service, issuing as `cfg` says.
    pub fn new(store: Arc<Store>, hsm: Hsm, cfg: CaSettings, clock: crate::clock::Clock) -> CaService {
        CaService { store, hsm, cfg, clock }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    fn view(&self, r: &CaRecord) -> Result<CaView, CaError> {
        let info = r.certificate.as_deref().map(countersign_pki::certificate_info).transpose()?;
        Ok(CaView {
            name: r.name.clone(),
            algorithm: r.algorithm.clone(),
            subject: r.subject.clone(),
            hsm_key_id: r.hsm_key_id.clone(),
            certificate_pem: r.certificate.as_deref().map(|d| countersign_pki::to_pem(d, "CERTIFICATE")),
            csr_pem: r.csr.as_deref().map(|d| countersign_pki::to_pem(d, "CERTIFICATE REQUEST")),
            not_after: info.as_ref().map(|i| i.not_after),
            fingerprint: info.as_ref().map(|i| i.sha256_fingerprint.clone()),
            self_signed: info.as_ref().is_some_and(|i| i.subject == i.issuer),
        })
    }

    /// The CA as admins see it; refused before `init`.
    pub async fn show(&self) -> Result<CaView, TokenError> {
        let this = self.clone();
        blocking(move || Ok(this.show_blocking()?)).await
    }

    /// Creates the CA key pair in the HSM and either a self-signed certificate or, with
    /// `csr`, a certificate request for an external CA.
    pub async fn init(&self, caller: Caller, csr: bool) -> Result<CaView, TokenError> {
        let this = self.clone();
        blocking(move || Ok(this.init_blocking(&caller, csr)?)).await
    }

    /// Installs the certificate (PEM) an external CA issued for our CSR; it must carry our key.
    pub async fn import_pem(&self, caller: Caller, pem: String) -> Result<CaView, TokenError> {
        let this = self.clone();
        blocking(move || {
            let der =
                countersign_pki::from_pem(&pem).map_err(|e| TokenError::Refused(Refusal::Invalid(e.to_string())))?;
            Ok(this.import_certificate_blocking(&caller, &der)?)
        })
        .await
    }

    /// [`Self::show`] on the calling thread; `Missing` before `init`.
    fn show_blocking(&self) -> Result<CaView, CaError> {
        let r = self.store.ca(CA_NAME)?.ok_or(CaError::Missing)?;
        self.view(&r)
    }

    /// [`Self::init`] on the calling thread.
    fn init_blocking(&self, caller: &Caller, csr: bool) -> Result<CaView, CaError> {
        if self.store.ca(CA_NAME)?.is_some() {
            return Err(CaError::Exists);
        }
        let alg = match self.cfg.algorithm {
            CaAlgorithm::EcP256 => KeyAlgorithm::EcP256,
            CaAlgorithm::EcP384 => KeyAlgorithm::EcP384,
        };
        pki_alg(alg)?;
        let pair = self.hsm.generate_key_pair(&format!("countersign/ca/{CA_NAME}"), alg)?;
        let signer = HsmCaSigner { hsm: &self.hsm, key: pair.id.clone(), alg };
        let now = self.now();
        let (certificate, csr_der) = if csr {
            (None, Some(countersign_pki::ca_csr(&signer, &self.cfg.subject)?))
        } else {
            let serial = self.hsm.random(16)?;
            (
                Some(countersign_pki::self_signed_ca(
                    &signer,
                    &self.cfg.subject,
                    &serial,
                    now,
                    self.cfg.validity_days,
                )?),
                None,
            )
        };
        let rec = CaRecord {
            name: CA_NAME.into(),
            algorithm: alg.to_string(),
            hsm_key_id: pair.id.to_hex(),
            subject: self.cfg.subject.clone(),
            certificate,
            csr: csr_der,
            created_at: now,
            updated_at: now,
        };
        let mut audit = AuthAuditRow::new(caller, "ca/init", "ok");
        audit.detail = Some(format!(
            "{} key {} generated in the HSM; {}",
            alg,
            pair.id.to_hex(),
            if csr { "CSR made" } else { "self-signed certificate" }
        ));
        if let Err(e) = self.store.insert_ca(&rec, &audit) {
            let _ = self.hsm.destroy_objects(&pair.id);
            return Err(e.into());
        }
        self.view(&rec)
    }

    /// [`Self::import_pem`] on the calling thread, with the certificate as DER.
    fn import_certificate_blocking(&self, caller: &Caller, der: &[u8]) -> Result<CaView, CaError> {
        let rec = self.store.ca(CA_NAME)?.ok_or(CaError::Missing)?;
        let signer = self.signer(&rec)?;
        let info = countersign_pki::certificate_info(der)?;
        if !countersign_pki::spki_matches(&info.spki_der, &signer.public_key_spki_der()?) {
            return Err(CaError::Invalid(
                "this certificate is for another key than the appliance CA's; import the certificate issued for the CSR from `countersign ca show`".into(),
            ));
        }
        let mut audit = AuthAuditRow::new(caller, "ca/import-cert", "ok");
        audit.detail = Some(format!("certificate {} issued by {}", info.sha256_fingerprint, info.issuer));
        self.store.set_ca_certificate(CA_NAME, der, &audit)?;
        self.show_blocking()
    }

    fn signer(&self, rec: &CaRecord) -> Result<HsmCaSigner<'_>, CaError> {
        let alg: KeyAlgorithm = rec.algorithm.parse().map_err(HsmError::from)?;
        Ok(HsmCaSigner { hsm: &self.hsm, key: KeyId::from_hex(&rec.hsm_key_id).map_err(HsmError::from)?, alg })
    }

    /// The profile issued certificates follow.
    pub fn profile(&self) -> CertificateProfile {
        CertificateProfile {
            validity_days: self.cfg.cert_validity_days,
            subject: self.cfg.cert_subject.clone(),
            client_auth: self.cfg.client_auth,
            smartcard_logon: self.cfg.smartcard_logon,
            upn_domain: self.cfg.upn_domain.clone(),
            server_auth: false,
            server_names: Vec::new(),
        }
    }

    /// Checks that the CA can issue now (before a card is touched).
    pub fn ready(&self) -> Result<(), CaError> {
        let rec = self.store.ca(CA_NAME)?.ok_or(CaError::Missing)?;
        if rec.certificate.is_none() {
            return Err(CaError::NoCertificate);
        }
        Ok(())
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> Result<Vec<u8>, CaError> {
        self.store.ca(CA_NAME)?.ok_or(CaError::Missing)?.certificate.ok_or(CaError::NoCertificate)
    }

    /// Issues the appliance's own TLS server certificate for `spki_der` (a key in the HSM),
    /// valid for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, caller: &Caller, spki_der: &[u8], names: &[String]) -> Result<Vec<u8>, CaError> {
        let rec = self.store.ca(CA_NAME)?.ok_or(CaError::Missing)?;
        let ca_cert = rec.certificate.as_deref().ok_or(CaError::NoCertificate)?;
        let first = names.first().ok_or_else(|| CaError::Invalid("a server certificate needs a name".into()))?;
        let profile = CertificateProfile {
            validity_days: self.cfg.cert_validity_days,
            subject: "CN={login},O=Countersign".into(),
            client_auth: false,
            smartcard_logon: false,
            upn_domain: None,
            server_auth: true,
            server_names: names.to_vec(),
        };
        let vars = SubjectVars { login: first, realm: "", card_serial: "", token_serial: "" };
        let signer = self.signer(&rec)?;
        let serial = self.hsm.random(16)?;
        let der = countersign_pki::issue_certificate(&signer, ca_cert, spki_der, &profile, &vars, &serial, self.now())?;
        tracing::info!(caller = %caller, names = ?names, "issued the TLS server certificate");
        Ok(der)
    }

    /// Issues a certificate for `spki_der` (a key generated on a card).
    pub fn issue(&self, spki_der: &[u8], vars: &SubjectVars<'_>) -> Result<Vec<u8>, CaError> {
        let rec = self.store.ca(CA_NAME)?.ok_or(CaError::Missing)?;
        let ca_cert = rec.certificate.as_deref().ok_or(CaError::NoCertificate)?;
        let signer = self.signer(&rec)?;
        let serial = self.hsm.random(16)?;
        Ok(countersign_pki::issue_certificate(&signer, ca_cert, spki_der, &self.profile(), vars, &serial, self.now())?)
    }
}
