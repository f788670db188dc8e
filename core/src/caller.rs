//! Who a request is from: how it was authenticated (the [`Principal`]) and where it came from
//! (the [`Origin`]). The front-ends make a [`Caller`] once, from the transport and the
//! credential they checked; services, policies and the audit read its parts. Its `Display` is
//! the audit's caller name (`uid:1000`, `ip:10.0.0.1`, `pi-admin:helpdesk ip:10.0.0.1`), which
//! nothing parses back.

use std::fmt;
use std::net::IpAddr;

/// Where a request came from, as its transport says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local process on a Unix socket, by the uid `SO_PEERCRED` gave.
    Uid(u32),
    /// A client of the network listener, by its address (IPv4-mapped addresses as IPv4).
    Address(IpAddr),
    /// The appliance itself (a job, the delivery sender, start-up), by the part that acts.
    Appliance(&'static str),
    /// Neither: the transport said nothing usable.
    Unknown,
}

/// How the caller was authenticated beyond its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// By its origin alone: the socket's uid, or an address that sent no credential.
    Origin,
    /// An API admin with a session from `/auth`, by name.
    ApiAdmin(String),
    /// A service account with an API key, by name.
    Service(String),
    /// A client of the Yubico validation protocol whose request signature verified, by id.
    YubicoClient(String),
    /// A user of the web console with a session (password and second factor), by name.
    Console(String),
}

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// How it was authenticated.
    pub principal: Principal,
    /// Where it came from.
    pub origin: Origin,
}

impl Caller {
    /// A local process on a Unix socket.
    pub fn uid(uid: u32) -> Caller {
        Caller { principal: Principal::Origin, origin: Origin::Uid(uid) }
    }

    /// A client of the network listener, not (yet) authenticated by a credential.
    pub fn address(ip: IpAddr) -> Caller {
        Caller { principal: Principal::Origin, origin: Origin::Address(ip.to_canonical()) }
    }

    /// The appliance itself, acting as `part` (`daemon`, `countersignd`).
    pub fn appliance(part: &'static str) -> Caller {
        Caller { principal: Principal::Origin, origin: Origin::Appliance(part) }
    }

    /// A caller whose transport said nothing usable.
    pub fn unknown() -> Caller {
        Caller { principal: Principal::Origin, origin: Origin::Unknown }
    }

    /// This origin, authenticated as `principal`.
    pub fn as_principal(self, principal: Principal) -> Caller {
        Caller { principal, ..self }
    }

    /// The client's network address, for policy conditions and the audit; `None` on a socket.
    pub fn client(&self) -> Option<IpAddr> {
        match self.origin {
            Origin::Address(ip) => Some(ip),
            _ => None,
        }
    }

    /// The socket peer's uid, when the caller is a local process known by it alone.
    pub fn socket_uid(&self) -> Option<u32> {
        match (&self.principal, &self.origin) {
            (Principal::Origin, Origin::Uid(uid)) => Some(*uid),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Uid(uid) => write!(f, "uid:{uid}"),
            Origin::Address(ip) => write!(f, "ip:{ip}"),
            Origin::Appliance(part) => f.write_str(part),
            Origin::Unknown => f.write_str("unknown"),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.principal {
            Principal::Origin => self.origin.fmt(f),
            Principal::ApiAdmin(name) => write!(f, "pi-admin:{name} {}", self.origin),
            Principal::Service(name) => write!(f, "service:{name} {}", self.origin),
            Principal::YubicoClient(id) => write!(f, "yubico:{id} {}", self.origin),
            Principal::Console(name) => write!(f, "console:{name} {}", self.origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_names_each_caller_as_before() {
        let ip: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let cases = [
            (Caller::uid(1000), "uid:1000", None),
            (Caller::address(ip), "ip:10.0.0.1", Some("10.0.0.1")),
            (
                Caller::address(ip).as_principal(Principal::ApiAdmin("hd".into())),
                "pi-admin:hd ip:10.0.0.1",
                Some("10.0.0.1"),
            ),
            (Caller::uid(0).as_principal(Principal::Service("radius".into())), "service:radius uid:0", None),
            (
                Caller::address(ip).as_principal(Principal::Console("hd".into())),
                "console:hd ip:10.0.0.1",
                Some("10.0.0.1"),
            ),
            (Caller::appliance("daemon"), "daemon", None),
            (Caller::unknown(), "unknown", None),
        ];
        for (caller, name, client) in cases {
            assert_eq!(caller.to_string(), name);
            assert_eq!(caller.client().map(|c| c.to_string()).as_deref(), client, "{name}");
        }
        assert_eq!(Caller::uid(7).socket_uid(), Some(7));
        assert_eq!(Caller::uid(7).as_principal(Principal::ApiAdmin("a".into())).socket_uid(), None);
    }
}
