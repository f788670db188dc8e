//! Smart card readers and cards over PC/SC: listing readers and what is in them (kind, ATR,
//! YubiKey serial and firmware), noticing insertion and removal, and opening one card by
//! reader name or serial for an enrolment. The applet clients ([`piv`], [`oath`]) work on the
//! opened [`Card`].
//!
//! Nothing here assumes a single card: a request names its reader or serial, and without
//! either it proceeds only when exactly one card is present. This module never logs APDU
//! data, PINs or keys; errors name the reader and what the card said.

#![warn(missing_docs, unreachable_pub)]

#[doc(hidden)]
pub mod fuzzing;
pub mod management_key;
pub mod oath;
pub mod piv;
mod tlv;
mod transport;

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use transport::{Card, Response};

/// What went wrong with a reader or a card, in words that name the reader and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The PC/SC service (pcscd) is not running, or stopped; the text is what PC/SC said.
    #[error("the smart card service is not available ({0}); start pcscd (systemctl start pcscd.socket) and try again")]
    NoService(String),
    /// No reader is connected.
    #[error("no smart card reader is connected; plug one in and try again")]
    NoReaders,
    /// The named reader (or `any reader`) holds no card.
    #[error("no card in reader {0}; insert the card and try again")]
    NoCard(String),
    /// The card left the named reader (removed, reset or unpowered) during the operation.
    #[error("the card was removed from {0} during the operation")]
    Removed(String),
    #[error(
        "the card in {0} is in use by another program; close it (ykman, yubico-piv-tool, a browser) and try again"
    )]
    /// Another program holds the card in the named reader.
    InUse(String),
    /// The reader or the card asked for is not there (or no longer); the text says which.
    #[error("{0}")]
    NotFound(String),
    /// Several cards are present and the request named none; the text lists them.
    #[error("{0}")]
    Ambiguous(String),
    /// The card lacks the application the operation needs (no PIV or no OATH applet).
    #[error("{0}")]
    WrongKind(String),
    /// The card refuses until unlocked: a PIN, PUK or key is blocked, or the OATH applet's password
    /// is needed or was wrong.
    #[error("{0}")]
    Locked(String),
    /// The card refused the management key tried in the mutual authentication.
    #[error("the card's management key is neither the factory default nor one this appliance set; reset the card's PIV application (ykman piv reset) or give its management key")]
    WrongManagementKey,
    /// The card refused a command or answered wrongly; the text says what was asked and what the
    /// card said (tries left, applet full, object missing, ...).
    #[error("{0}")]
    Card(String),
    /// The card's answer was malformed or not what the protocol allows.
    #[error("unexpected answer from the card: {0}")]
    Protocol(String),
    /// The request cannot be sent as given (a PIN of the wrong length, an algorithm the card cannot
    /// generate, ...); the card was not asked.
    #[error("{0}")]
    Invalid(String),
    /// Any other PC/SC failure, with the reader named.
    #[error("PC/SC: {0}")]
    Pcsc(String),
}

impl DeviceError {
    fn from_pcsc(e: pcsc::Error, reader: Option<&str>) -> DeviceError {
        let reader = reader.unwrap_or("the reader").to_owned();
        match e {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => DeviceError::NoService(e.to_string()),
            pcsc::Error::NoReadersAvailable => DeviceError::NoReaders,
            pcsc::Error::NoSmartcard => DeviceError::NoCard(reader),
            pcsc::Error::RemovedCard | pcsc::Error::ResetCard | pcsc::Error::UnpoweredCard => {
                DeviceError::Removed(reader)
            }
            pcsc::Error::SharingViolation => DeviceError::InUse(reader),
            pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
                DeviceError::NotFound(format!("reader {reader} is not connected (any more)"))
            }
            other => DeviceError::Pcsc(format!("{other} (reader {reader})")),
        }
    }

    /// Whether the card left the reader (or the reader the machine) mid-operation.
    pub fn is_removal(&self) -> bool {
        matches!(self, DeviceError::Removed(_) | DeviceError::NoCard(_) | DeviceError::NotFound(_))
    }
}

/// What a reader holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReaderInfo {
    /// The reader's name, as PC/SC gives it.
    pub reader: String,
    /// Whether a card is in the reader.
    pub card_present: bool,
    /// `yubikey`, `piv` (another PIV card), `other`, or `none`.
    pub kind: String,
    /// The card's answer to reset, in upper-case hex; `None` without a card, or when it could not
    /// be read.
    pub atr: Option<String>,
    /// A YubiKey's serial number (decimal), or another PIV card's CHUID GUID (hex); `None` when the
    /// card could not be identified by one.
    pub serial: Option<String>,
    /// A YubiKey's firmware version (`major.minor.patch`); `None` for other cards.
    pub firmware: Option<String>,
    /// Why the card could not be identified (in use elsewhere, unresponsive).
    pub note: Option<String>,
}

