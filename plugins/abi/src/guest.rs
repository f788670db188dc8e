//! The plugin's side: calling host capabilities, and the glue
//! [`declare_plugin!`](crate::declare_plugin) generates around a plugin's handler (decode,
//! dispatch, encode, catch panics).

#![allow(unsafe_code, reason = "plugin side of the FFI boundary")]

use std::panic::AssertUnwindSafe;

use crate::abi::{ByteSlice, HostVTable, OwnedBytes, Status};
use crate::protocol::{
    Envelope, Hash, HostRequest, HostResponse, OutgoingMessage, PluginRequest, PluginResponse, SecretRef,
    PROTOCOL_VERSION,
};

/// A gateway plugin's request handler, the same for every gateway: `options` reads a
/// definition's options (why not, for the admin), `invalid` judges them against the names of
/// the credentials the definition holds, `deliver` sends one message with them. Anything but
/// `CheckOptions` and `Deliver` is refused: a gateway checks no OTPs.
pub fn handle_gateway<O>(
    host: &Host<'_>,
    req: PluginRequest,
    options: impl Fn(&serde_json::Value) -> Result<O, String>,
    invalid: impl FnOnce(&O, &[String]) -> Option<String>,
    deliver: impl FnOnce(&Host<'_>, &OutgoingMessage, &O) -> Result<PluginResponse, PluginError>,
) -> Result<PluginResponse, PluginError> {
    match req {
        PluginRequest::CheckOptions { options: v, credentials } => Ok(match options(&v) {
            Ok(o) => match invalid(&o, &credentials) {
                Some(reason) => PluginResponse::OptionsInvalid { reason },
                None => PluginResponse::OptionsOk,
            },
            Err(reason) => PluginResponse::OptionsInvalid { reason },
        }),
        PluginRequest::Deliver { message, options: v } => {
            let o = options(&v).map_err(PluginError::BadRequest)?;
            deliver(host, &message, &o)
        }
        _ => Err(PluginError::BadRequest("a gateway plugin delivers messages; it does not check OTPs".into())),
    }
}

/// Why a plugin's handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// A host capability was refused or failed, or answered something unexpected; becomes
    /// [`Status::HostError`].
    #[error("host capability failed: {0}")]
    Host(String),
    /// The plugin failed for its own reason, given here; becomes [`Status::Failed`].
    #[error("{0}")]
    Failed(String),
    /// The request is malformed or not one this plugin handles; becomes [`Status::BadRequest`].
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// The host as a plugin sees it during one call.
#[derive(Debug)]
pub struct Host<'a> {
    vtable: &'a HostVTable,
}

impl Host<'_> {
    /// Sends one capability request and waits for the answer.
    pub fn call(&self, request: HostRequest) -> Result<HostResponse, PluginError> {
        let bytes = serde_json::to_vec(&Envelope::new(request)).map_err(|e| PluginError::Failed(e.to_string()))?;
        let mut out = OwnedBytes::EMPTY;
        // SAFETY: the vtable comes from the host for the duration of this call; `bytes` lives
        // across it and `out` is a valid place for the answer.
        let status = unsafe { (self.vtable.call)(self.vtable.ctx, ByteSlice::new(&bytes), &mut out) };
        // SAFETY: the host filled `out` (or left it empty); copy it, then give it back.
        let answer = unsafe { out.to_vec() };
        // SAFETY: `out` was allocated by the host and is returned to its free function once.
        unsafe { (self.vtable.free)(self.vtable.ctx, out) };
        if Status::from_raw(status) != Status::Ok {
            return Err(PluginError::Host(String::from_utf8_lossy(&answer).into_owned()));
        }
        let env: Envelope<HostResponse> =
            serde_json::from_slice(&answer).map_err(|e| PluginError::Host(format!("undecodable answer: {e}")))?;
        match env.body {
            HostResponse::Refused { reason } => Err(PluginError::Host(reason)),
            other => Ok(other),
        }
    }

    /// HMACs of `messages` under the secret, computed by the host.
    pub fn hmac(&self, secret: &SecretRef, hash: Hash, messages: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, PluginError> {
        let n = messages.len();
        match self.call(HostRequest::Hmac { secret: secret.clone(), hash, messages })? {
            HostResponse::Hmac { macs } if macs.len() == n => Ok(macs),
            other => Err(PluginError::Host(format!("unexpected answer to hmac: {other:?}"))),
        }
    }

    /// An HTTP request made by the host; `(status, body)`.
    pub fn http(&self, request: HostRequest) -> Result<(u16, String), PluginError> {
        match self.call(request)? {
            HostResponse::Http { status, body } => Ok((status, body)),
            other => Err(PluginError::Host(format!("unexpected answer to http_request: {other:?}"))),
        }
    }

    /// Whether `value` matches the secret the host holds for the token `secret` names; the
    /// host compares (the stored value never reaches the plugin).
    pub fn verify(&self, secret: &SecretRef, value: &str) -> Result<bool, PluginError> {
        match self.call(HostRequest::Verify { secret: secret.clone(), value: value.to_owned() })? {
            HostResponse::Verified { matches } => Ok(matches),
            other => Err(PluginError::Host(format!("unexpected answer to verify: {other:?}"))),
        }
    }

    /// The AES-128-ECB decryption of one 16-byte `block` under the key of the token `secret`
    /// names; the host decrypts (the key never reaches the plugin).
    pub fn aes_ecb_decrypt(&self, secret: &SecretRef, block: &[u8; 16]) -> Result<[u8; 16], PluginError> {
        match self.call(HostRequest::AesEcbDecrypt { secret: secret.clone(), block: block.to_vec() })? {
            HostResponse::Decrypted { block } => <[u8; 16]>::try_from(block.as_slice())
                .map_err(|_| PluginError::Host(format!("aes_ecb_decrypt answered {} bytes", block.len()))),
            other => Err(PluginError::Host(format!("unexpected answer to aes_ecb_decrypt: {other:?}"))),
        }
    }

    /// Unix time in milliseconds, from the host's clock.
    pub fn now_ms(&self) -> Result<i64, PluginError> {
        match self.call(HostRequest::Now)? {
            HostResponse::Now { unix_ms } => Ok(unix_ms),
            other => Err(PluginError::Host(format!("unexpected answer to now: {other:?}"))),
        }
    }

    /// Random bytes from the host.
    pub fn random(&self, len: u32) -> Result<Vec<u8>, PluginError> {
        match self.call(HostRequest::Random { len })? {
            HostResponse::Random { bytes } if bytes.len() == len as usize => Ok(bytes),
            other => Err(PluginError::Host(format!("unexpected answer to random: {other:?}"))),
        }
    }
}

