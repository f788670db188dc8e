//! The Firebase Cloud Messaging gateway (`gateway-fcm`): a push message reaches FCM's HTTP v1
//! API in the shape privacyIDEA's FirebaseProvider sends, signed in with a Google service
//! account whose key only the daemon holds (sealed; the plugin names it). A local endpoint
//! written here stands in for both Google's token endpoint and FCM: it checks the OAuth
//! assertion's RS256 signature against the test service account's public key and its claims,
//! hands out access tokens, and checks the Bearer token and the message of every send.
//!
//! Paths: the message shape, token reuse and the 401 refresh go through the gateway test-send
//! route (`POST /v1/admin/gateways/NAME/test`, `GatewayService::test`) with push variables,
//! since push challenges are not built yet; retries and the `UNREGISTERED` give-up go through
//! the durable delivery queue, with SMS challenges routed through the FCM gateway. Once push
//! challenges queue deliveries, [`push_through_fcm`] sets up the gateway and the `push` route,
//! and [`FakeGoogle::next_push`] hands the test the data the phone would get.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use countersign_tests::{Daemon, FCM_PLUGIN, HOTP_PLUGIN, SMS_PLUGIN};
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PROJECT: &str = "demo-project";
const CLIENT_EMAIL: &str = "countersign-push@demo-project.iam.gserviceaccount.com";
const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// A test service account: its key pair (made by OpenSSL, PKCS#8 as Google's key files hold
/// it) and its JSON key file as an admin downloads it from the Firebase console.
pub(crate) struct ServiceAccount {
    pub(crate) pem: String,
    pub(crate) public: RsaPublicKey,
}

impl ServiceAccount {
    pub(crate) fn generate() -> ServiceAccount {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let (ok, out) = countersign_tests::openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "openssl genpkey: {out}");
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        let public = RsaPrivateKey::from_pkcs8_pem(&pem).unwrap().to_public_key();
        ServiceAccount { pem, public }
    }

    /// The key file, on one line (as `jq -c` prints it), with `token_uri`.
    pub(crate) fn key_file(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": self.pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "112233445566778899",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com"
        })
        .to_string()
    }

    /// A line of the key's base64 body: what would show if the key were anywhere.
    pub(crate) fn key_line(&self) -> String {
        self.pem.lines().nth(3).unwrap().to_owned()
    }
}

/// One `messages:send` request FCM got.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) path: String,
    pub(crate) bearer: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Value,
    /// What the stand-in answered.
    pub(crate) status: u16,
}

#[derive(Default)]
struct State {
    /// Every token exchange: the assertion's claims, or why it was refused.
    exchanges: Vec<Result<Value, String>>,
    /// Access tokens handed out and not revoked.
    valid: Vec<String>,
    /// FCM's next answers, in order; 200 with a message name when empty.
    answers: VecDeque<(u16, String)>,
    /// Requests of any kind.
    requests: usize,
}

/// Google's token endpoint (`/token`) and FCM (`/v1/projects/.../messages:send`) on
/// 127.0.0.1, judging what the daemon sends as Google would.
pub(crate) struct FakeGoogle {
    pub(crate) port: u16,
    state: Arc<Mutex<State>>,
    sends: mpsc::Receiver<Sent>,
}

struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, len) = loop {
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
    let mut lines = head.lines();
    let first: Vec<&str> = lines.next()?.split(' ').collect();
    let headers =
        lines.filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))).collect();
    Some(Request {
        method: first.first()?.to_string(),
        path: first.get(1)?.to_string(),
        headers,
        body: String::from_utf8_lossy(&buf[head_end..]).into_owned(),
    })
}

fn unb64url(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|e| format!("base64url: {e}"))
}

