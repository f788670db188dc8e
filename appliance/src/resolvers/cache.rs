//! A small user cache with a time to live, for resolvers whose source is remote. Only hits are
//! kept (a user created in the directory is found at once); the size is bounded.
//!
//! This module never holds a password.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::UserInfo;

const MAX_ENTRIES: usize = 10_000;

/// Login → (found at, user). A TTL of zero turns the cache off.
#[derive(Debug)]
pub struct UserCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, UserInfo)>>,
}

impl UserCache {
    /// An empty cache keeping users for `ttl`; zero: off.
    pub fn new(ttl: Duration) -> UserCache {
        UserCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    /// Whether the cache keeps anything (a TTL above zero).
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The cached user, if found less than the TTL ago.
    pub fn get(&self, login: &str) -> Option<UserInfo> {
        if !self.enabled() {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(login) {
            Some((at, u)) if at.elapsed() < self.ttl => Some(u.clone()),
            Some(_) => {
                entries.remove(login);
                None
            }
            None => None,
        }
    }

    /// Remembers `user`, found now under `login`. A full cache drops its expired entries,
    /// then everything if still full.
    pub fn put(&self, login: &str, user: &UserInfo) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(login.to_owned(), (Instant::now(), user.clone()));
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserInfo {
        UserInfo {
            login: "alice".into(),
            uid: "1".into(),
            email: None,
            phone: None,
            mobile: None,
            given_name: None,
            surname: None,
            description: None,
            resolver: "r".into(),
        }
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let c = UserCache::new(Duration::ZERO);
        c.put("alice", &user());
        assert!(c.get("alice").is_none());
    }

    #[test]
    fn entries_expire() {
        let c = UserCache::new(Duration::from_millis(30));
        c.put("alice", &user());
        assert_eq!(c.get("alice"), Some(user()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.get("alice").is_some() {
            assert!(Instant::now() < deadline, "entry never expired");
            std::thread::yield_now();
        }
    }
}