/// A plugin's request handler.
pub type Handler = fn(&Host<'_>, PluginRequest) -> Result<PluginResponse, PluginError>;

/// The body of the generated `handle` export: decode, dispatch, encode; a panic anywhere in
/// the plugin becomes [`Status::Panic`].
///
/// # Safety
/// `host` must point to a live vtable, `request` to live bytes, and `out` to writable memory,
/// for the duration of the call (the worker guarantees this).
pub unsafe fn handle_call(host: *const HostVTable, request: ByteSlice, out: *mut OwnedBytes, handler: Handler) -> i32 {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: per this function's contract.
        let (vtable, bytes) = unsafe { (&*host, request.as_slice()) };
        respond(&Host { vtable }, bytes, handler)
    }));
    let (status, bytes) = outcome.unwrap_or((Status::Panic, b"the plugin panicked".to_vec()));
    if !out.is_null() {
        // SAFETY: `out` is writable per the contract; the worker frees it through `free`.
        unsafe { out.write(OwnedBytes::from_vec(bytes)) };
    }
    status as i32
}

fn respond(host: &Host<'_>, bytes: &[u8], handler: Handler) -> (Status, Vec<u8>) {
    let env: Envelope<PluginRequest> = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => return (Status::BadRequest, format!("undecodable request: {e}").into_bytes()),
    };
    if env.protocol != PROTOCOL_VERSION {
        let msg = format!("request uses protocol {}, this plugin speaks {PROTOCOL_VERSION}", env.protocol);
        return (Status::BadRequest, msg.into_bytes());
    }
    match handler(host, env.body) {
        Ok(resp) => match serde_json::to_vec(&Envelope::new(resp)) {
            Ok(b) => (Status::Ok, b),
            Err(e) => (Status::Failed, e.to_string().into_bytes()),
        },
        Err(PluginError::Host(m)) => (Status::HostError, m.into_bytes()),
        Err(PluginError::BadRequest(m)) => (Status::BadRequest, m.into_bytes()),
        Err(PluginError::Failed(m)) => (Status::Failed, m.into_bytes()),
    }
}

/// The body of the generated `free` export.
///
/// # Safety
/// `bytes` must have been returned by this plugin's `handle` and not freed before.
pub unsafe fn free(bytes: OwnedBytes) {
    // SAFETY: per this function's contract, the bytes are a Vec of this library's allocator.
    drop(unsafe { bytes.into_vec() });
}

/// Declares a plugin: exports [`crate::ENTRY_SYMBOL`] returning its descriptor, and wraps the
/// handler so that decoding, encoding and panics are dealt with at the boundary.
///
/// ```ignore
/// countersign_plugin_abi::declare_plugin! {
///     kind: countersign_plugin_abi::abi::PluginKind::Token,
///     name: "token-hotp",
///     version: env!("CARGO_PKG_VERSION"),
///     handler: check,
/// }
/// ```
#[macro_export]
macro_rules! declare_plugin {
    (kind: $kind:expr, name: $name:expr, version: $version:expr, handler: $handler:path $(,)?) => {
        /// The plugin's entry symbol (`ENTRY_SYMBOL` of the plugin ABI): returns the plugin's
        /// static descriptor, which the worker checks before it calls anything else.
        #[allow(unsafe_code, reason = "the plugin's exported entry symbol")]
        #[no_mangle]
        pub extern "C" fn countersign_plugin_entry() -> *const $crate::abi::PluginDescriptor {
            static DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::PluginDescriptor {
                magic: $crate::abi::MAGIC,
                abi_major: $crate::abi::ABI_MAJOR,
                abi_minor: $crate::abi::ABI_MINOR,
                kind: $kind as u32,
                name: $crate::abi::ByteSlice { ptr: $name.as_ptr(), len: $name.len() },
                version: $crate::abi::ByteSlice { ptr: $version.as_ptr(), len: $version.len() },
                protocol_version: $crate::protocol::PROTOCOL_VERSION,
                handle: __countersign_plugin_handle,
                free: __countersign_plugin_free,
            };
            &DESCRIPTOR
        }

        #[allow(unsafe_code, reason = "the plugin's exported handler")]
        unsafe extern "C" fn __countersign_plugin_handle(
            host: *const $crate::abi::HostVTable,
            request: $crate::abi::ByteSlice,
            out: *mut $crate::abi::OwnedBytes,
        ) -> i32 {
            // SAFETY: the worker calls this with a live vtable, request and out slot.
            unsafe { $crate::guest::handle_call(host, request, out, $handler) }
        }

        #[allow(unsafe_code, reason = "the plugin's exported free function")]
        unsafe extern "C" fn __countersign_plugin_free(bytes: $crate::abi::OwnedBytes) {
            // SAFETY: the worker returns bytes this plugin's handler produced, once.
            unsafe { $crate::guest::free(bytes) }
        }
    };
}