/// Google's checks of a JWT bearer assertion: RS256 by the service account's key, the key id,
/// issuer, audience (this endpoint), scope, and a lifetime of at most an hour around now.
fn judge_assertion(public: &RsaPublicKey, audience: &str, form: &str) -> Result<Value, String> {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(form.as_bytes()).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err(format!("grant_type {:?}", form.get("grant_type")));
    }
    let jwt = form.get("assertion").ok_or("no assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, sig] = parts[..] else { return Err(format!("{} parts", parts.len())) };
    let header: Value = serde_json::from_slice(&unb64url(h)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" || header["kid"] != KEY_ID {
        return Err(format!("header {header}"));
    }
    let digest = Sha256::digest(format!("{h}.{c}").as_bytes());
    public.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &unb64url(sig)?).map_err(|e| format!("signature: {e}"))?;
    let claims: Value = serde_json::from_slice(&unb64url(c)?).map_err(|e| e.to_string())?;
    let (iat, exp) = (claims["iat"].as_i64().ok_or("iat")?, claims["exp"].as_i64().ok_or("exp")?);
    let now = countersign::now_ms() / 1000;
    if claims["iss"] != CLIENT_EMAIL || claims["aud"] != audience || claims["scope"] != SCOPE {
        return Err(format!("claims {claims}"));
    }
    if exp <= iat || exp - iat > 3600 || (iat - now).abs() > 60 {
        return Err(format!("times iat {iat} exp {exp} now {now}"));
    }
    Ok(claims)
}

fn respond(s: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl FakeGoogle {
    pub(crate) fn start(public: RsaPublicKey) -> FakeGoogle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, sends) = mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let audience = format!("http://127.0.0.1:{port}/token");
            let send_path = format!("/v1/projects/{PROJECT}/messages:send");
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { return };
                let Some(r) = read_request(&mut s) else { continue };
                let mut state = st.lock().unwrap();
                state.requests += 1;
                if r.method == "POST" && r.path == "/token" {
                    match judge_assertion(&public, &audience, &r.body) {
                        Ok(claims) => {
                            state.exchanges.push(Ok(claims));
                            let token = format!("ya29.test-token-{}", state.exchanges.len());
                            state.valid.push(token.clone());
                            let answer = json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer" });
                            respond(&mut s, 200, &answer.to_string());
                        }
                        Err(why) => {
                            state.exchanges.push(Err(why.clone()));
                            let answer = json!({ "error": "invalid_grant", "error_description": why });
                            respond(&mut s, 400, &answer.to_string());
                        }
                    }
                    continue;
                }
                let bearer = r.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_owned);
                let signed_in = bearer.as_ref().is_some_and(|b| state.valid.contains(b));
                let (status, answer) = if r.method != "POST" || r.path != send_path {
                    (404, json!({ "error": { "code": 404, "status": "NOT_FOUND" } }).to_string())
                } else if !signed_in {
                    (401, json!({ "error": { "code": 401, "status": "UNAUTHENTICATED" } }).to_string())
                } else {
                    let n = state.requests;
                    state.answers.pop_front().unwrap_or_else(|| {
                        (200, json!({ "name": format!("projects/{PROJECT}/messages/0:{n}") }).to_string())
                    })
                };
                if status == 401 {
                    // FCM no longer takes this token (revoked, say).
                    state.valid.retain(|t| Some(t) != bearer.as_ref());
                }
                drop(state);
                respond(&mut s, status, &answer);
                let _ = tx.send(Sent {
                    path: r.path,
                    bearer,
                    content_type: r.headers.get("content-type").cloned(),
                    body: serde_json::from_str(&r.body).unwrap_or(Value::Null),
                    status,
                });
            }
        });
        FakeGoogle { port, state, sends }
    }

    pub(crate) fn token_uri(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// FCM answers the next send with `status` and `body` (then 200 again).
    pub(crate) fn answer_next(&self, status: u16, body: Value) {
        self.state.lock().unwrap().answers.push_back((status, body.to_string()));
    }

    pub(crate) fn exchanges(&self) -> Vec<Result<Value, String>> {
        self.state.lock().unwrap().exchanges.clone()
    }

    pub(crate) fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    /// The next `messages:send` request, waiting up to 10 s.
    pub(crate) fn next_send(&self) -> Sent {
        self.sends.recv_timeout(Duration::from_secs(10)).expect("FCM got no message")
    }

    /// The next message FCM took (skipping refused sends), checked for privacyIDEA's shape and
    /// sent to `to`; returns its `data`, the smartphone data the phone gets.
    pub(crate) fn next_push(&self, to: &str) -> BTreeMap<String, String> {
        loop {
            let sent = self.next_send();
            if sent.status == 200 {
                assert_privacyidea_shape(&sent, to);
                return serde_json::from_value(sent.body["message"]["data"].clone()).unwrap();
            }
        }
    }

    /// Asserts that no message reaches FCM within `wait`.
    pub(crate) fn assert_no_send(&self, wait: Duration) {
        if let Ok(s) = self.sends.recv_timeout(wait) {
            panic!("FCM got another message: {s:?}");
        }
    }
}