/// Which card an operation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardSelector {
    /// The card in the reader of this name.
    Reader(String),
    /// The card with this serial (as [`ReaderInfo::serial`] gives it), in whichever reader.
    Serial(String),
    /// The only card present.
    Only,
}

/// A change seen by [`Devices::watch`].
#[derive(Debug, Clone, Serialize)]
pub struct DeviceEvent {
    /// `watching` (first, once), `inserted`, `removed`, `reader-added`, `reader-removed`.
    pub event: String,
    /// The reader's name; for `watching`, how many readers and cards there are, in words.
    pub reader: String,
    /// What the reader now holds, for `inserted`; `None` for every other event.
    pub card: Option<ReaderInfo>,
}

/// The PC/SC service: every call establishes its own context, so a restarted pcscd is picked
/// up without restarting the appliance.
#[derive(Debug, Clone, Default)]
pub struct Devices;

fn context() -> Result<pcsc::Context, DeviceError> {
    pcsc::Context::establish(pcsc::Scope::User).map_err(|e| DeviceError::from_pcsc(e, None))
}

fn reader_names(ctx: &pcsc::Context) -> Result<Vec<CString>, DeviceError> {
    match ctx.list_readers_owned() {
        Ok(r) => Ok(r),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(DeviceError::from_pcsc(e, None)),
    }
}

