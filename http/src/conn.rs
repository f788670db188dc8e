//! Connections of the three listeners: how many may be open (in all, per peer, and how many
//! only privileged peers may use), how long a client has to send its headers or may keep an
//! idle connection, and serving each admitted connection with hyper until shutdown.
//!
//! A connection beyond a cap is closed as soon as it is accepted, before a byte is read, so
//! idle or slow clients can hold at most their share of descriptors: the rest of the process
//! (store, HSM, plugin workers) and the other listeners keep working. The caps are cut at
//! start to fit `RLIMIT_NOFILE` minus `connections.fd_reserve` ([`fit_to_descriptors`]).
//!
//! This module never looks into requests: it only admits, times out and closes connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, watch};

use super::extract::PeerCred;
use countersign::signing::CallerId;

/// The caps of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections in all.
    pub max: usize,
    /// Open connections of one peer (uid, IPv4 address, or IPv6 /64).
    pub per_peer: usize,
    /// How many of `max` only privileged peers (admin uids on `admin.sock`) may use.
    pub reserved: usize,
    /// Time to send a request's headers; also the longest idle time between requests (hyper
    /// starts the header timer when it starts waiting for the next request).
    pub header_timeout: Duration,
}

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A Unix socket's peer, by uid (`u32::MAX` when the kernel gave no credentials).
    Uid(u32),
    /// An IPv4 address, or an IPv6 /64 (one subscriber's usual allocation), as 16 bytes.
    Ip([u8; 16]),
}

impl Peer {
    /// The peer of a TCP client: IPv4 (also when IPv4-mapped) by address, IPv6 by its /64.
    pub fn of_ip(ip: IpAddr) -> Peer {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Peer::Ip(v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => {
                let mut o = v6.octets();
                o[8..].fill(0);
                Peer::Ip(o)
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<Peer, usize>,
}

/// Counts the open connections of one listener and admits or refuses new ones.
#[derive(Debug)]
pub struct Gate {
    name: &'static str,
    limits: ConnLimits,
    counts: Mutex<Counts>,
    refused: AtomicU64,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
    peer: Peer,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.gate.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_peer.remove(&self.peer);
            }
        }
    }
}

impl Gate {
    /// A gate with nothing open yet; `name` names the listener in the log.
    pub fn new(name: &'static str, limits: ConnLimits) -> Arc<Gate> {
        Arc::new(Gate { name, limits, counts: Mutex::new(Counts::default()), refused: AtomicU64::new(0) })
    }

    /// The caps this gate enforces.
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// A place for a connection of `peer`, or `None` when the listener or the peer is full.
    /// Unprivileged peers never take the last `reserved` places.
    pub fn admit(self: &Arc<Self>, peer: Peer, privileged: bool) -> Option<Permit> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = if privileged { self.limits.max } else { self.limits.max.saturating_sub(self.limits.reserved) };
        let mine = c.per_peer.get(&peer).copied().unwrap_or(0);
        if c.total >= cap || mine >= self.limits.per_peer {
            drop(c);
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            // Once per power of two: an operator learns of a flood without the log becoming one.
            if n.is_power_of_two() {
                tracing::warn!(
                    listener = self.name,
                    ?peer,
                    refused = n,
                    max = self.limits.max,
                    per_peer = self.limits.per_peer,
                    "connection refused: the listener or this peer has as many connections open as allowed"
                );
            }
            return None;
        }
        c.total += 1;
        *c.per_peer.entry(peer).or_insert(0) += 1;
        Some(Permit { gate: self.clone(), peer })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).total
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The descriptor limit of this process (`RLIMIT_NOFILE`, soft).
#[allow(unsafe_code, reason = "getrlimit(2) writes into a struct we own")]
pub fn descriptor_limit() -> u64 {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into `r`, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return 1024;
    }
    r.rlim_cur
}

