//! The paths of the HTTP listener whose requests authenticate by their own protocol rather
//! than by an API credential: PowerAuth's mobile API (`/pa/v3/...`), where ECIES to the
//! server's keys or a signature by the activation's keys is the authentication, and a phone has
//! no API key. The network layer (`privacyidea::network_auth`) lets exactly these through
//! without one; every route under them must check its protocol's authentication itself.
//!
//! Owns: the list. Must never: name a path whose handler does not authenticate its caller.

/// Whether requests to `path` authenticate by their own protocol.
pub(crate) fn protocol_authenticated(path: &str) -> bool {
    path.starts_with("/pa/v3/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_powerauth_mobile_prefix_is_listed() {
        assert!(protocol_authenticated("/pa/v3/activation/create"));
        assert!(!protocol_authenticated("/rest/v3/signature/verify"));
        assert!(!protocol_authenticated("/pa/v3"));
        assert!(!protocol_authenticated("/pa/v2/activation/create"));
        assert!(!protocol_authenticated("/validate/check"));
    }
}
