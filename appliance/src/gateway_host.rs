//! Carries out a gateway plugin's transport requests for one delivery, within what the
//! gateway definition allows:
//!
//! - `http_request`: only `http`/`https` URLs whose host is in `transport.allowed_hosts`; every
//!   address the host resolves to must be public unless `transport.allow_private`; no
//!   redirects (a redirect could leave the allowed hosts); one time limit for the whole request;
//!   at most 64 KiB of answer. Credentials named by the plugin (basic password, bearer token,
//!   secret headers) are put in place here, and so is a Google service account's access token
//!   (`google_oauth` gets it, through this same allow-listed path, and keeps it in memory;
//!   a 401 drops it).
//! - `smtp_send`: only to the definition's SMTP server, with its TLS mode and login, and only
//!   to the delivery's recipient.
//!
//! - `now`: the system clock (providers judge times, such as an APNs expiry, by real time).
//!
//! Credentials are opened from their HSM seal once per delivery (read by `secret_json`, never
//! through serde's unzeroized scratch buffer) and dropped (zeroized) with it. Nothing here logs
//! a credential, an access token or a message body.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

use base64::Engine;
use countersign_plugin_abi::protocol::{HostRequest, HostResponse, HttpAuth, PluginRequest, PluginResponse, SecretRef};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::google_oauth::{AccessTokens, CacheKey};
use crate::plugins::{Overreach, PluginCallError, PluginHost};
use crate::store::{GatewayRecord, SmtpTls, Transport};
use crate::token_secrets::TokenSecrets;

/// Largest provider answer read.
const MAX_ANSWER: u64 = 64 * 1024;

/// A gateway's credentials, opened for one delivery.
pub struct Credentials(BTreeMap<String, SecretString>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// Opens `gw`'s sealed credentials (none when it has none); `Err` says why, never with a
    /// value.
    pub fn open(secrets: &TokenSecrets, gw: &GatewayRecord) -> Result<Credentials, String> {
        let Some(sealed) = &gw.sealed_credentials else {
            return Ok(Credentials(BTreeMap::new()));
        };
        let plain = secrets
            .open_gateway_credentials(&gw.name, sealed)
            .map_err(|e| format!("the credentials of gateway {} do not open: {e}", gw.name))?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| format!("the credentials of gateway {} are unreadable", gw.name))?;
        let map = crate::secret_json::string_fields(text)
            .map_err(|_| format!("the credentials of gateway {} are unreadable", gw.name))?;
        Ok(Credentials(map))
    }

    fn get(&self, r: &SecretRef) -> Result<&SecretString, String> {
        let name = r.0.strip_prefix("credential:").unwrap_or(&r.0);
        self.0.get(name).ok_or_else(|| format!("the gateway has no credential named '{name}'"))
    }
}

/// Whether `ip` is an ordinary public address (not loopback, private, link-local, shared,
/// documentation, benchmarking, multicast, reserved or unspecified). IPv6 is an allowlist:
/// only global unicast (`2000::/3`) outside special ranges, and every IPv6 form that embeds an
/// IPv4 address (mapped, compatible, translated, NAT64, 6to4, ISATAP) is judged by that IPv4
/// address, so `::127.0.0.1` or `2002:7f00:1::` cannot smuggle a private target past the check.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(v4: std::net::Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_unspecified()
        || v4.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1]))
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        // 6to4 relay anycast (deprecated): a tunnel into anything.
        || (o[0] == 192 && o[1] == 88 && o[2] == 99)
        || (o[0] == 198 && (18..20).contains(&o[1]))
        || o[0] >= 240)
}

/// The IPv4 address an IPv6 address stands for entirely: IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96` (deprecated; also `::1` and `::`), IPv4-translated
/// `::ffff:0:0:0/96` and the well-known NAT64 prefix `64:ff9b::/96`.
fn whole_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let low = std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let zero = |r: std::ops::Range<usize>| s[r].iter().all(|x| *x == 0);
    let mapped = zero(0..5) && s[5] == 0xffff;
    let compatible = zero(0..6);
    let translated = zero(0..4) && s[4] == 0xffff && s[5] == 0;
    let nat64 = s[0] == 0x0064 && s[1] == 0xff9b && zero(2..6);
    (mapped || compatible || translated || nat64).then_some(low)
}

