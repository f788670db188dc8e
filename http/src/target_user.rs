//! The user an admin action names (an enrolment's owner, an assignment's new owner, whom a
//! triggered challenge reaches, a console user page), as admin policies judge them: the user
//! the realm's resolvers find for the login, by the login as the source spells it and the
//! resolver that found them. Shared by the privacyIDEA API and the console, so both judge the
//! person the action will touch, never the string typed (`CEO` for `ceo` in a directory that
//! matches logins in any case).
//!
//! Owns: that one resolution. Must never: judge a right itself, or answer whether a user exists
//! (a login no resolver knows is judged as typed, so the right is refused or the action then
//! fails as unknown, the same for every realm the caller may not see).

use countersign::policy::AdminTarget;
use countersign::resolvers::ResolverError;
use countersign_core::error::Refusal;

use crate::AppState;

/// A user as admin policies see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetUser {
    /// The login as the source spells it (as typed when no resolver knows it).
    pub user: String,
    /// The realm asked (the default realm when none was named).
    pub realm: String,
    /// The resolver that found them; `None` for internal users and unknown logins.
    pub resolver: Option<String>,
}

/// Why the user could not be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetError {
    /// The realm named does not exist (the text names it).
    NoRealm(String),
    /// A resolver could not be asked; the text says which user and why.
    Unreachable(String),
}

impl TargetUser {
    /// Resolves `login` in `realm` (the default realm when `None`).
    pub(crate) async fn find(st: &AppState, login: &str, realm: Option<&str>) -> Result<TargetUser, TargetError> {
        let realm = st.realms.realm_name(realm).map_err(|e| TargetError::NoRealm(e.to_string()))?;
        let (asked, typed) = (realm.clone(), login.to_owned());
        match st.realms.run(move |r| r.resolve(Some(&asked), &typed)).await {
            Ok(Some(u)) => {
                Ok(TargetUser { user: u.user.login.clone(), resolver: u.resolver().map(str::to_owned), realm: u.realm })
            }
            Ok(None) | Err(ResolverError::Refused(Refusal::NotFound(_))) => {
                Ok(TargetUser { user: login.to_owned(), realm, resolver: None })
            }
            Err(e) => Err(TargetError::Unreachable(format!(
                "user {login} could not be looked up in realm {realm}'s user stores ({e}); try again"
            ))),
        }
    }

    /// The admin-policy target.
    pub(crate) fn target(&self) -> AdminTarget<'_> {
        AdminTarget { user: Some(&self.user), realm: Some(&self.realm), resolver: self.resolver.as_deref() }
    }
}