/// Cuts the caps of (api, admin, http) so that together they fit `nofile - reserve`
/// descriptors: admin.sock keeps its cap while it fits in half of what is left, api and HTTP
/// share the rest in proportion to their configured caps. Per-peer caps and the admin reserve
/// shrink with their listener. Fails when not even one connection per listener fits.
pub fn fit_to_descriptors(nofile: u64, reserve: u64, caps: [ConnLimits; 3]) -> Result<[ConnLimits; 3], String> {
    let budget = usize::try_from(nofile.saturating_sub(reserve)).unwrap_or(usize::MAX);
    if budget < 4 {
        return Err(format!(
            "the descriptor limit (RLIMIT_NOFILE {nofile}) leaves no room for connections after \
             connections.fd_reserve {reserve}: raise LimitNOFILE or lower connections.fd_reserve"
        ));
    }
    let [api, admin, http] = caps;
    let admin_max = admin.max.min(budget / 2).max(1);
    let rest = budget - admin_max;
    let wanted = api.max.saturating_add(http.max);
    let share = |max: usize| -> usize {
        if wanted <= rest {
            max
        } else {
            // Proportional share; u128 so the product cannot overflow.
            usize::try_from((max as u128 * rest as u128) / wanted.max(1) as u128).unwrap_or(rest).max(1)
        }
    };
    let cut = |l: ConnLimits, max: usize| ConnLimits {
        max,
        per_peer: l.per_peer.min(max),
        reserved: l.reserved.min(max.saturating_sub(1)),
        header_timeout: l.header_timeout,
    };
    Ok([cut(api, share(api.max)), cut(admin, admin_max), cut(http, share(http.max))])
}

/// Accepts until `stop` turns true, then lets admitted connections finish their requests.
/// Too many open descriptors (`EMFILE`/`ENFILE`) pause accepting briefly instead of spinning.
async fn accept_loop<A, Fut>(name: &'static str, mut accept: A, mut stop: watch::Receiver<bool>) -> std::io::Result<()>
where
    A: FnMut(mpsc::Sender<()>, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    // Each connection task holds a clone of `alive`; when all are dropped, all have ended.
    let (alive, mut ended) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            r = accept(alive.clone(), stop.clone()) => r,
            () = stopped(&mut stop) => break,
        };
        if let Err(e) = accepted {
            let busy = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
            tracing::warn!(listener = name, error = %e, "could not accept a connection");
            if busy {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = stopped(&mut stop) => break,
                }
            }
        }
    }
    drop(alive);
    let _ = ended.recv().await;
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves one admitted connection with `router` (the connection's `info` in every request's
/// extensions) until it ends or `stop` turns true (then in-flight requests finish).
fn spawn_connection<I, T>(
    io: I,
    router: Router,
    info: T,
    header_timeout: Duration,
    permit: Permit,
    alive: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut r: axum::extract::Request<hyper::body::Incoming>| {
            r.extensions_mut().insert(ConnectInfo(info.clone()));
            r
        })
        .service(router);
    tokio::spawn(async move {
        let _permit = permit;
        let _alive = alive;
        let service = hyper_util::service::TowerToHyperService::new(service);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            }
            () = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    });
}

/// Serves a Unix socket: peers by uid; `privileged(uid)` may use the reserved places.
pub async fn serve_unix(
    name: &'static str,
    listener: UnixListener,
    router: Router,
    gate: Arc<Gate>,
    privileged: impl Fn(u32) -> bool + Send + Sync + 'static,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let header_timeout = gate.limits().header_timeout;
    accept_loop(
        name,
        |alive, stop| {
            let (listener, router, gate, privileged) = (&listener, &router, &gate, &privileged);
            async move {
                let (stream, _) = listener.accept().await?;
                let cred = stream.peer_cred().ok().map(|c| CallerId { uid: c.uid(), pid: c.pid() });
                // No credentials: counted as a uid nobody has, never privileged (requests fail closed).
                let uid = cred.map_or(u32::MAX, |c| c.uid);
                let Some(permit) = gate.admit(Peer::Uid(uid), cred.is_some() && privileged(uid)) else {
                    return Ok(());
                };
                spawn_connection(stream, router.clone(), PeerCred(cred), header_timeout, permit, alive, stop);
                Ok(())
            }
        },
        stop,
    )
    .await
}