fn is_public_v6(v6: std::net::Ipv6Addr) -> bool {
    if let Some(v4) = whole_ipv4(v6) {
        return is_public_v4(v4);
    }
    let s = v6.segments();
    let v4_at = |hi: u16, lo: u16| std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // Only global unicast; this also refuses loopback, link-local, unique local, multicast,
    // the NAT64 local-use prefix 64:ff9b:1::/48 and everything not yet allocated.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    // 2001::/23: IETF protocol assignments (Teredo 2001::/32 tunnels to any IPv4 address,
    // benchmarking, ORCHID); 2001:db8::/32 and 3fff::/20: documentation.
    if (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8)) || (s[0] == 0x3fff && s[1] < 0x1000) {
        return false;
    }
    // 6to4 (2002::/16) carries its IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return is_public_v4(v4_at(s[1], s[2]));
    }
    // ISATAP interface identifiers (`::0:5efe:a.b.c.d`, `::200:5efe:a.b.c.d`) name an IPv4 end.
    if (s[4] & 0xfdff) == 0 && s[5] == 0x5efe && !is_public_v4(v4_at(s[6], s[7])) {
        return false;
    }
    true
}

/// Refuses a target the transport does not allow: a host not listed, or (unless private
/// targets are allowed) one that resolves to a non-public address.
pub fn check_host(t: &Transport, host: &str, port: u16) -> Result<(), String> {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    if !t.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
        return Err(format!("host {host} is not in the gateway's allowed hosts"));
    }
    let addrs: Vec<_> =
        (host.as_str(), port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("{host} resolves to no address"));
    }
    if !t.allow_private {
        if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "{host} resolves to {}, a loopback or private address; set transport.allow_private to allow it",
                a.ip()
            ));
        }
    }
    Ok(())
}

