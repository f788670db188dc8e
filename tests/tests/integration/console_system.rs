//! The web console's system pages (issue 18), driven by forged requests against a real daemon:
//! - realms: an admin tests a user (found: the resolver and its stable id; an unknown login:
//!   not found; a directory that cannot be reached: an error, never "not found"); an auditor may
//!   test too, a helpdesk may not; every test is audited;
//! - gateways: an admin's test message reaches a local provider endpoint and its outcome is on
//!   the page; the delivery history shows a challenge's delivery with the recipient masked and
//!   without the code; an auditor reads the page but cannot send;
//! - keys: an admin grants, revokes and rotates (each audited with caller `console:NAME`), and
//!   is sent to re-authenticate when the sign-in is older than the fresh-proof window (the
//!   daemon's clock moved); an auditor's or a helpdesk's forged posts are 403 and change nothing;
//! - audit: a date range is searched in the store (a check 40 days old found among newer
//!   ones, and only it; the CSV export and `countersign audit auth --since/--until` alike);
//!   a user's page shows the person's checks through every realm over the same directory and
//!   not those of another person of the same login.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::console::{appliance, appliance_with, console_user, csrf, exchange, form, sign_in};
use countersign_tests::slapd::{closed_port, Slapd, BASE, READER_DN};
use countersign_tests::{Daemon, HttpCapture, HTTP_SMS_PLUGIN, SMS_PLUGIN, TOTP_PLUGIN};
use serde_json::{json, Value};

/// A signed-in console user: their session cookie and CSRF token.
struct Session {
    port: u16,
    cookie: String,
    csrf: String,
}

impl Session {
    fn of(d: &Daemon, port: u16, name: &str, role: &str, realms: &[&str]) -> Session {
        let secret = console_user(d, name, role, realms);
        let cookie = sign_in(port, name, &secret);
        let csrf = csrf(port, &cookie);
        Session { port, cookie, csrf }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = exchange(self.port, "GET", path, &[("Cookie", &self.cookie)], "");
        (status, body)
    }

    /// A form post with the session's CSRF token and `fields`: status, Location, body.
    fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let headers = [("Cookie", self.cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
        let (status, h, body) = exchange(self.port, "POST", path, &headers, &form(&all));
        let location = h.into_iter().find(|(k, _)| k == "location").map(|(_, v)| v).unwrap_or_default();
        (status, location, body)
    }
}

fn audit_rows(d: &Daemon, action: &str) -> Vec<Value> {
    d.cli_json(&["audit", "auth", "--action", action])["rows"].as_array().unwrap().clone()
}

#[test]
fn the_user_test_shows_where_a_user_was_found_and_fails_visibly_when_the_directory_is_down() {
    let (d, port) = appliance();
    // Realm staff over a passwd file: carol's stable id is her uid, 4242.
    let file = d.work.path().join("staff.passwd");
    std::fs::write(&file, "carol:x:4242:4242:Carol Clark:/home/carol:/bin/sh\n").unwrap();
    let o = json!({ "path": file.display().to_string() }).to_string();
    d.cli_json(&["resolver", "add", "files", "--kind", "passwd", "--options", &o]);
    d.cli_json(&["realm", "add", "staff", "--resolvers", "files"]);
    d.cli_json(&["token", "init", "--type", "totp", "--user", "carol", "--realm", "staff"]);
    let admin = Session::of(&d, port, "admin", "admin", &[]);

    // Found: by the resolver and its stable id of the user; her one token counted.
    let (status, page) = admin.get("/console/system/realms?realm=staff&login=carol");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<th>Stable id</th><td><code>4242</code></td>"), "{page}");
    assert!(page.contains("<td>files (passwd)</td>"), "{page}");
    assert!(page.contains("<th>Tokens</th><td>1</td>"), "{page}");
    // The realm's own internal users are found too, with their contact data.
    let (status, page) = admin.get("/console/system/realms?realm=default&login=alice");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("(internal)") && page.contains("alice@example.org"), "{page}");
    assert!(page.contains("<th>Tokens</th><td>0</td>"), "{page}");

    // Unknown: not found, and not an error.
    let (status, page) = admin.get("/console/system/realms?realm=default&login=nobody");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No resolver of realm default knows"), "{page}");
    // bob is in partners, not in the default realm.
    let (_, page) = admin.get("/console/system/realms?realm=default&login=bob");
    assert!(page.contains("No resolver of realm default knows"), "{page}");
    let (status, page) = admin.get("/console/system/realms?realm=nowhere&login=alice");
    assert_eq!(status, 404, "{page}");

