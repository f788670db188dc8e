//! Push challenges through Firebase Cloud Messaging's HTTP v1 API, as a gateway plugin.
//!
//! From the definition's options and one message it builds `POST
//! {endpoint}/v1/projects/{project_id}/messages:send` with the message privacyIDEA's
//! `FirebaseProvider` sends, so the privacyIDEA Authenticator app understands it: the phone's
//! registration token, the smartphone data as `data` (the keys of [`DATA_KEYS`] the message
//! carries, as strings), a notification, and the Android and APNs parts. It names the
//! gateway's service-account credential in the request's `auth`; the host signs in to Google
//! with it and puts the access token in place, so this plugin never sees the key or the token,
//! and has no network of its own. It judges FCM's answer: 200 delivered; 400, 403 and 404
//! (`INVALID_ARGUMENT`, `SENDER_ID_MISMATCH`, `UNREGISTERED`) not deliverable, no retry; a 401
//! is tried once more at once (the host has dropped the token it used); 429, 5xx and
//! transport failures may succeed later.
//!
//! It must never keep state between deliveries, or put anything in the request that the
//! message and the options do not hold.

#![warn(missing_docs, unreachable_pub)]

use countersign_plugin_abi::abi::PluginKind;
use countersign_plugin_abi::guest::{Host, PluginError};
use countersign_plugin_abi::protocol::{
    HostRequest, HttpAuth, OutgoingMessage, PluginRequest, PluginResponse, SecretRef,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The OAuth scope FCM's HTTP v1 API needs.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The message variables that travel as the FCM message's `data`: privacyIDEA's smartphone
/// data (`_build_smartphone_data` in its `pushtoken.py`), with `require_presence` and
/// `version` for number matching.
pub const DATA_KEYS: &[&str] =
    &["nonce", "question", "serial", "signature", "sslverify", "title", "url", "require_presence", "version"];

/// Longest time to live FCM accepts: 28 days.
const MAX_TTL_S: u64 = 28 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Priority {
    /// Wakes the phone at once (Android `HIGH`, APNs 10), as privacyIDEA sends.
    #[default]
    High,
    /// Android `NORMAL`, APNs 5: may be delayed to save battery.
    Normal,
}

/// The definition's options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// The Firebase project the phones' app is registered in.
    project_id: String,
    /// FCM's base URL (another only for tests or a proxy).
    #[serde(default = "default_endpoint")]
    endpoint: String,
    /// Where the host exchanges the OAuth assertion, instead of the key file's `token_uri`.
    token_uri: Option<String>,
    /// The credential holding the service account's JSON key file.
    #[serde(default = "default_credential")]
    credential: String,
    /// How long FCM and APNs keep trying to reach the phone, in seconds.
    #[serde(default = "default_ttl")]
    ttl_s: u64,
    #[serde(default)]
    priority: Priority,
}

fn default_endpoint() -> String {
    "https://fcm.googleapis.com".into()
}

fn default_credential() -> String {
    "service_account".into()
}

fn default_ttl() -> u64 {
    120
}

fn options(v: &Value) -> Result<Options, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("options: {e}"))
}

fn is_http_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(char::is_whitespace)
}

/// Why the options cannot work, if they cannot.
fn invalid(o: &Options, credentials: &[String]) -> Option<String> {
    let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if o.project_id.is_empty() || !o.project_id.chars().all(id_ok) {
        return Some(format!("project_id '{}' must be a Firebase project id (letters, digits, - _ . :)", o.project_id));
    }
    if !is_http_url(&o.endpoint) || o.endpoint.contains(['?', '#']) {
        return Some(format!("endpoint '{}' must be a base URL starting with https://", o.endpoint));
    }
    if let Some(t) = o.token_uri.as_ref().filter(|t| !is_http_url(t)) {
        return Some(format!("token_uri '{t}' must start with https://"));
    }
    if o.ttl_s > MAX_TTL_S {
        return Some(format!("ttl_s must be at most {MAX_TTL_S} (28 days), not {}", o.ttl_s));
    }
    if !credentials.contains(&o.credential) {
        return Some(format!(
            "the definition needs a credential named '{}' holding the service account's JSON key file",
            o.credential
        ));
    }
    None
}

