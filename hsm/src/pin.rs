//! The token user PIN: read from a file or a systemd credential, held in a zeroizing secret.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use crate::HsmError;

/// A token PIN. Debug prints `***`; the bytes are zeroized on drop.
pub struct Pin(SecretString);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(***)")
    }
}

impl Pin {
    /// Wraps a PIN that is already in memory (tests, enrolment tools).
    pub fn new(pin: SecretString) -> Self {
        Pin(pin)
    }

    /// Reads the PIN from a file; one trailing newline is ignored. The file must not be
    /// readable by group or others, since anyone who reads it can use every key on the token.
    pub fn from_file(path: &Path) -> Result<Self, HsmError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |reason: String| HsmError::PinSource { path: path.display().to_string(), reason };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err("the file is readable by group or others; chmod 600 it".into()));
        }
        let raw = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let trimmed = raw.strip_suffix('\n').unwrap_or(&raw);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(err("the file is empty".into()));
        }
        let pin = Pin(SecretString::from(trimmed.to_owned()));
        drop(zeroize::Zeroizing::new(raw));
        Ok(pin)
    }

    pub(crate) fn secret(&self) -> SecretString {
        SecretString::from(self.0.expose_secret().to_owned())
    }
}