/// The message privacyIDEA's FirebaseProvider sends, for a push to `to`: everything but the
/// `data` (which [`FakeGoogle::next_push`] returns) and the APNs expiry (now + the TTL).
pub(crate) fn assert_privacyidea_shape(sent: &Sent, to: &str) {
    assert_eq!(sent.path, format!("/v1/projects/{PROJECT}/messages:send"));
    assert_eq!(sent.content_type.as_deref(), Some("application/json; UTF-8"));
    let m = &sent.body["message"];
    assert_eq!(m["token"], to, "{m}");
    let data = &m["data"];
    assert!(data.as_object().unwrap().values().all(Value::is_string), "FCM data values are strings: {data}");
    assert_eq!(m["notification"], json!({ "title": data["title"], "body": data["question"] }));
    assert_eq!(
        m["android"],
        json!({ "priority": "HIGH", "ttl": "120s", "fcm_options": { "analytics_label": "AndroidPushToken" } })
    );
    let expiry: i64 = m["apns"]["headers"]["apns-expiration"].as_str().unwrap().parse().unwrap();
    assert!((expiry - (countersign::now_ms() / 1000 + 120)).abs() < 30, "apns-expiration {expiry}");
    let mut apns = m["apns"].clone();
    apns["headers"].as_object_mut().unwrap().remove("apns-expiration");
    assert_eq!(
        apns,
        json!({
            "headers": { "apns-priority": "10", "apns-push-type": "alert", "apns-collapse-id": "privacyidea.pushtoken" },
            "payload": { "aps": { "alert": { "title": data["title"], "body": data["question"] },
                                  "sound": "default", "category": "PUSH_AUTHENTICATION" } },
            "fcm_options": { "analytics_label": "iOSPushToken" }
        })
    );
    assert_eq!(m.as_object().unwrap().len(), 5, "token, data, notification, android, apns: {m}");
}

/// Defines FCM gateway `name` against `google` with `sa`'s key file (its token URI
/// `token_uri`) as the sealed credential `service_account`, through the CLI as an admin would.
pub(crate) fn define_fcm_gateway(d: &Daemon, name: &str, google: &FakeGoogle, sa: &ServiceAccount, token_uri: &str) {
    let options = json!({ "project_id": PROJECT, "endpoint": format!("http://127.0.0.1:{}", google.port) });
    let transport = json!({ "allowed_hosts": ["127.0.0.1"], "allow_private": true, "timeout_ms": 5000 });
    d.cli_json_stdin(
        &[
            "gateway",
            "add",
            name,
            "--plugin",
            "gateway-fcm",
            "--options",
            &options.to_string(),
            "--transport",
            &transport.to_string(),
            "--credentials-stdin",
        ],
        &format!("service_account={}\n", sa.key_file(token_uri)),
    );
}

/// For push challenges (once they queue deliveries): a stand-in for Google, an FCM gateway
/// `fcm` signed in with a fresh test service account, and the `push` route through it. The
/// daemon needs [`FCM_PLUGIN`] installed. Then trigger a push challenge and read what the
/// phone gets with [`FakeGoogle::next_push`] (its FCM registration token as `to`).
pub(crate) fn push_through_fcm(d: &Daemon) -> (FakeGoogle, ServiceAccount) {
    let sa = ServiceAccount::generate();
    let google = FakeGoogle::start(sa.public.clone());
    define_fcm_gateway(d, "fcm", &google, &sa, &google.token_uri());
    d.route("push", &["fcm"]);
    (google, sa)
}

