//! A PKCS#11 module for fault tests: every function forwards to a real module (SoftHSM at
//! `/usr/lib/softhsm/libsofthsm2.so`, or the path in `FAULTY_PKCS11_TARGET`), except that, on
//! command, the operation calls answer `CKR_SESSION_HANDLE_INVALID`, `CKR_DEVICE_ERROR` or
//! `CKR_TOKEN_NOT_PRESENT` instead, or are delayed.
//!
//! The command is the content of the file named by `FAULTY_PKCS11_CONTROL`, read on every
//! call: `none` (or an empty or missing file), `session_handle_invalid`, `device_error`,
//! `token_not_present`, `delay_ms=N`, or `finalize` (once: the real module is finalised, as if it
//! reset itself, and the file is set back to `none`; calls then get the real module's
//! `CKR_CRYPTOKI_NOT_INITIALIZED` until the program initialises it again). `C_Initialize`, `C_Finalize`, `C_GetInfo`,
//! `C_GetFunctionList`, `C_CloseSession` and `C_CloseAllSessions` are never faulted, so a
//! program can load the module and clean up while a fault lasts.
//!
//! It owns nothing but the forwarding; it must never ship in an appliance image (it exists so
//! tests can prove the daemon fails closed and recovers) and never alter data passing through.

#![allow(unsafe_code, reason = "a PKCS#11 module is a C ABI: every entry point is an unsafe extern fn")]
#![allow(non_snake_case, reason = "PKCS#11 function names")]
#![allow(clippy::too_many_arguments, reason = "PKCS#11 functions have the arity the standard gives them")]

use std::ffi::c_void;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cryptoki_sys::*;

/// Where the real module is when `FAULTY_PKCS11_TARGET` is not set.
const DEFAULT_TARGET: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The real module, kept loaded for the life of the process, and its function list.
struct Target {
    _lib: libloading::Library,
    list: CK_FUNCTION_LIST,
}

static TARGET: OnceLock<Option<Target>> = OnceLock::new();
static CONTROL: OnceLock<Option<PathBuf>> = OnceLock::new();
static OUR_LIST: OnceLock<CK_FUNCTION_LIST> = OnceLock::new();

fn load_target() -> Option<Target> {
    let path = std::env::var_os("FAULTY_PKCS11_TARGET").map_or_else(|| PathBuf::from(DEFAULT_TARGET), PathBuf::from);
    // SAFETY: loading a PKCS#11 module runs its initialisers; the module is the one the test
    // chose (SoftHSM by default), which is what a PKCS#11 application does anyway.
    let lib = match unsafe { libloading::Library::new(&path) } {
        Ok(l) => l,
        Err(e) => {
            eprintln!("faulty-pkcs11: cannot load {}: {e}", path.display());
            return None;
        }
    };
    // SAFETY: C_GetFunctionList has this signature in every PKCS#11 module.
    let get: libloading::Symbol<'_, unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
        match unsafe { lib.get(b"C_GetFunctionList\0") } {
            Ok(f) => f,
            Err(e) => {
                eprintln!("faulty-pkcs11: {} has no C_GetFunctionList: {e}", path.display());
                return None;
            }
        };
    let mut ptr: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: `ptr` is a valid out-pointer; the module fills it with a pointer to its static list.
    let rv = unsafe { get(&mut ptr) };
    if rv != CKR_OK || ptr.is_null() {
        eprintln!("faulty-pkcs11: C_GetFunctionList of {} failed with {rv:#x}", path.display());
        return None;
    }
    // SAFETY: the module returned a non-null pointer to its function list, which lives as long
    // as the library stays loaded; it is copied out here (the struct is plain data).
    let list = unsafe { *ptr };
    Some(Target { _lib: lib, list })
}

fn target() -> Option<&'static CK_FUNCTION_LIST> {
    TARGET.get_or_init(load_target).as_ref().map(|t| &t.list)
}

