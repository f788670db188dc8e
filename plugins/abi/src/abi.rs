//! The `#[repr(C)]` types that cross the library boundary, and their version numbers.

#![allow(unsafe_code, reason = "this module is the FFI boundary: raw pointers in repr(C) types")]

use std::ffi::c_void;

/// Name of the one symbol a plugin exports: `extern "C" fn() -> *const PluginDescriptor`.
pub const ENTRY_SYMBOL: &str = "countersign_plugin_entry";
/// First field of every descriptor.
pub const MAGIC: [u8; 8] = *b"CSPLUGIN";
/// Bumped when a change breaks plugins built for the previous major.
pub const ABI_MAJOR: u16 = 1;
/// Bumped for additions old plugins do not need to know about.
pub const ABI_MINOR: u16 = 0;

/// What a plugin is for.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A token type: checks OTP values with host capabilities.
    Token = 1,
    /// A message gateway: turns a message into a transport request.
    Gateway = 2,
}

impl PluginKind {
    /// The kind a descriptor's `kind` field names; `None` for a number this host does not know.
    pub fn from_raw(v: u32) -> Option<PluginKind> {
        match v {
            1 => Some(PluginKind::Token),
            2 => Some(PluginKind::Gateway),
            _ => None,
        }
    }

    /// The kind's name as manifests and the daemon spell it (`token`, `gateway`).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Token => "token",
            PluginKind::Gateway => "gateway",
        }
    }
}

/// Outcome of a call across the boundary.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The call succeeded; the response holds the answer.
    Ok = 0,
    /// The callee panicked; the panic was caught at the boundary.
    Panic = 1,
    /// The request could not be decoded or is not one this plugin handles.
    BadRequest = 2,
    /// A host capability call failed (refused, or the host had an error).
    HostError = 3,
    /// The plugin failed for another reason; the response holds a message.
    Failed = 4,
}

impl Status {
    /// The status a raw return value stands for; an unknown number counts as
    /// [`Status::Failed`], never as success.
    pub fn from_raw(v: i32) -> Status {
        match v {
            0 => Status::Ok,
            1 => Status::Panic,
            2 => Status::BadRequest,
            3 => Status::HostError,
            _ => Status::Failed,
        }
    }
}

/// Borrowed bytes: valid for the duration of the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ByteSlice {
    /// The first byte; may be null when `len` is 0.
    pub ptr: *const u8,
    /// How many bytes.
    pub len: usize,
}

impl ByteSlice {
    /// Borrows `b` for one call; the slice must outlive every use of the result.
    pub fn new(b: &[u8]) -> ByteSlice {
        ByteSlice { ptr: b.as_ptr(), len: b.len() }
    }

    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive the returned slice (or `len == 0`).
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the caller guarantees ptr/len describe live, readable memory.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes allocated by one side and handed to the other, which must give them back through the
/// allocating side's `free` function.
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBytes {
    /// The allocation, from the allocating side's `Vec`; null for [`OwnedBytes::EMPTY`].
    pub ptr: *mut u8,
    /// Bytes in use.
    pub len: usize,
    /// The `Vec`'s capacity, needed to give the allocation back to its allocator.
    pub cap: usize,
}

impl OwnedBytes {
    /// Nothing allocated: the value an out slot holds before the callee fills it.
    pub const EMPTY: OwnedBytes = OwnedBytes { ptr: std::ptr::null_mut(), len: 0, cap: 0 };

    /// Hands a vector over; it must come back through [`OwnedBytes::into_vec`] on this side.
    pub fn from_vec(v: Vec<u8>) -> OwnedBytes {
        let mut v = std::mem::ManuallyDrop::new(v);
        OwnedBytes { ptr: v.as_mut_ptr(), len: v.len(), cap: v.capacity() }
    }

    /// # Safety
    /// Must have been made by [`OwnedBytes::from_vec`] in the same library, and not yet freed.
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            return Vec::new();
        }
        // SAFETY: ptr/len/cap come from a Vec<u8> of this allocator, per the contract above.
        unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
    }

    /// # Safety
    /// `ptr`/`len` must describe readable memory owned by the other side until it is freed.
    pub unsafe fn to_vec(&self) -> Vec<u8> {
        // SAFETY: forwarded from the caller.
        unsafe { ByteSlice { ptr: self.ptr, len: self.len }.as_slice().to_vec() }
    }
}

/// `(ctx, request, out response) -> status`: the plugin calls the host through this.
pub type HostCallFn = unsafe extern "C" fn(*mut c_void, ByteSlice, *mut OwnedBytes) -> i32;
/// Frees an [`OwnedBytes`] the host allocated.
pub type HostFreeFn = unsafe extern "C" fn(*mut c_void, OwnedBytes);