/// A gateway test send with the smartphone data a push challenge carries.
fn test_push(d: &Daemon, gateway: &str, to: &str, vars: &BTreeMap<&str, &str>) -> Value {
    let (status, r) = countersign_tests::request(
        &d.admin_sock(),
        "POST",
        &format!("/v1/admin/gateways/{gateway}/test"),
        Some(
            json!({ "to": to, "subject": vars["title"], "text": vars["question"], "variables": vars })
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(status, 200, "{r}");
    r
}

/// What privacyIDEA's `_build_smartphone_data` puts in a push (with number matching), and the
/// usual variables of a challenge's message.
fn smartphone_data() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("nonce", "GQ2DKNZVGI3TQMRWGQ2DKNZVGI3TQMRWGQ2DKNZVGI3TQMRW"),
        ("question", "Do you want to sign in to Countersign?"),
        ("serial", "PIPU0006EF85"),
        ("signature", "ORSXG5DTNFTW4YLUOVZGKCQ="),
        ("sslverify", "1"),
        ("title", "Countersign"),
        ("url", "https://countersign.example/ttype/push"),
        ("require_presence", "AB,CD,EF"),
        ("version", "2"),
        ("transaction_id", "01234567890123456789"),
        ("user", "alice"),
        ("realm", "corp"),
    ])
}

const PHONE: &str = "fcm-registration-token:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx";

#[test]
fn a_push_reaches_fcm_in_privacyideas_shape_signed_in_with_the_service_account_once() {
    let d = Daemon::with_plugins(&[FCM_PLUGIN], "");
    let (google, sa) = push_through_fcm(&d);
    assert_eq!(d.cli_json(&["gateway", "routes"])["routes"], json!([{ "token_type": "push", "gateways": ["fcm"] }]));

    let vars = smartphone_data();
    let r = test_push(&d, "fcm", PHONE, &vars);
    assert_eq!(r["delivered"], true, "{r}");
    assert!(r["detail"].as_str().unwrap().starts_with(&format!("HTTP 200 projects/{PROJECT}/messages/")), "{r}");
    let exchanges = google.exchanges();
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    let claims = exchanges[0].as_ref().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600);
    let sent = google.next_send();
    assert_eq!(sent.bearer.as_deref(), Some("ya29.test-token-1"));
    assert_privacyidea_shape(&sent, PHONE);
    // Exactly the smartphone data, as privacyIDEA's `_build_smartphone_data` makes it: not the
    // transaction id, user or realm.
    let data: BTreeMap<String, String> = serde_json::from_value(sent.body["message"]["data"].clone()).unwrap();
    let expected: BTreeMap<String, String> = vars
        .iter()
        .filter(|(k, _)| !matches!(**k, "transaction_id" | "user" | "realm"))
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(data, expected);

    // The access token is kept: a second message signs in no more (the stand-in would refuse
    // a token it did not hand out).
    let mut second = vars.clone();
    second.insert("nonce", "SECONDNONCE");
    assert_eq!(test_push(&d, "fcm", PHONE, &second)["delivered"], true);
    assert_eq!(google.next_push(PHONE)["nonce"], "SECONDNONCE");
    assert_eq!(google.exchanges().len(), 1, "one token exchange for two messages");
    // Through the CLI, a plain test message: subject and text as the notification.
    let r = d.cli_json(&["gateway", "test", "fcm", "--to", PHONE, "--text", "third"]);
    assert_eq!(r["delivered"], true, "{r}");
    let sent = google.next_send();
    assert_eq!(sent.bearer.as_deref(), Some("ya29.test-token-1"));
    assert_eq!(sent.body["message"]["notification"], json!({ "title": "Countersign gateway test", "body": "third" }));
    assert_eq!(sent.body["message"]["data"], json!({}));

    // The key stays with the daemon: sealed at rest, never shown, never audited; the access
    // token neither.
    let shown = d.cli_json(&["gateway", "show", "fcm"]);
    assert_eq!(shown["credentials"], json!(["service_account"]));
    for args in [
        vec!["--json", "gateway", "list"],
        vec!["--json", "gateway", "show", "fcm"],
        vec!["--json", "audit", "auth", "--limit", "1000"],
        vec!["--json", "delivery", "list"],
    ] {
        let out = String::from_utf8_lossy(&d.cli(&args).stdout).into_owned();
        assert!(!out.contains(&sa.key_line()), "{args:?} shows the private key");
        assert!(!out.contains("ya29."), "{args:?} shows the access token");
    }
    if !countersign_tests::skip_on_postgres("the scan of the SQLite files for the service account's key") {
        for needle in [sa.key_line(), "ya29.test-token-1".to_owned(), KEY_ID.to_owned()] {
            assert!(!d.at_rest(needle.as_bytes()), "{needle} at rest");
        }
    }
}

