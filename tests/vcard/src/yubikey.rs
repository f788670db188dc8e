//! [`VirtualYubiKey`]: the card state behind a mutex (it survives removal and re-insertion),
//! the thread that serves it over vpcd while inserted, and inspection helpers for tests.

use std::fmt;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::apdu::Apdu;
use crate::attestation::TestRoot;
use crate::card::Card;
use crate::piv::{self, Piv, SlotKeyMaterial};
use crate::{oath, tlv, vpcd};

/// Who issues the card's f9 attestation certificate.
#[derive(Clone, Debug, Default)]
pub enum AttestationIssuer {
    /// The [`TestRoot`] passed to [`VirtualYubiKey::new`].
    #[default]
    Root,
    /// Another root (e.g. one the appliance does not trust).
    Other(TestRoot),
}

/// What kind of YubiKey to emulate.
#[derive(Clone, Debug)]
pub struct CardSpec {
    /// Serial number (management, PIV GET SERIAL, attestation).
    pub serial: u32,
    /// Firmware version; >= 5.7 means an AES-192 default management key.
    pub firmware: (u8, u8, u8),
    /// Who signs the f9 attestation certificate.
    pub attestation: AttestationIssuer,
}

impl CardSpec {
    /// A card with the given serial and firmware whose f9 certificate the root issues.
    pub fn new(serial: u32, firmware: (u8, u8, u8)) -> CardSpec {
        CardSpec { serial, firmware, attestation: AttestationIssuer::Root }
    }
}

/// The shortest time a card stays out of a reader between removal and re-insertion.
pub const MIN_ABSENCE: Duration = Duration::from_millis(900);

type RemovePredicate = Box<dyn Fn(&Apdu) -> bool + Send + 'static>;

struct Connection {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

struct Shared {
    /// True while the serving thread holds a live connection.
    connected: AtomicBool,
    /// When the card last left a reader.
    removed_at: Mutex<Option<Instant>>,
    card: Mutex<Card>,
    conn: Mutex<Option<Connection>>,
    remove_on: Mutex<Option<RemovePredicate>>,
}

/// An emulated YubiKey 5 (PIV, OATH, management, OTP status). Clones share one card.
#[derive(Clone)]
pub struct VirtualYubiKey {
    shared: Arc<Shared>,
}

impl fmt::Debug for VirtualYubiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let card = self.card();
        f.debug_struct("VirtualYubiKey").field("serial", &card.serial).field("firmware", &card.firmware).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VirtualYubiKey {
    /// A card in factory state: PIN 123456, PUK 12345678, the default management key (3DES
    /// before firmware 5.7, AES-192 from 5.7), empty slots, empty OATH applet, no password.
    pub fn new(spec: CardSpec, root: &TestRoot) -> Self {
        let f9_key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
        let issuer = match &spec.attestation {
            AttestationIssuer::Root => root,
            AttestationIssuer::Other(other) => other,
        };
        let f9_cert = issuer.issue_f9(&f9_key, spec.serial);
        let piv = Piv::new(spec.firmware, spec.serial, f9_key, f9_cert);
        let card = Card::new(spec.firmware, spec.serial, piv);
        VirtualYubiKey {
            shared: Arc::new(Shared {
                connected: AtomicBool::new(false),
                removed_at: Mutex::new(None),
                card: Mutex::new(card),
                conn: Mutex::new(None),
                remove_on: Mutex::new(None),
            }),
        }
    }

    fn card(&self) -> MutexGuard<'_, Card> {
        lock(&self.shared.card)
    }

    /// The serial number.
    pub fn serial(&self) -> u32 {
        self.card().serial
    }