/// The fault the control file asks for now: a return code to answer instead of forwarding, or
/// `None` (after sleeping, for a delay).
fn injected() -> Option<CK_RV> {
    let path = CONTROL.get_or_init(|| std::env::var_os("FAULTY_PKCS11_CONTROL").map(PathBuf::from)).as_ref()?;
    let text = std::fs::read_to_string(path).ok()?;
    match text.trim() {
        "session_handle_invalid" => Some(CKR_SESSION_HANDLE_INVALID),
        "device_error" => Some(CKR_DEVICE_ERROR),
        "token_not_present" => Some(CKR_TOKEN_NOT_PRESENT),
        "finalize" => {
            if let Some(finalize) = target().and_then(|l| l.C_Finalize) {
                // SAFETY: C_Finalize takes a reserved pointer that must be null; the real module
                // ends its initialisation, which is the fault this command injects.
                let _ = unsafe { finalize(std::ptr::null_mut()) };
            }
            let _ = std::fs::write(path, "none");
            None
        }
        other => {
            if let Some(ms) = other.strip_prefix("delay_ms=").and_then(|v| v.trim().parse::<u64>().ok()) {
                std::thread::sleep(Duration::from_millis(ms));
            }
            None
        }
    }
}

macro_rules! forward {
    ($( $kind:ident $name:ident ( $($arg:ident : $ty:ty),* ); )*) => {
        $(
            unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
                forward!(@guard $kind);
                let Some(list) = target() else { return CKR_GENERAL_ERROR };
                match list.$name {
                    // SAFETY: the arguments are the caller's, passed on unchanged to the real
                    // module's implementation of the same function, which has the same contract.
                    Some(f) => unsafe { f($($arg),*) },
                    None => CKR_FUNCTION_NOT_SUPPORTED,
                }
            }
        )*

        fn our_list(version: CK_VERSION) -> CK_FUNCTION_LIST {
            CK_FUNCTION_LIST {
                version,
                C_GetFunctionList: Some(C_GetFunctionList),
                $( $name: Some($name), )*
            }
        }
    };
    (@guard pass) => {};
    (@guard fault) => {
        if let Some(rv) = injected() {
            return rv;
        }
    };
}