    // A directory that cannot be reached is an error, never "not found".
    let ldap = json!({
        "uris": [format!("ldap://127.0.0.1:{}", closed_port())], "bind_dn": READER_DN,
        "base_dn": format!("ou=people,{BASE}"), "filter": "(&(objectClass=inetOrgPerson)(uid={login}))",
        "connect_timeout_ms": 1000, "timeout_ms": 1000,
    });
    d.cli_json_stdin(
        &["resolver", "add", "gone", "--kind", "ldap", "--options", &ldap.to_string(), "--bind-password-stdin"],
        "x\n",
    );
    d.cli_json(&["realm", "add", "corp", "--resolvers", "gone"]);
    let (status, page) = admin.get("/console/system/realms?realm=corp&login=alice");
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("could not be asked") && page.contains("cannot reach ldap://127.0.0.1:"), "{page}");
    assert!(!page.contains("No resolver of realm"), "{page}");

    // An auditor may test (a read); a helpdesk sees no system page.
    let auditor = Session::of(&d, port, "au", "auditor", &[]);
    let (status, page) = auditor.get("/console/system/realms?realm=staff&login=carol");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<code>4242</code>"), "{page}");
    let helpdesk = Session::of(&d, port, "hd", "helpdesk", &["default"]);
    assert_eq!(helpdesk.get("/console/system/realms?realm=default&login=alice").0, 403);

    // Every test is audited, with who asked and about whom.
    let rows = audit_rows(&d, "console/user-test");
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert!(rows.iter().any(|r| r["caller"].as_str().unwrap().contains("console:au") && r["login"] == "carol"));
    assert!(rows.iter().any(|r| r["result"] == "error" && r["realm"] == "corp"), "{rows:?}");
}

#[test]
fn a_test_message_and_the_delivery_history_for_admins_and_only_reading_for_auditors() {
    let (d, port) = appliance_with(&[TOTP_PLUGIN, HTTP_SMS_PLUGIN, SMS_PLUGIN]);
    let provider = HttpCapture::start(vec![(200, "OK"), (200, "OK"), (200, "OK")]);
    d.sms_gateway("sms-a", provider.port);
    d.route("sms", &["sms-a"]);
    // A challenge's code delivered through the gateway: the history's row.
    let t = d.admin_ok("POST", "/v1/admin/tokens", json!({ "type": "sms", "phone": "+41791234567", "pin": "1234" }));
    let serial = t["token"]["serial"].as_str().unwrap().to_owned();
    let (status, v) = d.api("POST", "/v1/validate/triggerchallenge", Some(json!({ "serial": serial })));
    assert_eq!(status, 200, "{v}");
    let sent = provider.next();
    let at = sent.body.find("code%3A%20").expect("a code in the provider request") + "code%3A%20".len();
    let code: String = sent.body[at..].chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{}", sent.body);

    let admin = Session::of(&d, port, "admin", "admin", &[]);
    let (status, page) = admin.get("/console/system/gateways");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("sms-a") && page.contains("Send a test message"), "{page}");
    assert!(page.contains(&serial) && page.contains("***4567") && page.contains("delivered"), "{page}");
    assert!(!page.contains("+41791234567") && !page.contains(&code), "recipient or code on the page: {page}");
    let (_, page) = admin.get("/console/system/gateways?status=failed");
    assert!(page.contains("No delivery.") && !page.contains(&serial), "{page}");
    let (_, page) = admin.get("/console/system/gateways?status=bogus");
    assert!(page.contains("is not a delivery status"), "{page}");

    // The admin's test message reaches the provider; its outcome is on the page and audited.
    let (status, _, page) =
        admin.post("/console/system/gateways/sms-a/test", &[("to", "+15550100"), ("text", "hello from the console")]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The test message was delivered through sms-a"), "{page}");
    let req = provider.next();
    assert!(req.body.contains("hello%20from%20the%20console") && req.body.contains("%2B15550100"), "{}", req.body);
    // The intent is on the record before the message left.
    let started = audit_rows(&d, "gateway/test-start");
    assert_eq!(started.len(), 1, "{started:?}");
    let rows = audit_rows(&d, "gateway/test");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0]["caller"].as_str().unwrap().contains("console:admin"), "{rows:?}");
    assert!(started[0]["id"].as_i64() < rows[0]["id"].as_i64(), "intent before outcome");
    // Without a recipient nothing is sent.
    assert_eq!(admin.post("/console/system/gateways/sms-a/test", &[("text", "x")]).0, 422);
    assert_eq!(admin.post("/console/system/gateways/nope/test", &[("to", "+1555")]).0, 404);

    // An auditor reads the page and the history, without the form, and cannot send.
    let auditor = Session::of(&d, port, "au", "auditor", &[]);
    let (status, page) = auditor.get("/console/system/gateways");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("***4567") && !page.contains("Send a test message"), "{page}");
    assert_eq!(auditor.post("/console/system/gateways/sms-a/test", &[("to", "+15550100")]).0, 403);
    let helpdesk = Session::of(&d, port, "hd", "helpdesk", &["default"]);
    assert_eq!(helpdesk.get("/console/system/gateways").0, 403);
    assert_eq!(helpdesk.post("/console/system/gateways/sms-a/test", &[("to", "+15550100")]).0, 403);
    assert_eq!(audit_rows(&d, "gateway/test").len(), 1, "a refused test sent something");

    // Once admin policies exist, the admin's test needs smsgateway_write.
    let out = d.cli(&[
        "policy",
        "set",
        "gw-read",
        "--scope",
        "admin",
        "--action",
        "smsgateway_read=true",
        "--admin-user",
        "admin",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, page) = admin.get("/console/system/gateways");
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("Send a test message"), "{page}");
    assert_eq!(admin.post("/console/system/gateways/sms-a/test", &[("to", "+15550100")]).0, 403);
    assert_eq!(audit_rows(&d, "gateway/test").len(), 1);
}