/// The host and port of a URL the transport allows.
pub fn check_url(t: &Transport, url: &str) -> Result<url::Url, String> {
    // Messages name the host only: a rendered URL may carry the recipient or the code.
    let u = url::Url::parse(url).map_err(|e| format!("the URL is not valid: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("scheme {}: only http and https are allowed", u.scheme()));
    }
    let host = u.host_str().ok_or_else(|| "the URL has no host".to_owned())?;
    let port = u.port_or_known_default().unwrap_or(443);
    check_host(t, host, port)?;
    Ok(u)
}

/// One request to a URL the transport allows: the answer's status and (at most
/// [`MAX_ANSWER`] of) its body. Errors name the host, never the URL.
fn send(
    t: &Transport,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let url = check_url(t, url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(t.timeout_ms)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let host = url.host_str().unwrap_or_default().to_owned();
    let url = url.as_str();
    let result = match method {
        "GET" => {
            let mut r = agent.get(url);
            for (k, v) in headers {
                r = r.header(k.as_str(), v.as_str());
            }
            r.call()
        }
        "POST" | "PUT" => {
            let mut r = if method == "POST" { agent.post(url) } else { agent.put(url) };
            for (k, v) in headers {
                r = r.header(k.as_str(), v.as_str());
            }
            r.send(body.unwrap_or_default())
        }
        other => return Err(format!("method {other} is not allowed")),
    };
    // The client's errors may quote the URL; replace it by its host.
    let mut resp = result.map_err(|e| format!("HTTP request to {host}: {}", e.to_string().replace(url, &host)))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(MAX_ANSWER).read_to_string().unwrap_or_default();
    Ok((status, body))
}

fn http(
    gw: &GatewayRecord,
    tokens: &AccessTokens,
    creds: &Credentials,
    req: HostRequest,
) -> Result<HostResponse, String> {
    let t = &gw.transport;
    let HostRequest::HttpRequest { method, url, headers, secret_headers, body, auth } = req else {
        return Err("not an HTTP request".into());
    };
    let mut all: Vec<(String, String)> = headers;
    for (name, secret) in &secret_headers {
        all.push((name.clone(), creds.get(secret)?.expose_secret().to_owned()));
    }
    let mut oauth = None;
    match &auth {
        Some(HttpAuth::Basic { username, password }) => {
            let pair = format!("{username}:{}", creds.get(password)?.expose_secret());
            all.push((
                "Authorization".into(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)),
            ));
        }
        Some(HttpAuth::Bearer { token }) => {
            all.push(("Authorization".into(), format!("Bearer {}", creds.get(token)?.expose_secret())));
        }
        Some(HttpAuth::GoogleServiceAccount { credential, scope, token_uri }) => {
            // No token is fetched for a request that `send` would refuse anyway.
            check_url(t, &url)?;
            let key_file = creds.get(credential)?;
            let sealed = gw.sealed_credentials.as_deref().unwrap_or_default();
            let key = CacheKey::new(&gw.name, sealed, &credential.0, scope, token_uri.as_deref());
            let token = tokens.get_or_fetch(&key, || {
                // The assertion's times are the system clock's: Google judges them by real time.
                crate::google_oauth::fetch(
                    key_file,
                    scope,
                    token_uri.as_deref(),
                    crate::now_ms() / 1000,
                    |uri, form| {
                        let form_headers =
                            [("Content-Type".to_owned(), "application/x-www-form-urlencoded".to_owned())];
                        send(t, "POST", uri, &form_headers, Some(form))
                            .map(|(status, body)| (status, Zeroizing::new(body)))
                    },
                )
                .map_err(|e| e.to_string())
            })?;
            all.push(("Authorization".into(), format!("Bearer {}", token.expose_secret())));
            oauth = Some(key);
        }
        None => {}
    }
    let (status, body) = send(t, &method, url.as_str(), &all, body.as_deref())?;
    if status == 401 {
        // Revoked, or the key file replaced at Google: the next request fetches a new token.
        if let Some(key) = &oauth {
            tokens.forget(key);
        }
    }
    Ok(HostResponse::Http { status, body })
}

fn smtp(t: &Transport, creds: &Credentials, recipient: &str, req: HostRequest) -> Result<HostResponse, String> {
    use lettre::message::{header::ContentType, Mailbox, MultiPart};
    use lettre::transport::smtp::authentication::Credentials as Login;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::Transport as _;
    let HostRequest::SmtpSend { from, to, subject, text, html } = req else {
        return Err("not an e-mail".into());
    };
    let server = t.smtp.as_ref().ok_or("the gateway has no SMTP server configured")?;
    if to.len() != 1 || to[0] != recipient {
        return Err("e-mail may go only to this delivery's recipient".into());
    }
    if !t.allow_private {
        let allowed = Transport { allowed_hosts: vec![server.host.clone()], ..t.clone() };
        check_host(&allowed, &server.host, server.port)?;
    }
    let from: Mailbox = from.parse().map_err(|e| format!("from '{from}': {e}"))?;
    let to: Mailbox = recipient.parse().map_err(|e| format!("recipient '{recipient}': {e}"))?;
    let builder = lettre::Message::builder().from(from).to(to).subject(subject);
    let message = match html {
        Some(h) => builder.multipart(MultiPart::alternative_plain_html(text, h)),
        None => builder.header(ContentType::TEXT_PLAIN).body(text),
    }
    .map_err(|e| format!("cannot build the e-mail: {e}"))?;
    let tls = |wrap: bool| -> Result<Tls, String> {
        let mut params = TlsParameters::builder(server.host.clone());
        if let Some(ca) = &server.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("cannot read transport.smtp.ca_file {ca}: {e}"))?;
            params = params.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| format!("{ca}: {e}"))?);
        }
        let params = params.build_rustls().map_err(|e| e.to_string())?;
        Ok(if wrap { Tls::Wrapper(params) } else { Tls::Required(params) })
    };
    let mut transport = lettre::SmtpTransport::builder_dangerous(&server.host)
        .tls(match server.tls {
            SmtpTls::Starttls => tls(false)?,
            SmtpTls::Tls => tls(true)?,
            SmtpTls::None => Tls::None,
        })
        .port(server.port)
        .timeout(Some(Duration::from_millis(t.timeout_ms)));
    if let Some(user) = &server.username {
        let password = creds.get(&SecretRef("credential:smtp_password".into()))?;
        transport = transport.credentials(Login::new(user.clone(), password.expose_secret().to_owned()));
    }
    let answer = transport.build().send(&message).map_err(|e| format!("SMTP {}:{}: {e}", server.host, server.port))?;
    Ok(HostResponse::SmtpSent { detail: format!("SMTP {}", answer.code()) })
}

