//! The audit trail as the native API shows it (`/v1/admin/audit`).
//!
//! `audit verify` answers the core's [`ChainReport`] as the store's walk of the chain made it:
//! re-exported, not copied.

pub use countersign_core::audit_chain::{ChainProblem, ChainReport};
