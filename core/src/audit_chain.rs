//! What a verification of the audit chain found (`audit verify`): the store's walk of the chain
//! reports it, the native API shows it.

use serde::{Deserialize, Serialize};

/// The first problem a verification found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainProblem {
    /// The chain link, when the problem is at one.
    pub seq: Option<i64>,
    /// `auth_audit` or `signature_audit`, when a row is named.
    pub table: Option<String>,
    /// The audit row's id in `table`, when a row is named.
    pub row_id: Option<i64>,
    /// What is wrong and what it means, in words for an operator.
    pub problem: String,
}

/// What `audit verify` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainReport {
    /// Whether the whole chain verified: no problem found.
    pub ok: bool,
    /// How many links were walked (up to the first problem, if any).
    pub links: u64,
    /// The first link walked; `None`: the chain is empty.
    pub first_seq: Option<i64>,
    /// The last link walked; `None`: the chain is empty.
    pub last_seq: Option<i64>,
    /// How many signed checkpoints matched their link and verified with the audit key.
    pub checkpoints_verified: u64,
    /// The link of the newest checkpoint that verified; `None`: none did.
    pub last_checkpoint_seq: Option<i64>,
    /// Links after the last signed checkpoint: consistent, but not yet vouched for by the HSM.
    pub unsigned_tail: u64,
    /// Where retention cut the chain, and how many links it has removed in all.
    pub anchor_seq: Option<i64>,
    /// How many links retention has removed so far, in all runs (0 without an anchor).
    pub removed_by_retention: u64,
    /// Rows from before the chain existed (migration 0013), which nothing vouches for.
    pub legacy_rows: u64,
    /// The first problem found; `None` when `ok`.
    pub first_bad: Option<ChainProblem>,
}
