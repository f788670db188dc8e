//! Which paths the PowerAuth protocol authenticates by itself, so the network listener's
//! credential layer lets them through: the mobile API (`/pa/v3/...`: ECIES to keys only the
//! server holds, signatures by an activation's factor keys) and the Mobile Token API of the
//! enrollment server (`/api/auth/token/app/...`: MAC tokens and signatures). A phone has no API
//! credential.
//!
//! Its own module, depending on nothing of this crate, so the credential layer
//! (`privacyidea::caller`) and the PowerAuth routers (which use its callers) do not depend on
//! each other in a circle.

/// The Mobile Token API's prefix (enrollment server 1.9, `MobileTokenController`).
pub(crate) const MOBILE_TOKEN_PREFIX: &str = "/api/auth/token/app/";

/// Whether `path` is the PowerAuth mobile side's, which the protocol itself authenticates.
pub(crate) fn owns_mobile(path: &str) -> bool {
    path.starts_with("/pa/v3/") || path.starts_with(MOBILE_TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mobile_prefixes_are_protocol_authenticated() {
        assert!(owns_mobile("/pa/v3/activation/create"));
        assert!(owns_mobile("/pa/v3/token/create"));
        assert!(owns_mobile("/api/auth/token/app/operation/list"));
        assert!(!owns_mobile("/rest/v3/signature/verify"));
        assert!(!owns_mobile("/rest/v3/token/validate"));
        assert!(!owns_mobile("/pa/v3"));
        assert!(!owns_mobile("/pa/v2/activation/create"));
        assert!(!owns_mobile("/api/auth/token/apps"));
    }
}
