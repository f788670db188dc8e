//! The sealed set of recorded users (`app_user`), so that a user's absence can be proved.
//!
//! Row seals catch a user row that was edited, and a user's sealed token count catches token
//! rows deleted behind the appliance's back; neither can catch a user row deleted together with
//! all its tokens, after which the person (still in the directory) looks like a user who never
//! had a token, and passOnNoToken or passthru let them in with no second factor. So every user
//! row falls into one of 4,096 buckets by a hash of its identity (what a check resolves a login
//! to), and each bucket is sealed, under the table-seal key, over the identities of all its rows.
//! When a check finds no row for the user it resolved, it checks the seals of the buckets that
//! user's row would be in: a deleted row no longer matches.
//!
//! Owns: `app_user.owner_bucket`, the `owners/<n>` seals. Must never: change which rows a
//! bucket holds without renewing its seal, or renew the seal of a bucket it has not checked.

use crate::db::{args, Sql};
use sha2::{Digest, Sha256};

use super::seals::{hash_value, mark, same_mac, stored_seal, SealKey};
use super::StoreError;

/// How many buckets: with 100,000 users a bucket holds about 25 rows, so checking one costs
/// about 0.1 ms (`make bench`; 256 buckets cost 1.1 ms). Changing it needs every row placed and
/// every bucket sealed again under a new marker.
const BUCKETS: u32 = 4096;

const DOMAIN: &[u8] = b"countersign owner bucket v1\0";

/// The `table_seal` row that records that the buckets are sealed (see `row_seals`' markers).
const MARKER: &str = "owners";

/// The identity a user row stands for, as a check finds it: an internal user by realm and login
/// (exactly as typed), a directory user by resolver and stable id, and a directory user recorded
/// before stable ids were kept by resolver and login (ASCII-lowercased, a superset of every
/// resolver's matching rule, as SQLite's `lower` does it).
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    /// A user of the internal user store.
    Internal {
        /// The row id of the user's realm.
        realm_id: i64,
        /// The login exactly as typed.
        login: &'a str,
    },
    /// A directory user bound to the stable id its resolver gave.
    Directory {
        /// The resolver's name.
        resolver: &'a str,
        /// The stable id the resolver gave the user.
        uid: &'a str,
    },
    /// A directory user recorded before stable ids were kept.
    Unbound {
        /// The resolver's name.
        resolver: &'a str,
        /// The login; the bucket is found from its ASCII-lowercased form.
        login: &'a str,
    },
}

impl Identity<'_> {
    /// The identity of a row with these columns.
    pub fn of_row<'a>(realm_id: i64, login: &'a str, resolver: Option<&'a str>, uid: Option<&'a str>) -> Identity<'a> {
        match (resolver, uid) {
            (None, _) => Identity::Internal { realm_id, login },
            (Some(resolver), Some(uid)) => Identity::Directory { resolver, uid },
            (Some(resolver), None) => Identity::Unbound { resolver, login },
        }
    }

    /// The bucket the identity's row is in.
    pub fn bucket(&self) -> i64 {
        let mut h = Sha256::new();
        h.update(DOMAIN);
        match self {
            Identity::Internal { realm_id, login } => {
                h.update(b"internal\0");
                h.update(realm_id.to_be_bytes());
                h.update(login.as_bytes());
            }
            Identity::Directory { resolver, uid } => {
                h.update(b"directory\0");
                h.update(resolver.as_bytes());
                h.update(b"\0");
                h.update(uid.as_bytes());
            }
            Identity::Unbound { resolver, login } => {
                h.update(b"unbound\0");
                h.update(resolver.as_bytes());
                h.update(b"\0");
                h.update(login.to_ascii_lowercase().as_bytes());
            }
        }
        let d = h.finalize();
        i64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % BUCKETS)
    }
}

fn seal_name(bucket: i64) -> String {
    format!("owners/{bucket}")
}