/// The host's side, passed to every plugin call.
#[repr(C)]
#[derive(Debug)]
pub struct HostVTable {
    /// The host's own state for this call, passed back to `call` and `free` untouched.
    pub ctx: *mut c_void,
    /// Serves one capability request (see [`crate::protocol::HostRequest`]).
    pub call: HostCallFn,
    /// Gives back the answer `call` allocated; the plugin calls it once per answer.
    pub free: HostFreeFn,
}

/// `(host, request, out response) -> status`: the worker calls the plugin through this.
pub type HandleFn = unsafe extern "C" fn(*const HostVTable, ByteSlice, *mut OwnedBytes) -> i32;
/// Frees an [`OwnedBytes`] the plugin allocated.
pub type FreeFn = unsafe extern "C" fn(OwnedBytes);

/// What the entry symbol returns; a `'static` in the plugin.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Always [`MAGIC`]: anything else is not a Countersign plugin.
    pub magic: [u8; 8],
    /// The [`ABI_MAJOR`] the plugin was built for; must equal the host's.
    pub abi_major: u16,
    /// The [`ABI_MINOR`] the plugin was built for.
    pub abi_minor: u16,
    /// A [`PluginKind`] as `u32`.
    pub kind: u32,
    /// The plugin's name (UTF-8, static in the plugin).
    pub name: ByteSlice,
    /// The plugin's version (UTF-8, static in the plugin).
    pub version: ByteSlice,
    /// The [`crate::protocol::PROTOCOL_VERSION`] its messages follow.
    pub protocol_version: u32,
    /// Handles one request. Must never unwind into the worker:
    /// [`declare_plugin!`](crate::declare_plugin) catches panics and answers [`Status::Panic`].
    pub handle: HandleFn,
    /// Gives back a response `handle` allocated.
    pub free: FreeFn,
}

// SAFETY: a descriptor is immutable static data (string literals and function pointers).
unsafe impl Sync for PluginDescriptor {}

/// Why a descriptor is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The descriptor does not start with [`MAGIC`].
    #[error("not a Countersign plugin (bad magic)")]
    BadMagic,
    /// Built for another major version of the ABI.
    #[error("plugin ABI {found}.x, this host speaks {expected}.x; rebuild the plugin")]
    AbiMajor {
        /// The major version the plugin was built for.
        found: u16,
        /// The major version this host speaks.
        expected: u16,
    },
    /// A kind number that is not a [`PluginKind`].
    #[error("unknown plugin kind {0}")]
    Kind(u32),
    /// The name or version is not UTF-8.
    #[error("plugin name or version is not UTF-8")]
    Text,
    /// Speaks another version of the message protocol.
    #[error("plugin speaks message protocol {found}, this host {expected}")]
    Protocol {
        /// The protocol version the plugin speaks.
        found: u32,
        /// The protocol version this host speaks.
        expected: u32,
    },
}

/// The checked, owned view of a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorInfo {
    /// What the plugin is for.
    pub kind: PluginKind,
    /// The plugin's name, as it declared it.
    pub name: String,
    /// The plugin's version, as it declared it.
    pub version: String,
    /// The ABI minor version it was built for.
    pub abi_minor: u16,
    /// The message protocol version it speaks (equal to the host's once checked).
    pub protocol_version: u32,
}

impl PluginDescriptor {
    /// Checks magic, ABI major, kind and protocol before anything else is called.
    pub fn check(&self) -> Result<DescriptorInfo, DescriptorError> {
        if self.magic != MAGIC {
            return Err(DescriptorError::BadMagic);
        }
        if self.abi_major != ABI_MAJOR {
            return Err(DescriptorError::AbiMajor { found: self.abi_major, expected: ABI_MAJOR });
        }
        let kind = PluginKind::from_raw(self.kind).ok_or(DescriptorError::Kind(self.kind))?;
        if self.protocol_version != crate::protocol::PROTOCOL_VERSION {
            return Err(DescriptorError::Protocol {
                found: self.protocol_version,
                expected: crate::protocol::PROTOCOL_VERSION,
            });
        }
        // SAFETY: name/version point to static string data in the plugin (descriptor contract).
        let text = |b: ByteSlice| unsafe { std::str::from_utf8(b.as_slice()).map(str::to_owned) };
        Ok(DescriptorInfo {
            kind,
            name: text(self.name).map_err(|_| DescriptorError::Text)?,
            version: text(self.version).map_err(|_| DescriptorError::Text)?,
            abi_minor: self.abi_minor,
            protocol_version: self.protocol_version,
        })
    }
}