#[test]
fn a_401_drops_the_access_token_and_the_message_goes_out_with_a_new_one() {
    let d = Daemon::with_plugins(&[FCM_PLUGIN], "");
    let sa = ServiceAccount::generate();
    let google = FakeGoogle::start(sa.public.clone());
    define_fcm_gateway(&d, "fcm", &google, &sa, &google.token_uri());
    let vars = smartphone_data();
    assert_eq!(test_push(&d, "fcm", PHONE, &vars)["delivered"], true);
    assert_eq!(google.next_send().bearer.as_deref(), Some("ya29.test-token-1"));

    // FCM refuses the cached token once (revoked): the host drops it, the plugin tries again at
    // once, the host signs in again.
    google.answer_next(401, json!({ "error": { "code": 401, "status": "UNAUTHENTICATED" } }));
    let r = test_push(&d, "fcm", PHONE, &vars);
    assert_eq!(r["delivered"], true, "{r}");
    let refused = google.next_send();
    assert_eq!((refused.status, refused.bearer.as_deref()), (401, Some("ya29.test-token-1")));
    let sent = google.next_send();
    assert_eq!((sent.status, sent.bearer.as_deref()), (200, Some("ya29.test-token-2")));
    assert_eq!(google.exchanges().len(), 2);
    assert!(google.exchanges().iter().all(Result::is_ok), "{:?}", google.exchanges());
}