/// SHA-256 over the identity columns of every row in `bucket`, in id order.
fn digest(conn: &dyn Sql, bucket: i64) -> Result<[u8; 32], StoreError> {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(bucket.to_be_bytes());
    conn.each_row(
        "SELECT id, realm_id, login, resolver, resolver_uid FROM app_user WHERE owner_bucket = ?1 ORDER BY id",
        args![bucket],
        &mut |r| {
            h.update(b"R");
            for i in 0..5 {
                hash_value(&mut h, r.value(i)?);
            }
            Ok(())
        },
    )?;
    Ok(h.finalize().into())
}

fn mac(conn: &dyn Sql, key: &dyn SealKey, bucket: i64) -> Result<Vec<u8>, StoreError> {
    key.mac(&digest(conn, bucket)?)
        .map_err(|e| StoreError::SealUnavailable(format!("the HSM could not seal or check the users: {e}")))
}

/// Checks the seal of `bucket`; a missing or different seal is [`StoreError::Tampered`].
pub(crate) fn verify(conn: &dyn Sql, key: &dyn SealKey, bucket: i64) -> Result<(), StoreError> {
    let fresh = mac(conn, key, bucket)?;
    match stored_seal(conn, &seal_name(bucket))? {
        Some(m) if same_mac(&m, &fresh) => Ok(()),
        _ => Err(StoreError::Tampered(format!(
            "the users of bucket {bucket} were changed outside Countersign (a user row added, edited or deleted)"
        ))),
    }
}

/// Renews the seal of `bucket` from what `conn` (the change's transaction) sees now.
pub(crate) fn reseal(conn: &dyn Sql, key: &dyn SealKey, bucket: i64, now_ms: i64) -> Result<(), StoreError> {
    super::seals::store_seal(conn, &seal_name(bucket), &mac(conn, key, bucket)?, now_ms)
}

/// User row `id`'s bucket as stored, and the bucket its identity columns put it in (`None`:
/// the row is not there).
pub(crate) fn buckets_of(conn: &dyn Sql, id: i64) -> Result<Option<(Option<i64>, i64)>, StoreError> {
    conn.query_opt(
        "SELECT owner_bucket, realm_id, login, resolver, resolver_uid FROM app_user WHERE id = ?1",
        args![id],
        |r| {
            let (login, resolver, uid): (String, Option<String>, Option<String>) = (r.get(2)?, r.get(3)?, r.get(4)?);
            let bucket = Identity::of_row(r.get(1)?, &login, resolver.as_deref(), uid.as_deref()).bucket();
            Ok((r.get::<Option<i64>>(0)?, bucket))
        },
    )
}

/// Sets `owner_bucket` of user row `id` from its identity columns; returns its bucket before and
/// after (`None`: the row is not there).
pub(crate) fn place(conn: &dyn Sql, id: i64) -> Result<Option<(Option<i64>, i64)>, StoreError> {
    let Some((before, after)) = buckets_of(conn, id)? else { return Ok(None) };
    if before != Some(after) {
        conn.execute("UPDATE app_user SET owner_bucket = ?2 WHERE id = ?1", args![id, after])?;
    }
    Ok(Some((before, after)))
}

/// Starts the bucket seals on `conn` (a write transaction): the first time (`adopt`, or a store
/// whose buckets were never sealed), every user row is placed in its bucket and every bucket
/// sealed as it is, and the marker written (covered by the set seal). Returns whether it did.
pub(super) fn start(conn: &dyn Sql, key: &dyn SealKey, adopt: bool, now_ms: i64) -> Result<bool, StoreError> {
    if !adopt && stored_seal(conn, MARKER)?.is_some() {
        return Ok(false);
    }
    let ids: Vec<i64> = conn.query_map("SELECT id FROM app_user ORDER BY id", args![], |r| r.get(0))?;
    for id in ids {
        place(conn, id)?;
    }
    for bucket in 0..i64::from(BUCKETS) {
        reseal(conn, key, bucket, now_ms)?;
    }
    mark(conn, key, MARKER, now_ms)?;
    Ok(true)
}