fn name_of(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

fn version_string(v: (u8, u8, u8)) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

/// Identifies the card: a YubiKey answers GET SERIAL in its PIV application; another PIV card
/// is named by the GUID of its CHUID.
fn identify(card: &Card) -> Result<(String, Option<String>, Option<String>), DeviceError> {
    let piv = match piv::Piv::select(card) {
        Ok(p) => p,
        Err(DeviceError::WrongKind(_)) => {
            // A YubiKey with PIV disabled still has OATH.
            return Ok(match oath::Oath::select(card) {
                Ok(o) => ("yubikey".into(), None, o.version.map(version_string)),
                Err(_) => ("other".into(), None, None),
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(serial) = piv.serial()? {
        return Ok(("yubikey".into(), Some(serial.to_string()), piv.version()?.map(version_string)));
    }
    let guid = piv.read_object(0x5FC102)?.and_then(|chuid| tlv::find(&chuid, 0x34).ok().flatten().map(hex::encode));
    Ok(("piv".into(), guid, None))
}

impl Devices {
    /// Every reader and what is in it.
    pub fn list(&self) -> Result<Vec<ReaderInfo>, DeviceError> {
        let ctx = context()?;
        Ok(reader_names(&ctx)?.iter().map(|r| Self::describe(&ctx, r)).collect())
    }

    fn describe(ctx: &pcsc::Context, reader: &CStr) -> ReaderInfo {
        let mut info = ReaderInfo {
            reader: name_of(reader),
            card_present: false,
            kind: "none".into(),
            atr: None,
            serial: None,
            firmware: None,
            note: None,
        };
        let card = match ctx.connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(c) => Card::new(c, info.reader.clone()),
            Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => return info,
            Err(e) => {
                info.card_present = true;
                info.kind = "other".into();
                info.note = Some(DeviceError::from_pcsc(e, Some(&info.reader)).to_string());
                return info;
            }
        };
        info.card_present = true;
        info.atr = card.atr().ok().map(hex::encode_upper);
        match identify(&card) {
            Ok((kind, serial, firmware)) => {
                info.kind = kind;
                info.serial = serial;
                info.firmware = firmware;
            }
            Err(e) => {
                info.kind = "other".into();
                info.note = Some(e.to_string());
            }
        }
        info
    }

    /// Opens the selected card exclusively, so nothing else talks to it during the operation.
    pub fn open(&self, selector: &CardSelector) -> Result<(Card, ReaderInfo), DeviceError> {
        let ctx = context()?;
        let readers = reader_names(&ctx)?;
        if readers.is_empty() {
            return Err(DeviceError::NoReaders);
        }
        let reader = match selector {
            CardSelector::Reader(name) => readers.iter().find(|r| name_of(r) == *name).cloned().ok_or_else(|| {
                let known: Vec<String> = readers.iter().map(|r| name_of(r)).collect();
                DeviceError::NotFound(format!("no reader named {name:?}; connected readers: {}", known.join(", ")))
            })?,
            CardSelector::Serial(serial) => {
                let infos: Vec<ReaderInfo> = readers.iter().map(|r| Self::describe(&ctx, r)).collect();
                let hit = infos.iter().find(|i| i.serial.as_deref() == Some(serial.as_str())).ok_or_else(|| {
                    DeviceError::NotFound(format!(
                        "no card with serial {serial} is present; cards present: {}",
                        present_cards(&infos)
                    ))
                })?;
                CString::new(hit.reader.clone()).map_err(|_| DeviceError::Invalid("reader name with NUL".into()))?
            }
            CardSelector::Only => {
                let infos: Vec<ReaderInfo> = readers.iter().map(|r| Self::describe(&ctx, r)).collect();
                let present: Vec<&ReaderInfo> = infos.iter().filter(|i| i.card_present).collect();
                match present.as_slice() {
                    [one] => CString::new(one.reader.clone())
                        .map_err(|_| DeviceError::Invalid("reader name with NUL".into()))?,
                    [] => return Err(DeviceError::NoCard("any reader".into())),
                    _ => {
                        return Err(DeviceError::Ambiguous(format!(
                            "{} cards are present ({}); name one with --reader or --serial",
                            present.len(),
                            present_cards(&infos)
                        )))
                    }
                }
            }
        };
        let name = name_of(&reader);
        let card = ctx
            .connect(&reader, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY)
            .map_err(|e| DeviceError::from_pcsc(e, Some(&name)))?;
        let card = Card::new(card, name.clone());
        let mut info = ReaderInfo {
            reader: name,
            card_present: true,
            kind: "other".into(),
            atr: card.atr().ok().map(hex::encode_upper),
            serial: None,
            firmware: None,
            note: None,
        };
        let (kind, serial, firmware) = identify(&card)?;
        info.kind = kind;
        info.serial = serial;
        info.firmware = firmware;
        if let CardSelector::Serial(want) = selector {
            // The card could have been swapped between the listing and the connect.
            if info.serial.as_deref() != Some(want.as_str()) {
                return Err(DeviceError::NotFound(format!("the card with serial {want} left reader {}", info.reader)));
            }
        }
        Ok((card, info))
    }

    /// Reports insertions and removals (and readers coming and going) until `until`, calling
    /// `on_event` for each; `on_event` returning false stops early. The first event is
    /// `watching` (with the reader count): every change after it is reported.
    /// `wanted` is asked about once a second; false (the caller went away) stops the watch.
    pub fn watch(
        &self,
        until: Instant,
        wanted: impl Fn() -> bool,
        mut on_event: impl FnMut(DeviceEvent) -> bool,
    ) -> Result<(), DeviceError> {
        let ctx = context()?;
        let mut states: Vec<pcsc::ReaderState> =
            vec![pcsc::ReaderState::new(pcsc::PNP_NOTIFICATION(), pcsc::State::UNAWARE)];
        let mut present: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
        let mut first = true;
        let mut announced = false;
        loop {
            // Track the readers that exist now.
            let names = reader_names(&ctx)?;
            states.retain(|s| s.name() == pcsc::PNP_NOTIFICATION() || names.iter().any(|n| n.as_c_str() == s.name()));
            for n in &names {
                if !states.iter().any(|s| s.name() == n.as_c_str()) {
                    states.push(pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE));
                    if !first && !on_event(DeviceEvent { event: "reader-added".into(), reader: name_of(n), card: None })
                    {
                        return Ok(());
                    }
                }
            }
            let gone: Vec<String> =
                present.keys().filter(|k| !names.iter().any(|n| name_of(n) == **k)).cloned().collect();
            for g in gone {
                present.remove(&g);
                if !on_event(DeviceEvent { event: "reader-removed".into(), reader: g, card: None }) {
                    return Ok(());
                }
            }
            first = false;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !wanted() {
                return Ok(());
            }
            match ctx.get_status_change(Some(left.min(Duration::from_secs(1))), &mut states) {
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(DeviceError::from_pcsc(e, None)),
            }
            for s in &mut states {
                if s.name() == pcsc::PNP_NOTIFICATION() {
                    s.sync_current_state();
                    continue;
                }
                let name = name_of(s.name());
                let now_present = s.event_state().contains(pcsc::State::PRESENT);
                let before = present.insert(name.clone(), now_present);
                s.sync_current_state();
                if before.is_some_and(|b| b != now_present) {
                    let card = now_present
                        .then(|| CString::new(name.clone()).ok().map(|c| Self::describe(&ctx, &c)))
                        .flatten();
                    let event = if now_present { "inserted" } else { "removed" };
                    if !on_event(DeviceEvent { event: event.into(), reader: name, card }) {
                        return Ok(());
                    }
                }
            }
            if !announced {
                // The starting state is known: from here on every change is reported.
                announced = true;
                let n = present.len();
                let with_card = present.values().filter(|p| **p).count();
                let reader = format!("{n} readers, {with_card} with a card");
                if !on_event(DeviceEvent { event: "watching".into(), reader, card: None }) {
                    return Ok(());
                }
            }
        }
    }
}

fn present_cards(infos: &[ReaderInfo]) -> String {
    let v: Vec<String> = infos
        .iter()
        .filter(|i| i.card_present)
        .map(|i| format!("{} serial {} in {}", i.kind, i.serial.as_deref().unwrap_or("?"), i.reader))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join("; ")
    }
}