#[test]
fn through_the_delivery_queue_a_500_is_retried_and_unregistered_is_given_up_at_once() {
    let d = Daemon::with_plugins(&[HOTP_PLUGIN, SMS_PLUGIN, FCM_PLUGIN], "");
    let sa = ServiceAccount::generate();
    let google = FakeGoogle::start(sa.public.clone());
    define_fcm_gateway(&d, "fcm", &google, &sa, &google.token_uri());
    // SMS challenges stand in for push ones here: same queue, same rounds, same gateway.
    d.route("sms", &["fcm"]);
    let t = d.admin_ok("POST", "/v1/admin/tokens", json!({ "type": "sms", "phone": PHONE, "pin": "1234" }));
    let serial = t["token"]["serial"].as_str().unwrap().to_owned();

    google.answer_next(500, json!({ "error": { "code": 500, "message": "Internal error.", "status": "INTERNAL" } }));
    let (_, v) = d.check(json!({ "serial": serial, "pass": "1234" }));
    assert_eq!(v["challenges"][0]["delivery"], "queued", "{v}");
    assert_eq!(google.next_send().status, 500);
    // The retry is due after 5 s of the daemon's clock.
    d.set_clock_offset_ms(6_000);
    let sent = google.next_send();
    assert_eq!(sent.status, 200);
    assert_eq!(sent.body["message"]["token"], PHONE);
    assert_eq!(sent.body["message"]["data"], json!({ "serial": serial }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let delivery = loop {
        let list = d.cli_json(&["delivery", "list"]);
        let dl = list["deliveries"][0].clone();
        if dl["status"] == "delivered" {
            break dl;
        }
        assert!(std::time::Instant::now() < deadline, "{list:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(delivery["delivered_via"], "fcm");
    let log: Vec<&str> = delivery["log"].as_array().unwrap().iter().map(|a| a["detail"].as_str().unwrap()).collect();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], "HTTP 500 INTERNAL: Internal error.");
    assert_eq!(google.exchanges().len(), 1, "the retry reused the access token");

    // The phone's app is gone: FCM says UNREGISTERED. The delivery fails at once, with no
    // retry and no later round.
    google.answer_next(
        404,
        json!({ "error": { "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                           "details": [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                         "errorCode": "UNREGISTERED" }] } }),
    );
    let (_, v) = d.check(json!({ "serial": serial, "pass": "1234" }));
    let c = &v["challenges"][0];
    assert_eq!(c["delivery"], "failed", "{v}");
    assert!(c["delivery_detail"].as_str().unwrap().contains("UNREGISTERED"), "{c}");
    assert_eq!(google.next_send().status, 404);
    let list = d.cli_json(&["delivery", "list", "--status", "failed"]);
    let dl = &list["deliveries"][0];
    assert_eq!(dl["log"].as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(dl["last_error"], "fcm: HTTP 404 NOT_FOUND UNREGISTERED: Requested entity was not found.");
    d.set_clock_offset_ms(120_000);
    google.assert_no_send(Duration::from_secs(2));
}

#[test]
fn the_daemon_signs_in_and_sends_only_where_the_definition_allows() {
    let d = Daemon::with_plugins(&[FCM_PLUGIN], "");
    let sa = ServiceAccount::generate();
    let google = FakeGoogle::start(sa.public.clone());
    let vars = smartphone_data();

    // The key file's token URI names a host not in allowed_hosts: nothing is sent anywhere,
    // neither the assertion nor the message.
    let elsewhere = format!("http://localhost:{}/token", google.port);
    define_fcm_gateway(&d, "fcm-elsewhere", &google, &sa, &elsewhere);
    let r = test_push(&d, "fcm-elsewhere", PHONE, &vars);
    assert_eq!(r["delivered"], false, "{r}");
    assert!(r["detail"].as_str().unwrap().contains("host localhost is not in the gateway's allowed hosts"), "{r}");
    assert_eq!(google.requests(), 0, "a request reached the stand-in");

    // As an option, it is refused when the gateway is defined.
    let options = json!({ "project_id": PROJECT, "endpoint": format!("http://127.0.0.1:{}", google.port), "token_uri": elsewhere });
    let transport = json!({ "allowed_hosts": ["127.0.0.1"], "allow_private": true });
    let out = d.cli_stdin(
        &[
            "gateway",
            "add",
            "fcm-option",
            "--plugin",
            "gateway-fcm",
            "--options",
            &options.to_string(),
            "--transport",
            &transport.to_string(),
            "--credentials-stdin",
        ],
        &format!("service_account={}\n", sa.key_file(&google.token_uri())),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("options.token_uri: host localhost is not in the gateway's allowed hosts"),
        "{err}"
    );

    // Without the credential, or without a project, the plugin refuses the definition.
    for (options, stdin, why) in [
        (json!({ "project_id": PROJECT }), "", "needs a credential named 'service_account'"),
        (json!({}), "service_account={}\n", "missing field `project_id`"),
    ] {
        let out = d.cli_stdin(
            &[
                "gateway",
                "add",
                "fcm-bad",
                "--plugin",
                "gateway-fcm",
                "--options",
                &options.to_string(),
                "--transport",
                &transport.to_string(),
                "--credentials-stdin",
            ],
            stdin,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{options}: {err}");
    }

    // A key Google does not know (another key pair under the same key id): the assertion is
    // refused, and so is the delivery, with Google's reason.
    let stranger = ServiceAccount::generate();
    define_fcm_gateway(&d, "fcm-stranger", &google, &stranger, &google.token_uri());
    let r = test_push(&d, "fcm-stranger", PHONE, &vars);
    assert_eq!(r["delivered"], false, "{r}");
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("OAuth token exchange refused: HTTP 400 invalid_grant signature"), "{r}");
    assert!(!detail.contains(&stranger.key_line()), "{r}");
    assert_eq!(google.exchanges().len(), 1);
    google.assert_no_send(Duration::from_millis(200));
}
