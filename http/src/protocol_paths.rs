//! The paths of the HTTP listener whose requests authenticate by their own protocol rather
//! than by an API credential: PowerAuth's mobile API (`/pa/v3/...`: ECIES to keys only the
//! server holds, signatures by an activation's factor keys) and the enrollment server's Mobile
//! Token API (`/api/auth/token/app/...`: MAC tokens and signatures), and privacyIDEA's push
//! endpoint (`/ttype/push`, and eduMFA's `/ttype/edupush`: an enrolment credential, or the phone's signature). A phone has no
//! API credential. The network layer (`privacyidea::network_auth`) lets exactly these through
//! without one; every route under them must check its protocol's authentication itself.
//!
//! Its own module, depending on nothing of this crate, so the credential layer and the
//! PowerAuth routers (which use its callers) do not depend on each other in a circle.
//!
//! Owns: the list. Must never: name a path whose handler does not authenticate its caller.

use countersign_core::policy::push::PushFlavour;

/// The Mobile Token API's prefix (enrollment server 1.9, `MobileTokenController`).
pub(crate) const MOBILE_TOKEN_PREFIX: &str = "/api/auth/token/app/";

/// Whether requests to `path` authenticate by their own protocol.
pub(crate) fn protocol_authenticated(path: &str) -> bool {
    path.starts_with("/pa/v3/")
        || path.starts_with(MOBILE_TOKEN_PREFIX)
        // The push endpoints (privacyIDEA's and eduMFA's), where phones enrol, poll and answer.
        || PushFlavour::ALL.iter().any(|f| f.endpoint() == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_phone_protocols_are_listed() {
        assert!(protocol_authenticated("/pa/v3/activation/create"));
        assert!(protocol_authenticated("/pa/v3/token/create"));
        assert!(protocol_authenticated("/api/auth/token/app/operation/list"));
        assert!(!protocol_authenticated("/rest/v3/signature/verify"));
        assert!(!protocol_authenticated("/rest/v3/token/validate"));
        assert!(!protocol_authenticated("/pa/v3"));
        assert!(!protocol_authenticated("/pa/v2/activation/create"));
        assert!(!protocol_authenticated("/api/auth/token/apps"));
        assert!(!protocol_authenticated("/validate/check"));
        assert!(protocol_authenticated("/ttype/push"));
        assert!(protocol_authenticated("/ttype/edupush"));
        assert!(!protocol_authenticated("/ttype/push/x"));
        assert!(!protocol_authenticated("/ttype/yubikey"));
    }
}
