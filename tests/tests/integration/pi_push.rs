//! privacyIDEA conformance of push tokens (issue 20), side by side: privacyIDEA 3.11.4 itself
//! and Countersign, set up alike (a passwd resolver, a realm, the push enrollment and
//! authentication policies, each naming its own `/ttype/push`), each with a push token enrolled
//! by its own phone (`tests/tools/push_phone.py`, one state per server: each server draws its
//! own credential, keys and nonces), then the same requests sent to both and the answers
//! compared field by field: `/token/init type=push`, the phone's second step, polls, accepts
//! and declines on `/ttype/push`, `/validate/polltransaction` in each state, the finalising
//! checks, and a token's `polling_allowed` set and removed with `/token/info`. Values each server draws itself are own fields; every other difference allowed is
//! listed with its reason (docs/api.md, "Differences from privacyIDEA, on purpose").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::privacyidea::{differences, send, Findings, Pair, Shape};
use countersign_tests::push::{enrol_policy, Phone, AUTH_POLICY, PIN};
use countersign_tests::webauthn::PASSWD;
use serde_json::Value;

/// The first step's own values: each server's serial, credential, URI (it carries both, the
/// server's port and issuer) and its QR code.
const INIT_OWN: &[&str] =
    &["detail.serial", "detail.enrollment_credential", "detail.pushurl.value", "detail.pushurl.img"];

/// The second step's own values: each server's key and serial.
const ENROLLED_OWN: &[&str] = &["detail.public_key", "detail.serial"];

/// A challenge's own values: transaction ids and serials.
const CHALLENGE_OWN: &[&str] = &[
    "detail.transaction_id",
    "detail.transaction_ids.*",
    "detail.serial",
    "detail.multi_challenge.*.transaction_id",
    "detail.multi_challenge.*.serial",
];

/// A polled challenge's own values: the nonce, the serial, the server's signature and URL.
const POLLED_OWN: &[&str] =
    &["result.value.*.nonce", "result.value.*.serial", "result.value.*.signature", "result.value.*.url"];

/// A refused finalising check: privacyIDEA says why (`Response did not match the challenge.`,
/// with the token's serial and type), Countersign answers every reject with its one message,
/// naming no token (the audit has the reason), as for every rejected check.
const REJECT_ALLOWED: &[&str] = &["detail.message", "detail.serial", "detail.type"];

/// The URI's parameters in order, with the values each server chooses (serial, credential, the
/// port in the URL, the issuer) left out.
fn uri_shape(uri: &str) -> Vec<String> {
    let (head, query) = uri.split_once('?').unwrap();
    let mut shape = vec![head.split('/').take(3).collect::<Vec<_>>().join("/")];
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap();
        shape.push(match k {
            "url" | "issuer" | "enrollment_credential" | "serial" => k.to_owned(),
            _ => format!("{k}={v}"),
        });
    }
    shape
}

fn judge(
    found: &mut Findings,
    what: &str,
    pv: &Value,
    cv: &Value,
    statuses: (u64, u64),
    own: &[&str],
    allowed: &[&str],
) {
    let mut diff = differences(pv, cv, own);
    if statuses.0 != statuses.1 {
        diff.push(format!("HTTP status: privacyIDEA {}, Countersign {}", statuses.0, statuses.1));
    }
    found.exchange_allowing(what, (pv.clone(), cv.clone(), diff), None, allowed);
}

/// A phone exchange judged: each server's answer to its own phone.
fn judge_phone(found: &mut Findings, what: &str, (p, c): (&Value, &Value), own: &[&str], allowed: &[&str]) {
    let status = |v: &Value| v["http_status"].as_u64().unwrap_or(0);
    judge(found, what, &p["response"], &c["response"], (status(p), status(c)), own, allowed);
}

struct Servers {
    p: Pair,
}