/// The FCM v1 request body for `m`, at `now_ms` (the APNs expiry), as privacyIDEA's
/// `FirebaseProvider.submit_message` builds it.
pub fn request_body(m: &OutgoingMessage, ttl_s: u64, high_priority: bool, now_ms: i64) -> Value {
    let data: Map<String, Value> = DATA_KEYS
        .iter()
        .filter_map(|k| m.variables.get(*k).map(|v| ((*k).to_owned(), Value::String(v.clone()))))
        .collect();
    // The push data's title and question; a message without them (sent through this gateway for
    // another token type) shows its subject and text.
    let title = m.variables.get("title").unwrap_or(&m.subject);
    let body = m.variables.get("question").unwrap_or(&m.text);
    let expiry = now_ms.div_euclid(1000).saturating_add(i64::try_from(ttl_s).unwrap_or(i64::MAX));
    json!({
        "message": {
            "data": data,
            "token": m.to,
            "notification": { "title": title, "body": body },
            "android": {
                "priority": if high_priority { "HIGH" } else { "NORMAL" },
                "ttl": format!("{ttl_s}s"),
                "fcm_options": { "analytics_label": "AndroidPushToken" }
            },
            "apns": {
                "headers": {
                    "apns-priority": if high_priority { "10" } else { "5" },
                    "apns-push-type": "alert",
                    "apns-collapse-id": "privacyidea.pushtoken",
                    "apns-expiration": expiry.to_string()
                },
                "payload": {
                    "aps": {
                        "alert": { "title": title, "body": body },
                        "sound": "default",
                        "category": "PUSH_AUTHENTICATION"
                    }
                },
                "fcm_options": { "analytics_label": "iOSPushToken" }
            }
        }
    })
}

/// What FCM's answer means: [`PluginResponse::Delivered`], or not with whether a later try
/// (or another gateway) may do better.
pub fn judge(status: u16, body: &str) -> PluginResponse {
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if status == 200 {
        let name = answer.get("name").and_then(Value::as_str).unwrap_or_default();
        let detail: String = format!("HTTP 200 {name}").trim_end().chars().take(200).collect();
        return PluginResponse::Delivered { detail };
    }
    let error = answer.get("error");
    let text = |k: &str| error.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or_default();
    // FCM's own code (UNREGISTERED, SENDER_ID_MISMATCH, QUOTA_EXCEEDED, ...) is in the details.
    let fcm_code = error
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .and_then(|d| d.iter().find_map(|x| x.get("errorCode").and_then(Value::as_str)))
        .unwrap_or_default();
    let mut detail = format!("HTTP {status}");
    for part in [text("status"), fcm_code] {
        if !part.is_empty() {
            detail.push(' ');
            detail.push_str(part);
        }
    }
    let message = text("message");
    let detail: String =
        if message.is_empty() { detail } else { format!("{detail}: {message}") }.chars().take(300).collect();
    // 400: the request is wrong (a malformed registration token); 403: the token belongs to
    // another sender; 404: the app was uninstalled or the token expired. Trying again sends
    // the same thing to the same answer.
    let retry = !matches!(status, 400 | 403 | 404);
    PluginResponse::NotDelivered { detail, retry }
}

/// The `http_request` that sends `body` to FCM: the service account only named, by its
/// credential, for the host to sign in with.
fn fcm_request(o: &Options, body: &str) -> HostRequest {
    HostRequest::HttpRequest {
        method: "POST".into(),
        url: format!("{}/v1/projects/{}/messages:send", o.endpoint.trim_end_matches('/'), o.project_id),
        headers: vec![("Content-Type".into(), "application/json; UTF-8".into())],
        secret_headers: Vec::new(),
        body: Some(body.to_owned()),
        auth: Some(HttpAuth::GoogleServiceAccount {
            credential: SecretRef(format!("credential:{}", o.credential)),
            scope: FCM_SCOPE.into(),
            token_uri: o.token_uri.clone(),
        }),
    }
}

fn deliver(host: &Host<'_>, m: &OutgoingMessage, o: &Options) -> Result<PluginResponse, PluginError> {
    let now = host.now_ms()?;
    let body = request_body(m, o.ttl_s, o.priority == Priority::High, now).to_string();
    let request = || fcm_request(o, &body);
    let mut answer = host.http(request());
    // A 401 means the access token was revoked or went stale early; the host has dropped it,
    // so one more request signs in again.
    if matches!(answer, Ok((401, _))) {
        answer = host.http(request());
    }
    match answer {
        Ok((status, text)) => Ok(judge(status, &text)),
        // Refused by the host (a host not allowed, the OAuth exchange refused), connection
        // refused, timeout: a later try or another gateway may do better.
        Err(e) => Ok(PluginResponse::NotDelivered { detail: e.to_string(), retry: true }),
    }
}

/// The plugin's request handler.
pub fn handle(host: &Host<'_>, req: PluginRequest) -> Result<PluginResponse, PluginError> {
    countersign_plugin_abi::guest::handle_gateway(host, req, options, invalid, deliver)
}