/// Serves the HTTP listener (plain, or TLS with `tls`): peers by address.
pub async fn serve_tcp(
    listener: TcpListener,
    router: Router,
    gate: Arc<Gate>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let header_timeout = gate.limits().header_timeout;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    accept_loop(
        "http",
        |alive, stop| {
            let (listener, router, gate, acceptor) = (&listener, &router, &gate, &acceptor);
            async move {
                let (stream, peer) = listener.accept().await?;
                let Some(permit) = gate.admit(Peer::of_ip(peer.ip()), false) else {
                    return Ok(());
                };
                let router = router.clone();
                match acceptor.clone() {
                    None => spawn_connection(stream, router, peer, header_timeout, permit, alive, stop),
                    Some(acceptor) => {
                        // The handshake runs on the connection's own task, within the header time.
                        tokio::spawn(async move {
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => spawn_connection(s, router, peer, header_timeout, permit, alive, stop),
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
                Ok(())
            }
        },
        stop,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_peer: usize, reserved: usize) -> ConnLimits {
        ConnLimits { max, per_peer, reserved, header_timeout: Duration::from_secs(1) }
    }

    #[test]
    fn caps_in_all_per_peer_and_the_privileged_reserve() {
        let gate = Gate::new("test", limits(4, 2, 1));
        let a1 = gate.admit(Peer::Uid(1000), false).unwrap();
        let _a2 = gate.admit(Peer::Uid(1000), false).unwrap();
        assert!(gate.admit(Peer::Uid(1000), false).is_none(), "per-peer cap");
        let _b1 = gate.admit(Peer::Uid(1001), false).unwrap();
        assert!(gate.admit(Peer::Uid(1002), false).is_none(), "the last place is reserved");
        let _root = gate.admit(Peer::Uid(0), true).unwrap();
        assert!(gate.admit(Peer::Uid(0), true).is_none(), "full");
        assert_eq!(gate.open(), 4);
        drop(a1);
        assert_eq!(gate.open(), 3);
        assert!(gate.admit(Peer::Uid(1000), false).is_none(), "3 open: the 4th place stays reserved");
        assert!(gate.admit(Peer::Uid(0), true).is_some(), "a closed connection frees its place");
        assert_eq!(gate.refused(), 4);
    }

    #[test]
    fn ipv6_peers_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Peer::of_ip(a), Peer::of_ip(b));
        assert_ne!(Peer::of_ip(a), Peer::of_ip(c));
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(Peer::of_ip(v4), Peer::of_ip(mapped));
        assert_ne!(Peer::of_ip(v4), Peer::of_ip("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn caps_are_cut_to_the_descriptor_budget() {
        let caps = [limits(1024, 256, 0), limits(64, 16, 32), limits(1024, 256, 0)];
        // Plenty of descriptors: unchanged.
        assert_eq!(fit_to_descriptors(16384, 256, caps).unwrap(), caps);
        // 512 - 256 = 256 for connections: admin keeps 64, api and http share 192.
        let [api, admin, http] = fit_to_descriptors(512, 256, caps).unwrap();
        assert_eq!(admin, caps[1]);
        assert_eq!((api.max, http.max), (96, 96));
        assert!(api.max + admin.max + http.max <= 256);
        assert_eq!(api.per_peer, 96);
        // Tiny budget: admin gets half, the reserve shrinks below its cap.
        let [api, admin, http] = fit_to_descriptors(266, 256, caps).unwrap();
        assert_eq!(admin.max, 5);
        assert!(admin.reserved < admin.max);
        assert!(api.max + admin.max + http.max <= 10, "{api:?} {http:?}");
        assert!(fit_to_descriptors(200, 256, caps).is_err());
    }
}