fn grants(d: &Daemon) -> Value {
    d.cli_json(&["integration", "list"])["integrations"][0]["grants"].clone()
}

fn versions(d: &Daemon, app: &str) -> usize {
    d.cli_json(&["app", "show", app])["versions"].as_array().unwrap().len()
}

#[test]
fn only_an_admin_with_fresh_proof_rotates_grants_and_revokes() {
    let (d, port) = appliance();
    d.provision("app", "ec-p256", "svc", countersign_tests::own_uid());
    d.cli_json(&["app", "create", "other", "--algorithm", "ec-p256"]);
    let auditor = Session::of(&d, port, "au", "auditor", &[]);
    let helpdesk = Session::of(&d, port, "hd", "helpdesk", &["default"]);
    let admin = Session::of(&d, port, "admin", "admin", &[]);

    // The auditor reads the page without forms; neither the auditor nor a helpdesk changes.
    let (status, page) = auditor.get("/console/system/keys");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("svc") && !page.contains("Rotate key"), "{page}");
    assert_eq!(helpdesk.get("/console/system/keys").0, 403);
    for s in [&auditor, &helpdesk] {
        assert_eq!(s.post("/console/system/keys/applications/app/rotate", &[]).0, 403);
        assert_eq!(s.post("/console/system/keys/integrations/svc/grant", &[("application", "other")]).0, 403);
        assert_eq!(s.post("/console/system/keys/integrations/svc/revoke", &[("application", "app")]).0, 403);
    }
    assert_eq!(grants(&d), json!(["app"]));
    assert_eq!(versions(&d, "app"), 1);

    // The admin, just signed in (a fresh proof of both factors), changes.
    let (status, page) = admin.get("/console/system/keys");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Rotate key") && page.contains("Grant") && page.contains("Revoke"), "{page}");
    let (status, to, body) = admin.post("/console/system/keys/integrations/svc/grant", &[("application", "other")]);
    assert_eq!((status, to.as_str()), (303, "/console/system/keys?done=grant"), "{body}");
    assert_eq!(grants(&d), json!(["app", "other"]));
    let (status, to, body) = admin.post("/console/system/keys/integrations/svc/revoke", &[("application", "app")]);
    assert_eq!((status, to.as_str()), (303, "/console/system/keys?done=revoke"), "{body}");
    assert_eq!(grants(&d), json!(["other"]));
    let (status, to, body) = admin.post("/console/system/keys/applications/app/rotate", &[]);
    assert_eq!((status, to.as_str()), (303, "/console/system/keys?done=rotate"), "{body}");
    assert_eq!(versions(&d, "app"), 2);
    // A grant that does not exist is named, not ignored.
    let (status, _, body) = admin.post("/console/system/keys/integrations/svc/revoke", &[("application", "app")]);
    assert_eq!(status, 404, "{body}");
    let (_, page) = admin.get("/console/system/keys?done=rotate");
    assert!(page.contains("The key was rotated"), "{page}");

    // Each change is audited with the console user as its caller.
    for action in ["integration/grant", "integration/revoke", "app/rotate"] {
        let rows = audit_rows(&d, action);
        assert!(rows.iter().any(|r| r["caller"].as_str().unwrap().contains("console:admin")), "{action}: {rows:?}");
    }

    // Six minutes after the sign-in (the session lives 15 idle minutes) the proof is stale:
    // the change waits for a re-authentication.
    d.set_clock_offset_ms(6 * 60 * 1000);
    let (status, to, body) = admin.post("/console/system/keys/applications/app/rotate", &[]);
    assert_eq!(status, 303, "{body}");
    assert_eq!(to, "/console/reauth?next=%2Fconsole%2Fsystem%2Fkeys");
    let (status, to, _) = admin.post("/console/system/keys/integrations/svc/grant", &[("application", "app")]);
    assert!(status == 303 && to.starts_with("/console/reauth?"), "{status} {to}");
    assert_eq!(versions(&d, "app"), 2);
    assert_eq!(grants(&d), json!(["other"]));
}