impl Servers {
    fn start() -> Servers {
        let p = Pair::start_with(&[], "[validate]\nthrottle_base_ms = 0\n");
        let passwd = p.cs.work.path().join("passwd");
        std::fs::write(&passwd, PASSWD).unwrap();
        p.admin("POST", "/resolver/files", &[("type", "passwdresolver"), ("fileName", passwd.to_str().unwrap())]);
        p.admin("POST", "/realm/test", &[("resolvers", "files")]);
        let s = Servers { p };
        // Each server's registration URL is its own /ttype/push.
        for (port, auth) in [(s.p.pi.port, s.p.pi_auth.clone()), (s.p.cs_port, s.p.cs_auth.clone())] {
            for (name, scope, action) in [
                ("push-enrol", "enrollment", enrol_policy(port)),
                ("push-auth", "authentication", AUTH_POLICY.to_owned()),
            ] {
                let params = [("scope", scope), ("action", action.as_str()), ("active", "true"), ("realm", "test")];
                let (status, v) =
                    send(port, Shape::Form, "POST", &format!("/policy/{name}"), &params, &[("Authorization", &auth)]);
                assert!(status == 200 && v["result"]["status"] == true, "{v}");
            }
        }
        s
    }

    /// The same request to both (a form POST, or a GET for `Shape::Query`), each with its own
    /// transaction id when `tx` is given: both answers and statuses.
    fn both<'a>(
        &self,
        shape: Shape,
        path: &str,
        params: &[(&'a str, &'a str)],
        tx: Option<(&'a str, &'a str)>,
    ) -> (Value, Value, (u64, u64)) {
        let with = |t: Option<&'a str>| -> Vec<(&'a str, &'a str)> {
            let mut v: Vec<(&'a str, &'a str)> = params.to_vec();
            if let Some(t) = t {
                v.push(("transaction_id", t));
            }
            v
        };
        let (pp, cp) = (with(tx.map(|t| t.0)), with(tx.map(|t| t.1)));
        let (ps, pv) = send(self.p.pi.port, shape, "POST", path, &pp, &[]);
        let (cs, cv) = send(self.p.cs_port, shape, "POST", path, &cp, &[]);
        (pv, cv, (u64::from(ps), u64::from(cs)))
    }

    /// `/token/init` of a push token for alice on both, as the admin.
    fn init(&self) -> (Value, Value, (u64, u64)) {
        let params = [("type", "push"), ("genkey", "1"), ("user", "alice"), ("realm", "test"), ("pin", PIN)];
        let (ps, pv) =
            send(self.p.pi.port, Shape::Form, "POST", "/token/init", &params, &[("Authorization", &self.p.pi_auth)]);
        let (cs, cv) =
            send(self.p.cs_port, Shape::Form, "POST", "/token/init", &params, &[("Authorization", &self.p.cs_auth)]);
        (pv, cv, (u64::from(ps), u64::from(cs)))
    }
}

fn tx(v: &Value) -> String {
    v["detail"]["transaction_id"].as_str().unwrap_or_else(|| panic!("no transaction in {v}")).to_owned()
}

/// The nonce of the newest challenge a poll shows.
fn nonce(poll: &Value) -> String {
    let all = poll["challenges"].as_array().unwrap_or_else(|| panic!("no challenges in {poll}"));
    all.last().and_then(|c| c["nonce"].as_str()).unwrap_or_else(|| panic!("no challenge in {poll}")).to_owned()
}