    /// Inserts the card into the vpcd reader listening on `port` (127.0.0.1).
    ///
    /// pcscd looks for cards every 400 ms. When a card vanishes during a transmit, pcscd marks
    /// the reader empty at once, but its poller only learns of the removal if it sees the slot
    /// empty; a card back within one poll interval stays "removed" for good. So a re-insertion
    /// within [`MIN_ABSENCE`] of the last removal waits out the rest of it (a hand can't be
    /// faster).
    pub fn insert(&self, port: u16) -> io::Result<()> {
        if let Some(at) = *lock(&self.shared.removed_at) {
            if let Some(rest) = MIN_ABSENCE.checked_sub(at.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        let mut conn = lock(&self.shared.conn);
        if conn.as_ref().is_some_and(|c| !c.thread.is_finished()) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, "card is already inserted"));
        }
        if let Some(old) = conn.take() {
            let _ = old.thread.join();
        }
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        self.shared.connected.store(true, Ordering::SeqCst);
        stream.set_nodelay(true)?;
        let serving = stream.try_clone()?;
        // The thread holds only a weak reference: dropping the last handle closes the connection.
        let shared = Arc::downgrade(&self.shared);
        let thread =
            std::thread::Builder::new().name(format!("vyubikey-{port}")).spawn(move || serve(serving, &shared))?;
        *conn = Some(Connection { stream, thread });
        Ok(())
    }

    /// Removes the card (closes the connection); a no-op when not inserted.
    pub fn remove(&self) {
        if let Some(c) = lock(&self.shared.conn).take() {
            let _ = c.stream.shutdown(Shutdown::Both);
            let _ = c.thread.join();
        }
        if self.shared.connected.swap(false, Ordering::SeqCst) {
            *lock(&self.shared.removed_at) = Some(Instant::now());
        }
        self.card().reset();
    }

    /// Whether the card is currently connected to a reader.
    pub fn is_inserted(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// The next command APDU matching `pred` is not answered: the card is yanked instead
    /// (connection closed). The predicate fires once; re-inserting works as usual.
    pub fn remove_on(&self, pred: impl Fn(&Apdu) -> bool + Send + 'static) {
        *lock(&self.shared.remove_on) = Some(Box::new(pred));
    }

    /// The PIV management key: algorithm (0x03 3DES, 0x08/0x0A/0x0C AES) and key bytes.
    pub fn management_key(&self) -> (u8, Vec<u8>) {
        let card = self.card();
        (card.piv.mgmt_alg, card.piv.mgmt_key.clone())
    }

    /// The secret of the OATH credential `name`, for tests that look for it elsewhere.
    pub fn oath_secret(&self, name: &str) -> Option<Vec<u8>> {
        let card = self.card();
        card.oath.credentials.iter().find(|c| c.name == name.as_bytes()).map(|c| c.key().to_vec())
    }

    /// The current PIV PIN.
    pub fn pin(&self) -> Vec<u8> {
        self.card().piv.pin.clone()
    }

    /// The current PIV PUK.
    pub fn puk(&self) -> Vec<u8> {
        self.card().piv.puk.clone()
    }

    /// The DER certificate stored for a slot (from its 5FC1xx object, tag 70).
    pub fn slot_certificate(&self, slot: u8) -> Option<Vec<u8>> {
        let card = self.card();
        let obj = card.piv.objects.get(&piv::cert_object_id(slot)?)?;
        tlv::find(obj, 0x70).map(<[u8]>::to_vec)
    }

    /// The SubjectPublicKeyInfo (DER) of the key in a slot.
    pub fn slot_public_key_spki(&self, slot: u8) -> Option<Vec<u8>> {
        self.card().piv.keys.get(&slot).map(piv::SlotKey::spki_der)
    }

    /// Signs like the card would for a client: ECDSA with SHA-256 (P-256) or SHA-384 (P-384),
    /// DER encoded; RSA PKCS#1 v1.5 with SHA-256.
    pub fn sign_with_slot(&self, slot: u8, message: &[u8]) -> Option<Vec<u8>> {
        let card = self.card();
        let key = card.piv.keys.get(&slot)?;
        let digest = match &key.material {
            SlotKeyMaterial::P256(_) => sha2::Sha256::digest(message).to_vec(),
            SlotKeyMaterial::P384(_) => sha2::Sha384::digest(message).to_vec(),
            SlotKeyMaterial::Rsa(_, k) => {
                // PKCS#1 v1.5 with SHA-256, padded here as a client would before sending it.
                use rsa::traits::PublicKeyParts;
                const SHA256_PREFIX: [u8; 19] = [
                    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
                    0x00, 0x04, 0x20,
                ];
                let t = [&SHA256_PREFIX[..], &sha2::Sha256::digest(message)].concat();
                let mut em = vec![0x00, 0x01];
                em.resize(k.size() - t.len() - 1, 0xFF);
                em.push(0x00);
                em.extend(t);
                em
            }
        };
        key.sign_digest(&digest)
    }

    /// Names of the OATH credentials, in storage order.
    pub fn oath_credentials(&self) -> Vec<String> {
        self.card().oath.credentials.iter().map(|c| String::from_utf8_lossy(&c.name).into_owned()).collect()
    }

    /// Sets the OATH password as ykman would (PBKDF2-HMAC-SHA1 over the SELECT salt, 1000
    /// iterations, 16 bytes).
    pub fn set_oath_password(&self, password: &str) {
        let mut card = self.card();
        let key = oath::derive_access_key(password, &card.oath.salt);
        card.oath.access_key = Some(key);
    }

    /// Every command APDU received (chained pieces individually), oldest first.
    pub fn apdu_log(&self) -> Vec<Apdu> {
        self.card().log.clone()
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.conn).take() {
            let _ = c.stream.shutdown(Shutdown::Both);
        }
    }
}