/// `ms` (Unix milliseconds) as its UTC day, `YYYY-MM-DD` (days to the civil calendar, as in
/// H. Hinnant's `civil_from_days`).
fn utc_day(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[test]
fn the_audit_page_searches_a_date_range_in_the_store() {
    assert_eq!(utc_day(1_796_550_120_000), "2026-12-06");
    let (d, port) = appliance();
    // A check 40 days ago, then three now: the old row has a larger id than rows written
    // before it, and is older than every row written after.
    d.set_clock_offset_ms(-40 * 86_400_000);
    d.check(json!({ "user": "alice", "pass": "000000" }));
    d.set_clock_offset_ms(0);
    for user in ["alice", "alice", "bob"] {
        d.check(json!({ "user": user, "realm": if user == "bob" { "partners" } else { "default" }, "pass": "000000" }));
    }
    let rows = audit_rows(&d, "validate/check");
    assert_eq!(rows.len(), 4, "{rows:?}");
    let old = rows.iter().min_by_key(|r| r["at_ms"].as_i64().unwrap()).unwrap().clone();
    let day = utc_day(old["at_ms"].as_i64().unwrap());
    assert_ne!(day, utc_day(countersign::now_ms()));

    // (Signing in checks the auditor's second factor: an accept, not searched for below.)
    let auditor = Session::of(&d, port, "au", "auditor", &[]);
    let (status, page) =
        auditor.get(&format!("/console/audit?action=validate%2Fcheck&result=reject&from={day}&to={day}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("1 rows match"), "{page}");
    assert_eq!(page.matches("<td>validate/check</td>").count(), 1, "{page}");
    assert!(page.contains(&format!("<td>{day} ")), "{page}");
    // Without the range: all four, newest first, on one page.
    let (_, page) = auditor.get("/console/audit?action=validate%2Fcheck&result=reject");
    assert!(page.contains("4 rows match"), "{page}");
    assert_eq!(page.matches("<td>validate/check</td>").count(), 4, "{page}");
    assert!(!page.contains("Older"), "{page}");
    // A range of only today excludes the old row.
    let today = utc_day(countersign::now_ms());
    let (_, page) = auditor.get(&format!("/console/audit?action=validate%2Fcheck&result=reject&from={today}"));
    assert_eq!(page.matches("<td>validate/check</td>").count(), 3, "{page}");
    // A date that does not read is refused, not searched without it.
    let (status, page) = auditor.get("/console/audit?from=last+month");
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("From is not a date"), "{page}");

    // The CSV export of the range: its header and the one row.
    let (status, _, csv) = exchange(
        port,
        "GET",
        &format!("/console/audit/export.csv?action=validate%2Fcheck&result=reject&from={day}&to={day}"),
        &[("Cookie", &auditor.cookie)],
        "",
    );
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with(&format!("\"{}\",\"{day} ", old["id"])), "{csv}");

    // The CLI's range: --since inclusive, --until exclusive.
    let next = utc_day(old["at_ms"].as_i64().unwrap() + 86_400_000);
    let v = d.cli_json(&[
        "audit",
        "auth",
        "--action",
        "validate/check",
        "--result",
        "reject",
        "--since",
        &day,
        "--until",
        &next,
    ]);
    let found: Vec<&Value> = v["rows"].as_array().unwrap().iter().collect();
    assert_eq!(found.len(), 1, "{v}");
    assert_eq!(found[0]["id"], old["id"]);
    let v = d.cli_json(&["audit", "auth", "--action", "validate/check", "--result", "reject", "--since", &next]);
    assert_eq!(v["rows"].as_array().unwrap().len(), 3, "{v}");
}

#[test]
fn a_users_page_shows_the_audit_of_the_person_not_of_the_login() {
    let (d, port) = appliance();
    // Realms staff and staff2 over one passwd file: carol (uid 4242) is one person in both.
    // Realm other over another file has another carol (uid 5555).
    for (name, line) in [
        ("files", "carol:x:4242:4242:Carol Clark:/home/carol:/bin/sh\n"),
        ("others", "carol:x:5555:5555:Carol Other:/home/c:/bin/sh\n"),
    ] {
        let file = d.work.path().join(format!("{name}.passwd"));
        std::fs::write(&file, line).unwrap();
        let o = json!({ "path": file.display().to_string() }).to_string();
        d.cli_json(&["resolver", "add", name, "--kind", "passwd", "--options", &o]);
    }
    d.cli_json(&["realm", "add", "staff", "--resolvers", "files"]);
    d.cli_json(&["realm", "add", "staff2", "--resolvers", "files"]);
    d.cli_json(&["realm", "add", "other", "--resolvers", "others"]);
    for realm in ["staff", "staff2", "other"] {
        d.check(json!({ "user": "carol", "realm": realm, "pass": "000000" }));
    }
    let admin = Session::of(&d, port, "admin", "admin", &[]);
    // Her page in staff shows her checks through staff and staff2, not the other carol's.
    let (status, page) = admin.get("/console/users/staff/carol");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<td>validate/check</td>").count(), 2, "{page}");
    let (status, page) = admin.get("/console/users/other/carol");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<td>validate/check</td>").count(), 1, "{page}");
    // A row without an owner (an admin change) shows by login and realm.
    d.cli_json(&["token", "init", "--type", "totp", "--user", "carol", "--realm", "staff"]);
    let (_, page) = admin.get("/console/users/staff/carol");
    assert_eq!(page.matches("<td>token/init</td>").count(), 1, "{page}");
    let (_, page) = admin.get("/console/users/other/carol");
    assert_eq!(page.matches("<td>token/init</td>").count(), 0, "{page}");
}

#[test]
fn a_user_search_that_matches_more_than_it_lists_says_so() {
    let (d, port) = appliance();
    // A directory of 520 users: a search for "user" matches them all; the page lists the first
    // 500 of the realm and says that there are more, instead of passing the cut off silently.
    let file = d.work.path().join("many.passwd");
    let lines: String = (0..520).map(|i| format!("user{i:03}:x:{}:100:User {i}:/home/u:/bin/sh\n", 5000 + i)).collect();
    std::fs::write(&file, lines).unwrap();
    let o = json!({ "path": file.display().to_string() }).to_string();
    d.cli_json(&["resolver", "add", "many", "--kind", "passwd", "--options", &o]);
    d.cli_json(&["realm", "add", "crowd", "--resolvers", "many"]);
    let secret = console_user(&d, "ad", "admin", &[]);
    let cookie = sign_in(port, "ad", &secret);
    let (status, _, page) = exchange(port, "GET", "/console/users?q=user&realm=crowd", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("More than 500 users match in crowd"), "{page}");
    let (_, _, page) = exchange(port, "GET", "/console/users?q=user51&realm=crowd", &[("Cookie", &cookie)], "");
    assert!(!page.contains("More than 500"), "a narrower search is whole: {page}");
    assert!(page.contains("user519"), "{page}");
}

#[test]
fn a_powerauth_master_key_is_offered_neither_for_rotation_nor_for_a_grant() {
    let (d, port) = appliance();
    d.provision("app", "ec-p256", "svc", countersign_tests::own_uid());
    d.cli_json(&["powerauth", "app", "create", "mobile"]);
    let admin = Session::of(&d, port, "admin", "admin", &[]);
    let (status, page) = admin.get("/console/system/keys");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("PowerAuth master key: not rotated or granted here"), "{page}");
    assert!(!page.contains("/applications/mobile/rotate"), "no rotate form for it: {page}");
    assert!(page.contains("/applications/app/rotate"), "a signing key still has one: {page}");
    assert!(!page.contains("<option value=\"mobile\">"), "not grantable: {page}");
}