#[test]
fn push_enrolment_polling_answers_and_polltransaction_answer_as_privacyidea() {
    let s = Servers::start();
    let mut found = Findings::default();
    let dir = tempfile::tempdir().unwrap();

    let (pv, cv, st) = s.init();
    judge(&mut found, "/token/init type=push", &pv, &cv, st, INIT_OWN, &[]);
    let serial = |v: &Value| v["detail"]["serial"].as_str().unwrap().to_owned();
    let serials = (serial(&pv), serial(&cv));
    let uri = |v: &Value| v["detail"]["pushurl"]["value"].as_str().unwrap().to_owned();
    let (pi_uri, cs_uri) = (uri(&pv), uri(&cv));
    found.same("the URI's parameters", &uri_shape(&pi_uri).into(), &uri_shape(&cs_uri).into());

    // A wrong credential, then the second step, then the second step again.
    let wrong = |u: &str, v: &Value| u.replace(v["detail"]["enrollment_credential"].as_str().unwrap(), &"0".repeat(40));
    let (_, _, pw) = Phone::enrol(&wrong(&pi_uri, &pv), dir.path().join("pi-w.json"), Some(2048));
    let (_, _, cw) = Phone::enrol(&wrong(&cs_uri, &cv), dir.path().join("cs-w.json"), Some(2048));
    judge_phone(&mut found, "second step, wrong credential", (&pw, &cw), &[], &[]);
    let (pi_phone, _, pe) = Phone::enrol(&pi_uri, dir.path().join("pi.json"), Some(2048));
    let (cs_phone, _, ce) = Phone::enrol(&cs_uri, dir.path().join("cs.json"), Some(2048));
    judge_phone(&mut found, "second step", (&pe, &ce), ENROLLED_OWN, &[]);
    let (_, _, pa) = Phone::enrol(&pi_uri, dir.path().join("pi-again.json"), Some(2048));
    let (_, _, ca) = Phone::enrol(&cs_uri, dir.path().join("cs-again.json"), Some(2048));
    judge_phone(&mut found, "second step again", (&pa, &ca), &[], &[]);

    // Polls with nothing open, forged, stale.
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    judge_phone(&mut found, "poll, nothing open", (&pp, &cp), &[], &[]);
    let (_, pp) = pi_phone.poll(&["--forge"]);
    let (_, cp) = cs_phone.poll(&["--forge"]);
    judge_phone(&mut found, "poll, forged", (&pp, &cp), &[], &[]);
    let (_, pp) = pi_phone.poll(&["--skew-seconds", "-120"]);
    let (_, cp) = cs_phone.poll(&["--skew-seconds", "-120"]);
    // The message names the timestamp each phone sent.
    judge_phone(&mut found, "poll, stale", (&pp, &cp), &["result.error.message"], &[]);

    // Accept: the PIN's challenge, pending, the phone's poll and tap, accepted, finalised.
    let pin = [("user", "alice"), ("realm", "test"), ("pass", PIN)];
    let (pv, cv, st) = s.both(Shape::Form, "/validate/check", &pin, None);
    judge(&mut found, "PIN-only check", &pv, &cv, st, CHALLENGE_OWN, &[]);
    let txs = (tx(&pv), tx(&cv));
    let (pv, cv, st) = s.both(Shape::Query, "/validate/polltransaction", &[], Some((&txs.0, &txs.1)));
    judge(&mut found, "polltransaction, pending", &pv, &cv, st, &[], &[]);
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    judge_phone(&mut found, "poll, one challenge", (&pp, &cp), POLLED_OWN, &[]);
    let (_, pa) = pi_phone.answer(&nonce(&pp), &[]);
    let (_, ca) = cs_phone.answer(&nonce(&cp), &[]);
    judge_phone(&mut found, "the phone accepts", (&pa, &ca), &["nonce"], &[]);
    let (pv, cv, st) = s.both(Shape::Query, "/validate/polltransaction", &[], Some((&txs.0, &txs.1)));
    judge(&mut found, "polltransaction, accepted", &pv, &cv, st, &[], &[]);
    let finish = [("user", "alice"), ("realm", "test"), ("pass", "")];
    let (pv, cv, st) = s.both(Shape::Form, "/validate/check", &finish, Some((&txs.0, &txs.1)));
    judge(&mut found, "finalised", &pv, &cv, st, &["detail.serial"], &[]);
    assert_eq!(cv["result"]["authentication"], "ACCEPT", "{cv}");
    let (pv, cv, st) = s.both(Shape::Query, "/validate/polltransaction", &[], Some((&txs.0, &txs.1)));
    judge(&mut found, "polltransaction, used", &pv, &cv, st, &[], &[]);

    // Decline: declined, and finalising it is refused.
    let (pv, cv, _) = s.both(Shape::Form, "/validate/check", &pin, None);
    let txs = (tx(&pv), tx(&cv));
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    let (_, pa) = pi_phone.answer(&nonce(&pp), &["--decline"]);
    let (_, ca) = cs_phone.answer(&nonce(&cp), &["--decline"]);
    judge_phone(&mut found, "the phone declines", (&pa, &ca), &["nonce"], &[]);
    let (pv, cv, st) = s.both(Shape::Query, "/validate/polltransaction", &[], Some((&txs.0, &txs.1)));
    judge(&mut found, "polltransaction, declined", &pv, &cv, st, &[], &[]);
    let (pv, cv, st) = s.both(Shape::Form, "/validate/check", &finish, Some((&txs.0, &txs.1)));
    judge(&mut found, "finalising a declined challenge", &pv, &cv, st, &[], REJECT_ALLOWED);
    assert_eq!(cv["result"]["authentication"], "REJECT", "{cv}");

    // Answers that take nothing: forged, an unknown nonce (the challenge stays open, and the
    // phone sees it with the next one).
    let (pv, cv, _) = s.both(Shape::Form, "/validate/check", &pin, None);
    let _ = (tx(&pv), tx(&cv));
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    let (_, pa) = pi_phone.answer(&nonce(&pp), &["--forge"]);
    let (_, ca) = cs_phone.answer(&nonce(&cp), &["--forge"]);
    judge_phone(&mut found, "a forged answer", (&pa, &ca), &["nonce"], &[]);
    let (_, pa) = pi_phone.answer("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &[]);
    let (_, ca) = cs_phone.answer("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &[]);
    judge_phone(&mut found, "an answer to no challenge", (&pa, &ca), &[], &[]);

    // Number matching: the option to press on the login screen, the options on the phone.
    s.p.admin(
        "POST",
        "/policy/push-presence",
        &[("scope", "authentication"), ("action", "push_require_presence=1"), ("active", "true"), ("realm", "test")],
    );
    let (pv, cv, st) = s.both(Shape::Form, "/validate/check", &pin, None);
    let presence_own: Vec<&str> = CHALLENGE_OWN
        .iter()
        .copied()
        .chain([
            "detail.presence_answer",
            "detail.multi_challenge.*.presence_answer",
            "detail.message",
            "detail.messages.*",
            "detail.multi_challenge.*.message",
        ])
        .collect();
    judge(&mut found, "PIN-only check with number matching", &pv, &cv, st, &presence_own, &[]);
    let press = |v: &Value| v["detail"]["presence_answer"].as_str().unwrap().to_owned();
    let (pi_press, cs_press) = (press(&pv), press(&cv));
    for (v, p) in [(&pv, &pi_press), (&cv, &cs_press)] {
        let m = v["detail"]["message"].as_str().unwrap();
        found.same(
            "the message asks to press the option",
            &m.into(),
            &format!("Please confirm the authentication on your mobile device! Please press: {p}").into(),
        );
    }
    let txs = (tx(&pv), tx(&cv));
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    let mut polled_own = POLLED_OWN.to_vec();
    polled_own.push("result.value.*.require_presence");
    judge_phone(&mut found, "poll with number matching", (&pp, &cp), &polled_own, &[]);
    let (_, pa) = pi_phone.answer(&nonce(&pp), &["--presence", &pi_press]);
    let (_, ca) = cs_phone.answer(&nonce(&cp), &["--presence", &cs_press]);
    judge_phone(&mut found, "the phone presses the right option", (&pa, &ca), &["nonce"], &[]);
    let (pv, cv, st) = s.both(Shape::Form, "/validate/check", &finish, Some((&txs.0, &txs.1)));
    judge(&mut found, "finalised after number matching", &pv, &cv, st, &["detail.serial"], &[]);
    assert_eq!(cv["result"]["authentication"], "ACCEPT", "{cv}");

    // Polling per token: under push_allow_polling=token the admin's token info keeps the phone
    // out, and removing it lets the phone in again.
    s.p.admin(
        "POST",
        "/policy/push-polling",
        &[("scope", "authentication"), ("action", "push_allow_polling=token"), ("active", "true"), ("realm", "test")],
    );
    let info = |method: &str, params: &[(&str, &str)]| {
        let path = |serial: &str| format!("/token/info/{serial}/polling_allowed");
        let (ps, pv) =
            send(s.p.pi.port, Shape::Form, method, &path(&serials.0), params, &[("Authorization", &s.p.pi_auth)]);
        let (cs, cv) =
            send(s.p.cs_port, Shape::Form, method, &path(&serials.1), params, &[("Authorization", &s.p.cs_auth)]);
        (pv, cv, (u64::from(ps), u64::from(cs)))
    };
    let (pv, cv, st) = info("POST", &[("value", "False")]);
    judge(&mut found, "token info polling_allowed False", &pv, &cv, st, &[], &[]);
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    judge_phone(&mut found, "poll, not allowed for this token", (&pp, &cp), &[], &[]);
    assert_eq!(pp["response"]["result"]["error"]["code"], 303, "privacyIDEA let the phone poll: {pp}");
    let (pv, cv, st) = info("DELETE", &[]);
    judge(&mut found, "token info polling_allowed removed", &pv, &cv, st, &[], &[]);
    let (_, pp) = pi_phone.poll(&[]);
    let (_, cp) = cs_phone.poll(&[]);
    judge_phone(&mut found, "poll, allowed again", (&pp, &cp), &polled_own, &[]);
    found.assert_none();
}