fn serve(mut stream: TcpStream, weak: &Weak<Shared>) {
    let atr = vpcd::YUBIKEY5_USB_ATR;
    let trace = std::env::var_os("VCARD_TRACE").is_some();
    while let Ok(event) = vpcd::read_event(&mut stream, &atr) {
        let Some(shared) = weak.upgrade() else { return };
        if trace && !matches!(event, vpcd::Event::Command(_)) {
            eprintln!("vcard event {event:?}");
        }
        match event {
            vpcd::Event::Reset => lock(&shared.card).reset(),
            vpcd::Event::AtrSent => {}
            vpcd::Event::Command(raw) => {
                let yank = {
                    let mut pred = lock(&shared.remove_on);
                    let hit = match (pred.as_ref(), Apdu::parse(&raw)) {
                        (Some(p), Some(apdu)) => p(&apdu),
                        _ => false,
                    };
                    if hit {
                        *pred = None;
                    }
                    hit
                };
                if yank {
                    let mut card = lock(&shared.card);
                    if let Some(apdu) = Apdu::parse(&raw) {
                        card.log.push(apdu);
                    }
                    card.reset();
                    shared.connected.store(false, Ordering::SeqCst);
                    *lock(&shared.removed_at) = Some(Instant::now());
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                let response = lock(&shared.card).process(&raw);
                if trace {
                    eprintln!("vcard > {}\nvcard < {}", hex::encode(&raw), hex::encode(&response));
                }
                if vpcd::send(&mut stream, &response).is_err() {
                    break;
                }
            }
        }
    }
    let Some(shared) = weak.upgrade() else { return };
    if shared.connected.swap(false, Ordering::SeqCst) {
        *lock(&shared.removed_at) = Some(Instant::now());
    }
    lock(&shared.card).reset();
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    fn f9_issuer(card: &VirtualYubiKey) -> String {
        let der = card.slot_certificate(0xF9).unwrap();
        x509_cert::Certificate::from_der(&der).unwrap().tbs_certificate.issuer.to_string()
    }

    #[test]
    fn attestation_issuer_and_factory_state() {
        let root = TestRoot::generate("Root A");
        let other = TestRoot::generate("Root B");
        let a = VirtualYubiKey::new(CardSpec::new(1, (5, 4, 3)), &root);
        let spec = CardSpec { serial: 2, firmware: (5, 7, 1), attestation: AttestationIssuer::Other(other) };
        let b = VirtualYubiKey::new(spec, &root);
        assert_eq!(f9_issuer(&a), "CN=Root A");
        assert_eq!(f9_issuer(&b), "CN=Root B");
        assert_eq!(a.management_key(), (0x03, piv::DEFAULT_MGMT_KEY.to_vec()));
        assert_eq!(b.management_key(), (0x0A, piv::DEFAULT_MGMT_KEY.to_vec()));
        assert_eq!((a.pin(), a.puk()), (b"123456".to_vec(), b"12345678".to_vec()));
        assert!(a.slot_certificate(0x9A).is_none() && a.slot_public_key_spki(0x9A).is_none());
        assert!(a.oath_credentials().is_empty() && a.apdu_log().is_empty() && !a.is_inserted());
    }
}