/// Calls gateway `gw`'s plugin with `req`, serving its transport requests within the
/// definition's limits. `recipient` is the delivery's phone number or address; `tokens` the
/// OAuth access tokens kept for the gateways.
pub fn call_for_gateway(
    plugins: &PluginHost,
    secrets: &TokenSecrets,
    tokens: &AccessTokens,
    gw: &GatewayRecord,
    req: &PluginRequest,
    recipient: &str,
) -> Result<PluginResponse, PluginCallError> {
    let creds = Credentials::open(secrets, gw);
    // How many transport requests a delivery may make is bounded by the plugin host
    // (`MAX_TRANSPORT_REQUESTS`); what each may reach, here.
    let mut serve = |r: HostRequest| -> Result<HostResponse, Overreach> {
        if matches!(r, HostRequest::Now) {
            return Ok(HostResponse::Now { unix_ms: crate::now_ms() });
        }
        let creds = match &creds {
            Ok(c) => c,
            Err(e) => return Ok(HostResponse::Refused { reason: e.clone() }),
        };
        let answer = match r {
            r @ HostRequest::HttpRequest { .. } => http(gw, tokens, creds, r),
            r @ HostRequest::SmtpSend { .. } => smtp(&gw.transport, creds, recipient, r),
            _ => return Err(Overreach("gateway plugins have only transport capabilities and the clock".into())),
        };
        Ok(answer.unwrap_or_else(|reason| {
            // The reason may quote what the plugin sent (a credential's name, a method, a
            // sender): the log gets it bounded and without line breaks or control characters,
            // as every plugin text; the plugin gets its own words back.
            let logged = countersign_plugin_ipc::plugin_text(&reason);
            tracing::warn!(gateway = %gw.name, reason = %logged, "gateway transport request refused or failed");
            HostResponse::Refused { reason }
        }))
    };
    plugins.call(&gw.plugin, req, &mut serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            // IPv4-mapped, -compatible and -translated forms of private addresses.
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:10.1.1.1",
            // NAT64 of private addresses, and the local-use NAT64 prefix.
            "64:ff9b::127.0.0.1",
            "64:ff9b::c0a8:0101",
            "64:ff9b:1::8.8.8.8",
            // 6to4 of private addresses.
            "2002:7f00:0001::1",
            "2002:0a00:0001::",
            "2002:c0a8:0101:1::5",
            // Teredo, ORCHID, benchmarking and documentation.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:10::1",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            // ISATAP with a private IPv4 end.
            "2a00:1450::5efe:c0a8:0101",
            "2a00:1450::200:5efe:7f00:1",
            // Not global unicast: unallocated or reserved.
            "4000::1",
            "100::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a} passed as public");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2a00:1450::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "2a00:1450::5efe:0808:0808",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a} refused as not public");
        }
    }

    #[test]
    fn only_listed_hosts_and_http_schemes_pass() {
        let t =
            Transport { allowed_hosts: vec!["127.0.0.1".into()], allow_private: true, timeout_ms: 1000, smtp: None };
        assert!(check_url(&t, "http://127.0.0.1:9/x").is_ok());
        assert!(check_url(&t, "http://127.0.0.2/x").unwrap_err().contains("not in the gateway's allowed hosts"));
        assert!(check_url(&t, "ftp://127.0.0.1/x").unwrap_err().contains("only http and https"));
        let strict = Transport { allow_private: false, ..t };
        assert!(check_url(&strict, "http://127.0.0.1/x").unwrap_err().contains("loopback or private"));
    }
}