forward! {
    pass C_Initialize(arg1: *mut c_void);
    pass C_Finalize(arg1: *mut c_void);
    pass C_GetInfo(arg1: *mut CK_INFO);
    fault C_GetSlotList(arg1: CK_BBOOL, arg2: *mut CK_SLOT_ID, arg3: *mut CK_ULONG);
    fault C_GetSlotInfo(arg1: CK_SLOT_ID, arg2: *mut CK_SLOT_INFO);
    fault C_GetTokenInfo(arg1: CK_SLOT_ID, arg2: *mut CK_TOKEN_INFO);
    fault C_GetMechanismList(arg1: CK_SLOT_ID, arg2: *mut CK_MECHANISM_TYPE, arg3: *mut CK_ULONG);
    fault C_GetMechanismInfo(arg1: CK_SLOT_ID, arg2: CK_MECHANISM_TYPE, arg3: *mut CK_MECHANISM_INFO);
    fault C_InitToken(arg1: CK_SLOT_ID, arg2: *mut CK_UTF8CHAR, arg3: CK_ULONG, arg4: *mut CK_UTF8CHAR);
    fault C_InitPIN(arg1: CK_SESSION_HANDLE, arg2: *mut CK_UTF8CHAR, arg3: CK_ULONG);
    fault C_SetPIN(arg1: CK_SESSION_HANDLE, arg2: *mut CK_UTF8CHAR, arg3: CK_ULONG, arg4: *mut CK_UTF8CHAR, arg5: CK_ULONG);
    fault C_OpenSession(arg1: CK_SLOT_ID, arg2: CK_FLAGS, arg3: *mut c_void, arg4: CK_NOTIFY, arg5: *mut CK_SESSION_HANDLE);
    pass C_CloseSession(arg1: CK_SESSION_HANDLE);
    pass C_CloseAllSessions(arg1: CK_SLOT_ID);
    fault C_GetSessionInfo(arg1: CK_SESSION_HANDLE, arg2: *mut CK_SESSION_INFO);
    fault C_GetOperationState(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    fault C_SetOperationState(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: CK_OBJECT_HANDLE, arg5: CK_OBJECT_HANDLE);
    fault C_Login(arg1: CK_SESSION_HANDLE, arg2: CK_USER_TYPE, arg3: *mut CK_UTF8CHAR, arg4: CK_ULONG);
    fault C_Logout(arg1: CK_SESSION_HANDLE);
    fault C_CreateObject(arg1: CK_SESSION_HANDLE, arg2: *mut CK_ATTRIBUTE, arg3: CK_ULONG, arg4: *mut CK_OBJECT_HANDLE);
    fault C_CopyObject(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG, arg5: *mut CK_OBJECT_HANDLE);
    fault C_DestroyObject(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE);
    fault C_GetObjectSize(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ULONG);
    fault C_GetAttributeValue(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG);
    fault C_SetAttributeValue(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG);
    fault C_FindObjectsInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_ATTRIBUTE, arg3: CK_ULONG);
    fault C_FindObjects(arg1: CK_SESSION_HANDLE, arg2: *mut CK_OBJECT_HANDLE, arg3: CK_ULONG, arg4: *mut CK_ULONG);
    fault C_FindObjectsFinal(arg1: CK_SESSION_HANDLE);
    fault C_EncryptInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    fault C_Encrypt(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_EncryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_EncryptFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    fault C_DecryptInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    fault C_Decrypt(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_DecryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_DecryptFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    fault C_DigestInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM);
    fault C_Digest(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_DigestUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    fault C_DigestKey(arg1: CK_SESSION_HANDLE, arg2: CK_OBJECT_HANDLE);
    fault C_DigestFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    fault C_SignInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    fault C_Sign(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_SignUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    fault C_SignFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: *mut CK_ULONG);
    fault C_SignRecoverInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    fault C_SignRecover(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_VerifyInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    fault C_Verify(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: CK_ULONG);
    fault C_VerifyUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    fault C_VerifyFinal(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    fault C_VerifyRecoverInit(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE);
    fault C_VerifyRecover(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_DigestEncryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_DecryptDigestUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_SignEncryptUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_DecryptVerifyUpdate(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG, arg4: *mut CK_BYTE, arg5: *mut CK_ULONG);
    fault C_GenerateKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG, arg5: *mut CK_OBJECT_HANDLE);
    fault C_GenerateKeyPair(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: *mut CK_ATTRIBUTE, arg4: CK_ULONG, arg5: *mut CK_ATTRIBUTE, arg6: CK_ULONG, arg7: *mut CK_OBJECT_HANDLE, arg8: *mut CK_OBJECT_HANDLE);
    fault C_WrapKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE, arg4: CK_OBJECT_HANDLE, arg5: *mut CK_BYTE, arg6: *mut CK_ULONG);
    fault C_UnwrapKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE, arg4: *mut CK_BYTE, arg5: CK_ULONG, arg6: *mut CK_ATTRIBUTE, arg7: CK_ULONG, arg8: *mut CK_OBJECT_HANDLE);
    fault C_DeriveKey(arg1: CK_SESSION_HANDLE, arg2: *mut CK_MECHANISM, arg3: CK_OBJECT_HANDLE, arg4: *mut CK_ATTRIBUTE, arg5: CK_ULONG, arg6: *mut CK_OBJECT_HANDLE);
    fault C_SeedRandom(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    fault C_GenerateRandom(arg1: CK_SESSION_HANDLE, arg2: *mut CK_BYTE, arg3: CK_ULONG);
    fault C_GetFunctionStatus(arg1: CK_SESSION_HANDLE);
    fault C_CancelFunction(arg1: CK_SESSION_HANDLE);
    fault C_WaitForSlotEvent(arg1: CK_FLAGS, arg2: *mut CK_SLOT_ID, arg3: *mut c_void);
}

/// The module's one exported entry: a function list whose entries forward to the real module.
///
/// # Safety
/// `list` must be null or a valid pointer to write a function-list pointer to (the PKCS#11
/// contract of `C_GetFunctionList`).
#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    let Some(real) = target() else { return CKR_GENERAL_ERROR };
    let ours = OUR_LIST.get_or_init(|| our_list(real.version));
    // SAFETY: `list` is non-null and, by the caller's contract, writable. The list is never
    // written through this pointer (PKCS#11 callers treat it as read-only), so handing out a
    // mutable pointer to the immutable static is what every C module does.
    unsafe { *list = std::ptr::from_ref(ours).cast_mut() };
    CKR_OK
}