/// A help desk's rights on a user are judged on the user the directory finds, not on the
/// spelling in the page's path: with a policy that lets `hd` list and enrol for everyone in
/// `staff` but alice, `ALICE` (whom the directory matches to alice) is refused as `alice` is.
#[test]
fn a_console_users_rights_on_a_user_are_judged_on_the_user_the_directory_finds() {
    let slapd = Slapd::start();
    let (d, port) = appliance();
    slapd.add_resolver(&d, "corp");
    d.cli_json(&["realm", "add", "staff", "--resolvers", "corp"]);
    let hd = Session::of(&d, port, "hd", "helpdesk", &["staff"]);
    let out = d.cli(&[
        "policy",
        "set",
        "not-alice",
        "--scope",
        "admin",
        "--admin-user",
        "hd",
        "--realm",
        "staff",
        "--user",
        "!alice",
        "--action",
        "tokenlist=true",
        "--action",
        "enrollTOTP=true",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for spelling in ["alice", "ALICE", "Alice"] {
        let (status, body) = hd.get(&format!("/console/users/staff/{spelling}"));
        assert_eq!(status, 403, "{spelling}'s page: {body:.300}");
        let (status, _, body) = hd.post(&format!("/console/users/staff/{spelling}/enrol"), &[("type", "totp")]);
        assert_eq!(status, 403, "{spelling}: {body:.300}");
    }
    let tokens = d.cli_json(&["token", "list", "--user", "alice", "--realm", "staff"]);
    assert_eq!(tokens["tokens"], json!([]), "{tokens}");
    // bob is hd's to serve.
    assert_eq!(hd.get("/console/users/staff/bob").0, 200);
    let (status, _, body) = hd.post("/console/users/staff/bob/enrol", &[("type", "totp")]);
    assert_eq!(status, 200, "{body:.300}");
}

/// Wrong passwords sent at once meet the sign-in back-off one by one: each failure is counted
/// before the next guess is checked, so of 40 parallel guesses from one address only the free
/// ones (five in the window, perhaps one more once a second of back-off has passed) are
/// checked; the rest are refused unchecked (429).
#[test]
fn parallel_wrong_passwords_meet_the_sign_in_back_off_one_by_one() {
    let (d, port) = appliance();
    console_user(&d, "ad", "admin", &[]);
    let body = form(&[("name", "ad"), ("password", "not the password"), ("code", "000000"), ("next", "/console/")]);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let guesses: Vec<_> = (0..40)
            .map(|_| {
                scope.spawn(|| {
                    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
                    exchange(port, "POST", "/console/sign-in", &headers, &body).0
                })
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert!(checked <= 7, "{checked} guesses checked past the back-off: {statuses:?}");
    let rejects = audit_rows(&d, "console/sign-in").into_iter().filter(|r| r["result"] == "reject").count();
    assert_eq!(rejects, checked, "each checked guess is audited as a reject");
}

/// The admin policies bound an admin-role console user's reads as they bound an API admin's:
/// with only `tokenlist` in the default realm, the user search lists no realm's users (no
/// `userlist`) and the audit page and its export are refused (no `auditlog`); granted, they
/// work again.
#[test]
fn the_user_search_and_the_audit_follow_the_admin_policies() {
    let (d, port) = appliance();
    let ops = Session::of(&d, port, "ops", "admin", &[]);
    let policy = |actions: &[&str]| {
        let mut args = vec!["policy", "set", "ops-reads", "--scope", "admin", "--admin-user", "ops"];
        for a in actions {
            args.extend(["--action", a]);
        }
        let out = d.cli(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    policy(&["tokenlist=true"]);
    let (status, body) = ops.get("/console/users?q=b&realm=partners");
    assert_eq!(status, 200, "{body:.300}");
    assert!(!body.contains("/console/users/partners/bob"), "bob listed without userlist: {body:.600}");
    assert_eq!(ops.get("/console/audit").0, 403);
    assert_eq!(ops.get("/console/audit/export.csv").0, 403);
    policy(&["tokenlist=true", "userlist=true", "auditlog=true"]);
    let (_, body) = ops.get("/console/users?q=b&realm=partners");
    assert!(body.contains("/console/users/partners/bob"), "{body:.600}");
    assert_eq!(ops.get("/console/audit").0, 200);
}

/// The console realm's users are the console users themselves: from a user page, enrolling,
/// registering an authenticator for, or switching a token of one of them needs fresh proof,
/// as the account page asks it, so a session left open on a desk cannot add a factor to its
/// own or another console user's sign-in. Other realms' users are served as before.
#[test]
fn a_console_users_sign_in_factors_change_on_a_user_page_only_with_fresh_proof() {
    let (d, port) = appliance();
    let root = Session::of(&d, port, "root", "admin", &[]);
    console_user(&d, "other", "admin", &[]);
    let tokens = d.cli_json(&["token", "list", "--user", "other", "--realm", "console"]);
    let serial = tokens["tokens"][0]["serial"].as_str().unwrap().to_owned();
    // Fresh: the proof covers the change.
    let (status, _, body) = root.post("/console/users/console/other/enrol", &[("type", "totp")]);
    assert_eq!(status, 200, "{body:.300}");
    // Six minutes on, the proof is stale.
    d.set_clock_offset_ms(6 * 60 * 1000);
    let (status, to, _) = root.post("/console/users/console/other/enrol", &[("type", "totp")]);
    assert!(status == 303 && to.starts_with("/console/reauth?"), "{status} {to}");
    let (status, _, body) = root.post("/console/users/console/root/webauthn/options", &[("type", "passkey")]);
    assert_eq!(status, 403, "{body:.300}");
    let (status, to, _) = root.post(&format!("/console/tokens/{serial}/disable"), &[]);
    assert!(status == 303 && to.starts_with("/console/reauth?"), "{status} {to}");
    assert_eq!(d.cli_json(&["token", "show", &serial])["active"], true);
    let (status, to, _) = root.post("/console/users/console/other/card", &[("kind", "piv")]);
    assert!(status == 303 && to.starts_with("/console/reauth?"), "{status} {to}");
    // alice is no console user: her tokens change without fresh proof.
    let (status, _, body) = root.post("/console/users/default/alice/enrol", &[("type", "totp")]);
    assert_eq!(status, 200, "{body:.300}");
}

/// A re-authentication answers with one session cookie, the one with the fresh proof: the
/// gate's renewal of the incoming session (due once a minute) must not follow it and undo it.
#[test]
fn a_re_authentication_sets_one_cookie_with_the_fresh_proof() {
    let (d, port) = appliance();
    let secret = console_user(&d, "ad", "admin", &[]);
    let cookie = sign_in(port, "ad", &secret);
    let token = csrf(port, &cookie);
    // Six minutes on (the daemon's clock, the TOTP's too): the proof is stale, the cookie due
    // for renewal.
    d.set_clock_offset_ms(6 * 60 * 1000);
    let code = countersign_tests::console::totp_now(&secret, 12);
    let body = form(&[
        ("_csrf", &token),
        ("password", countersign_tests::console::PASSWORD),
        ("code", &code),
        ("next", "/console/"),
    ]);
    let headers = [("Cookie", cookie.as_str()), ("Content-Type", "application/x-www-form-urlencoded")];
    let (status, h, text) = exchange(port, "POST", "/console/reauth", &headers, &body);
    assert_eq!(status, 303, "{text:.300}");
    let cookies: Vec<&String> =
        h.iter().filter(|(k, v)| k == "set-cookie" && v.starts_with("cs_console=")).map(|(_, v)| v).collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    // And it carries the proof: a change that needs it goes through.
    let fresh = cookies[0].split(';').next().unwrap().to_owned();
    let (status, _, page) = exchange(port, "GET", "/console/account", &[("Cookie", fresh.as_str())], "");
    assert_eq!(status, 200);
    assert!(!page.contains("First prove it is you again"), "the proof was lost: {page:.600}");
}