countersign_plugin_abi::declare_plugin! {
    kind: PluginKind::Gateway,
    name: "gateway-fcm",
    version: env!("CARGO_PKG_VERSION"),
    handler: handle,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn push_message() -> OutgoingMessage {
        let vars = [
            ("nonce", "N0NCE"),
            ("question", "Do you want to sign in?"),
            ("serial", "PIPU0001"),
            ("signature", "SIG32"),
            ("sslverify", "1"),
            ("title", "Countersign"),
            ("url", "https://cs.example/ttype/push"),
            ("transaction_id", "01234567890123456789"),
            ("user", "alice"),
            ("realm", "corp"),
        ];
        OutgoingMessage {
            to: "fcm-registration-token".into(),
            subject: "Countersign".into(),
            text: "Do you want to sign in?".into(),
            variables: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn the_body_is_privacyideas_firebase_message() {
        let body = request_body(&push_message(), 120, true, 1_700_000_000_500);
        assert_eq!(
            body,
            json!({ "message": {
                "data": { "nonce": "N0NCE", "question": "Do you want to sign in?", "serial": "PIPU0001",
                          "signature": "SIG32", "sslverify": "1", "title": "Countersign",
                          "url": "https://cs.example/ttype/push" },
                "token": "fcm-registration-token",
                "notification": { "title": "Countersign", "body": "Do you want to sign in?" },
                "android": { "priority": "HIGH", "ttl": "120s", "fcm_options": { "analytics_label": "AndroidPushToken" } },
                "apns": {
                    "headers": { "apns-priority": "10", "apns-push-type": "alert",
                                 "apns-collapse-id": "privacyidea.pushtoken", "apns-expiration": "1700000120" },
                    "payload": { "aps": { "alert": { "title": "Countersign", "body": "Do you want to sign in?" },
                                          "sound": "default", "category": "PUSH_AUTHENTICATION" } },
                    "fcm_options": { "analytics_label": "iOSPushToken" }
                }
            }})
        );
        // Number matching adds its two keys; normal priority lowers both platforms'.
        let mut m = push_message();
        m.variables.insert("require_presence".into(), "A,B,C".into());
        m.variables.insert("version".into(), "2".into());
        let body = request_body(&m, 60, false, 0);
        assert_eq!(body["message"]["data"]["require_presence"], "A,B,C");
        assert_eq!(body["message"]["data"]["version"], "2");
        assert_eq!(body["message"]["android"]["priority"], "NORMAL");
        assert_eq!(body["message"]["android"]["ttl"], "60s");
        assert_eq!(body["message"]["apns"]["headers"]["apns-priority"], "5");
    }

    #[test]
    fn fcm_answers_are_judged_with_retry_only_where_it_can_help() {
        assert_eq!(
            judge(200, r#"{"name":"projects/demo/messages/0:1"}"#),
            PluginResponse::Delivered { detail: "HTTP 200 projects/demo/messages/0:1".into() }
        );
        let unregistered = r#"{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND",
            "details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        assert_eq!(
            judge(404, unregistered),
            PluginResponse::NotDelivered {
                detail: "HTTP 404 NOT_FOUND UNREGISTERED: Requested entity was not found.".into(),
                retry: false
            }
        );
        for (status, retry) in [(400, false), (403, false), (401, true), (429, true), (500, true), (503, true)] {
            match judge(status, "not json") {
                PluginResponse::NotDelivered { detail, retry: r } => {
                    assert_eq!(r, retry, "{status}");
                    assert_eq!(detail, format!("HTTP {status}"));
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_request_names_the_credential_and_nothing_secret() {
        let o = options(&json!({ "project_id": "demo", "endpoint": "http://127.0.0.1:9/", "token_uri": "http://127.0.0.1:9/token" }))
            .unwrap();
        let wire = serde_json::to_value(fcm_request(&o, "{}")).unwrap();
        assert_eq!(
            wire,
            json!({
                "capability": "http_request",
                "method": "POST",
                "url": "http://127.0.0.1:9/v1/projects/demo/messages:send",
                "headers": [["Content-Type", "application/json; UTF-8"]],
                "secret_headers": [],
                "body": "{}",
                "auth": { "type": "google_service_account", "credential": "credential:service_account",
                          "scope": "https://www.googleapis.com/auth/firebase.messaging",
                          "token_uri": "http://127.0.0.1:9/token" }
            })
        );
    }

    #[test]
    fn options_are_checked_with_the_reason() {
        let creds = vec!["service_account".to_owned()];
        let check = |v: Value| options(&v).and_then(|o| invalid(&o, &creds).map_or(Ok(()), Err));
        assert_eq!(check(json!({ "project_id": "demo-123" })), Ok(()));
        for (v, why) in [
            (json!({}), "missing field `project_id`"),
            (json!({ "project_id": "a/b" }), "must be a Firebase project id"),
            (json!({ "project_id": "p", "endpoint": "ftp://x" }), "must be a base URL"),
            (json!({ "project_id": "p", "token_uri": "oauth2.googleapis.com" }), "token_uri"),
            (json!({ "project_id": "p", "ttl_s": 99_999_999 }), "ttl_s must be at most"),
            (json!({ "project_id": "p", "credential": "sa" }), "needs a credential named 'sa'"),
            (json!({ "project_id": "p", "priority": "urgent" }), "unknown variant"),
            (json!({ "project_id": "p", "colour": "red" }), "unknown field `colour`"),
        ] {
            let e = check(v.clone()).unwrap_err();
            assert!(e.contains(why), "{v}: {e}");
        }
    }
}
