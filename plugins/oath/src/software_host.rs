//! For tests of token plugins only (feature `software-host`): a host whose `hmac` capability
//! computes in software over seeds the test registers, and whose clock the test sets. It
//! calls a plugin through its exported C functions, as the worker will.

#![allow(unsafe_code, reason = "test host side of the FFI boundary")]

use std::collections::HashMap;
use std::ffi::c_void;

use countersign_plugin_abi::abi::{ByteSlice, HostVTable, OwnedBytes, PluginDescriptor, Status};
use countersign_plugin_abi::protocol::{Envelope, Hash, HostRequest, HostResponse, PluginRequest, PluginResponse};
use hmac::{Hmac, Mac};

/// Seeds by secret reference, the values `verify` accepts by secret reference, and the clock.
#[derive(Debug, Default)]
pub struct SoftwareHost {
    /// HMAC keys by secret reference; an `hmac` call naming another reference is refused.
    pub seeds: HashMap<String, Vec<u8>>,
    /// The values `verify` accepts, by secret reference; any other value does not match.
    pub verifiable: HashMap<String, Vec<String>>,
    /// What `now` answers, Unix time in milliseconds.
    pub now_ms: i64,
}

fn mac(hash: Hash, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match hash {
        Hash::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
        Hash::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
        Hash::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
    }
}

unsafe extern "C" fn call(ctx: *mut c_void, req: ByteSlice, out: *mut OwnedBytes) -> i32 {
    // SAFETY: ctx is the &SoftwareHost passed by `SoftwareHost::ask` for this call.
    let host = unsafe { &*(ctx as *const SoftwareHost) };
    // SAFETY: the plugin passes live request bytes for the duration of the call.
    let answer = match serde_json::from_slice::<Envelope<HostRequest>>(unsafe { req.as_slice() }) {
        Ok(env) => match env.body {
            HostRequest::Hmac { secret, hash, messages } => match host.seeds.get(&secret.0) {
                Some(seed) => HostResponse::Hmac { macs: messages.iter().map(|m| mac(hash, seed, m)).collect() },
                None => HostResponse::Refused { reason: format!("no secret {}", secret.0) },
            },
            HostRequest::Verify { secret, value } => {
                HostResponse::Verified { matches: host.verifiable.get(&secret.0).is_some_and(|v| v.contains(&value)) }
            }
            HostRequest::Random { len } => HostResponse::Random { bytes: vec![4; len as usize] },
            HostRequest::Now => HostResponse::Now { unix_ms: host.now_ms },
            HostRequest::AesEcbDecrypt { .. } => {
                HostResponse::Refused { reason: "the test host holds no AES keys".into() }
            }
            HostRequest::HttpRequest { .. } | HostRequest::SmtpSend { .. } => {
                HostResponse::Refused { reason: "the test host has no transport".into() }
            }
        },
        Err(e) => HostResponse::Refused { reason: e.to_string() },
    };
    let bytes = serde_json::to_vec(&Envelope::new(answer)).unwrap_or_default();
    // SAFETY: the plugin gives a writable out slot and frees it through `free` below.
    unsafe { out.write(OwnedBytes::from_vec(bytes)) };
    Status::Ok as i32
}

unsafe extern "C" fn free(_ctx: *mut c_void, bytes: OwnedBytes) {
    // SAFETY: made by `call` above from a Vec of this allocator.
    drop(unsafe { bytes.into_vec() });
}

impl SoftwareHost {
    /// Sends `req` to the plugin behind `descriptor`; returns its status and decoded answer.
    pub fn ask(&self, descriptor: &PluginDescriptor, req: PluginRequest) -> (Status, Option<PluginResponse>, String) {
        let vtable = HostVTable { ctx: self as *const SoftwareHost as *mut c_void, call, free };
        let bytes = serde_json::to_vec(&Envelope::new(req)).unwrap_or_default();
        let mut out = OwnedBytes::EMPTY;
        // SAFETY: the descriptor's functions are called with a live vtable, request and slot.
        let status = Status::from_raw(unsafe { (descriptor.handle)(&vtable, ByteSlice::new(&bytes), &mut out) });
        // SAFETY: the plugin filled `out`; copy, then hand it back to the plugin's free.
        let answer = unsafe { out.to_vec() };
        // SAFETY: returned once to the library that allocated it.
        unsafe { (descriptor.free)(out) };
        let decoded = serde_json::from_slice::<Envelope<PluginResponse>>(&answer).ok().map(|e| e.body);
        (status, decoded, String::from_utf8_lossy(&answer).into_owned())
    }
}
