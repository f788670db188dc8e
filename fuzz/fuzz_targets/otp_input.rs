//! OTP input: a check's `pass` split into PIN and code as `/validate/check` splits it, and the
//! code given to the HOTP and TOTP plugins through their C entry with a software host, as a
//! check and as the second code of a resync. A panic in a plugin is caught at its boundary and
//! reported as `Status::Panic`; here that is a finding. A match must lie within the window.
//!
//! Input: a byte choosing the token (type, digits, hash), a byte for the window, 8 bytes of
//! first counter, then the `pass` bytes.
#![no_main]

use countersign_oath::software_host::SoftwareHost;
use countersign_plugin_abi::abi::{ByteSlice, HandleFn, HostVTable, OwnedBytes, PluginDescriptor, Status};
use countersign_plugin_abi::protocol::{PluginRequest, PluginResponse, SecretRef};

// The plugins' handlers behind descriptors of our own: both crates export the same entry
// symbol, and only one of them could be called by name in one binary.
unsafe extern "C" fn hotp(host: *const HostVTable, req: ByteSlice, out: *mut OwnedBytes) -> i32 {
    unsafe { countersign_plugin_abi::guest::handle_call(host, req, out, countersign_token_hotp::handle) }
}
unsafe extern "C" fn totp(host: *const HostVTable, req: ByteSlice, out: *mut OwnedBytes) -> i32 {
    unsafe { countersign_plugin_abi::guest::handle_call(host, req, out, countersign_token_totp::handle) }
}
unsafe extern "C" fn free(bytes: OwnedBytes) {
    unsafe { countersign_plugin_abi::guest::free(bytes) }
}

fn descriptor(handle: HandleFn) -> PluginDescriptor {
    PluginDescriptor {
        magic: countersign_plugin_abi::abi::MAGIC,
        abi_major: countersign_plugin_abi::abi::ABI_MAJOR,
        abi_minor: countersign_plugin_abi::abi::ABI_MINOR,
        kind: countersign_plugin_abi::abi::PluginKind::Token as u32,
        name: ByteSlice { ptr: b"fuzz".as_ptr(), len: 4 },
        version: ByteSlice { ptr: b"0".as_ptr(), len: 1 },
        protocol_version: countersign_plugin_abi::protocol::PROTOCOL_VERSION,
        handle,
        free,
    }
}

/// RFC 6238's test time 1111111109.
const NOW_MS: i64 = 1_111_111_109_000;

fn run(d: &PluginDescriptor, host: &SoftwareHost, req: PluginRequest, lo: u64, hi: u64) {
    let (status, answer, text) = host.ask(d, req);
    assert_ne!(status, Status::Panic, "the plugin panicked: {text}");
    if let Some(PluginResponse::Matched { counter }) = answer {
        assert!((lo..=hi).contains(&counter), "matched counter {counter} outside {lo}..={hi}");
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [token, window, c0, c1, c2, c3, c4, c5, c6, c7, pass @ ..] = data else { return };
    let is_totp = token & 1 == 1;
    // 6 to 9 digits: 9 is a token the plugin refuses.
    let digits = 6 + u64::from((token >> 1) % 4);
    let hash = ["sha1", "sha256", "sha512"][usize::from((token >> 3) % 3)];
    let window = u32::from(*window % 32);
    let first = u64::from_be_bytes([*c0, *c1, *c2, *c3, *c4, *c5, *c6, *c7]);
    let first = if token & 0x80 == 0 { first % 1_000_000 } else { first };
    let drift = i64::from(*c7 as i8);
    let mut params = serde_json::json!({ "digits": digits, "hash": hash });
    if is_totp {
        params["step"] = 30.into();
        params["drift"] = drift.into();
    }
    let Some((pin, otp)) = countersign::fuzzing::otp_split(pass, &params) else { return };
    let mut host = SoftwareHost { now_ms: NOW_MS, ..SoftwareHost::default() };
    host.seeds.insert("token:FUZZ".into(), b"12345678901234567890".to_vec());
    let d = descriptor(if is_totp { totp } else { hotp });
    let (lo, hi) = if is_totp {
        let now = (NOW_MS as u64 / 1000 / 30).saturating_add_signed(drift);
        (now.saturating_sub(u64::from(window)).max(first), now.saturating_add(u64::from(window)))
    } else {
        (first, first.saturating_add(u64::from(window)))
    };
    let secret = SecretRef("token:FUZZ".into());
    let check =
        PluginRequest::CheckOtp { secret: secret.clone(), otp: otp.clone(), first, window, params: params.clone() };
    run(&d, &host, check, lo, hi);
    // A resync gets two codes: the end of the PIN part, then the code.
    let Some((_, otp1)) = countersign::fuzzing::otp_split(&pin, &params) else { return };
    let resync = PluginRequest::Resync { secret, otp1, otp2: otp, first, window, params };
    run(&d, &host, resync, lo.saturating_add(1), hi);
});
