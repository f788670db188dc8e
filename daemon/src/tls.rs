//! TLS for the HTTP listener (rustls). Two sources of the server identity:
//! - `files`: a PEM chain and key an operator provides;
//! - `appliance-ca`: a P-256 key pair generated in the HSM (`system_key` role `tls-server`),
//!   certified by the appliance CA for `http.server_names`, renewed at start when the names
//!   changed or less than 30 days remain, and while running by the `tls-renewal` job
//!   ([`TlsRenewal`]), which swaps the certificate new handshakes get. Handshake signatures are
//!   HSM operations through [`HsmTlsKey`]; the private key never leaves the HSM.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use countersign_hsm::{HashAlg, Hsm, KeyAlgorithm, KeyId, SignInput, SignScheme};
use countersign_pki::ecdsa_raw_to_der;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{ServerConfig, SignatureAlgorithm, SignatureScheme};

use crate::settings::HttpTls;
use countersign::ca::CaService;
use countersign::store::{AuthAuditRow, Store};
use countersign_core::caller::Caller;

const ROLE: &str = "tls-server";
/// Renew the certificate when fewer days than this remain.
const RENEW_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
    #[error("http.tls = \"appliance-ca\" needs the appliance CA: {0} (start without TLS, run `countersign ca init`, then enable it)")]
    Ca(String),
    #[error("HSM: {0}")]
    Hsm(#[from] countersign_hsm::HsmError),
    #[error("store: {0}")]
    Store(#[from] countersign::store::StoreError),
    #[error(transparent)]
    Key(#[from] countersign::system_keys::SystemKeyError),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, TlsError> {
    Ok(ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?)
}

/// The listener's TLS: its configuration, and for `appliance-ca` the renewal that keeps its
/// certificate current.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub renewal: Option<TlsRenewal>,
}

/// The listener's TLS configuration; `None` when `http.tls = "off"`.
pub fn server_config(
    tls: &HttpTls,
    hsm: &Hsm,
    store: &Arc<Store>,
    ca: &CaService,
    clock: &countersign::clock::Clock,
) -> Result<Option<ServerTls>, TlsError> {
    let mut renewal = None;
    let mut config = match tls {
        HttpTls::Files { cert_file, key_file } => {
            let file_err = |path: &Path| {
                let path = path.display().to_string();
                move |e: rustls::pki_types::pem::Error| TlsError::File { path, reason: e.to_string() }
            };
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
                .map_err(file_err(cert_file))?
                .collect::<Result<_, _>>()
                .map_err(file_err(cert_file))?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(file_err(key_file))?;
            builder()?.with_no_client_auth().with_single_cert(chain, key)?
        }
        HttpTls::ApplianceCa { server_names } => {
            let key = appliance_key(hsm, store, ca, server_names, clock.now_ms() / 1000)?;
            let current = Arc::new(Current(RwLock::new(key)));
            renewal = Some(TlsRenewal {
                current: current.clone(),
                hsm: hsm.clone(),
                store: store.clone(),
                ca: ca.clone(),
                names: server_names.clone(),
                clock: clock.clone(),
            });
            builder()?.with_no_client_auth().with_cert_resolver(current)
        }
        HttpTls::Off => return Ok(None),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(ServerTls { config: Arc::new(config), renewal }))
}

/// Renews the appliance-CA certificate of a running listener when it is due.
#[derive(Debug, Clone)]
pub struct TlsRenewal {
    current: Arc<Current>,
    hsm: Hsm,
    store: Arc<Store>,
    ca: CaService,
    names: Vec<String>,
    clock: countersign::clock::Clock,
}

impl TlsRenewal {
    /// Issues a new certificate when fewer than 30 days remain (audited) and serves it to new
    /// handshakes. Returns whether it did. Blocking (an HSM signature).
    pub fn renew_if_due(&self) -> Result<bool, TlsError> {
        let key = appliance_key(&self.hsm, &self.store, &self.ca, &self.names, self.clock.now_ms() / 1000)?;
        let mut current = self.current.0.write().unwrap_or_else(PoisonError::into_inner);
        let changed = current.cert.first() != key.cert.first();
        if changed {
            *current = key;
        }
        Ok(changed)
    }
}

/// The HSM key pair and its current certificate (renewed when needed).
fn appliance_key(
    hsm: &Hsm,
    store: &Store,
    ca: &CaService,
    names: &[String],
    now_s: i64,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let ca_der = ca.certificate_der().map_err(|e| TlsError::Ca(e.to_string()))?;
    let id = countersign::system_keys::key_pair(hsm, store, ROLE, KeyAlgorithm::EcP256)?;
    let spki = hsm.public_key(&id, KeyAlgorithm::EcP256)?.to_spki_der()?;
    let current = store.system_certificate(ROLE)?.filter(|c| {
        c.names == names
            && c.not_after - now_s > RENEW_DAYS * 86_400
            && countersign_pki::certificate_info(&c.der)
                .is_ok_and(|i| countersign_pki::spki_matches(&i.spki_der, &spki))
    });
    let leaf = match current {
        Some(c) => c.der,
        None => {
            let der = ca
                .issue_server(&Caller::appliance("countersignd"), &spki, names)
                .map_err(|e| TlsError::Ca(e.to_string()))?;
            let not_after = countersign_pki::certificate_info(&der).map(|i| i.not_after).unwrap_or(now_s);
            let mut audit = AuthAuditRow::new(&Caller::appliance("countersignd"), "tls/certificate", "ok");
            audit.detail = Some(format!("TLS server certificate for {} issued by the appliance CA", names.join(", ")));
            store.set_system_certificate(ROLE, &der, names, not_after, &audit)?;
            der
        }
    };
    let key = Arc::new(HsmTlsKey { hsm: hsm.clone(), id });
    Ok(Arc::new(CertifiedKey::new(vec![CertificateDer::from(leaf), CertificateDer::from(ca_der)], key)))
}

/// The current certificate; [`TlsRenewal`] swaps it.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The TLS server key in the HSM: ECDSA P-256 with SHA-256.
#[derive(Debug, Clone)]
pub struct HsmTlsKey {
    hsm: Hsm,
    id: KeyId,
}

impl SigningKey for HsmTlsKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&SignatureScheme::ECDSA_NISTP256_SHA256).then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl Signer for HsmTlsKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        // One short PKCS#11 call on the connection's task: the handshake waits for it anyway.
        let raw = self
            .hsm
            .sign(&self.id, KeyAlgorithm::EcP256, SignScheme::Ecdsa, HashAlg::Sha256, SignInput::Message(message))
            .map_err(|e| rustls::Error::General(format!("HSM: {e}")))?;
        ecdsa_raw_to_der(&raw).map_err(|e| rustls::Error::General(format!("signature encoding: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}
