//! Realms and resolvers against a real OpenLDAP `slapd` on 127.0.0.1 (no mocks): LDAP
//! resolvers defined through the CLI with the bind password on standard input, look-ups with
//! mapped attributes, passwords checked by binding as the user, filter injection escaped,
//! time limits for a closed port and a server that never answers, the user cache (served
//! while slapd is down, expired after its TTL), the bind password absent from the SQLite
//! files; a passwd-file resolver and internal users' passwords.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::time::{Duration, Instant};

use countersign::resolvers::ldap::{LdapOptions, LdapResolver};
use countersign::resolvers::{Resolver, ResolverError};
use countersign_tests::slapd::{closed_port, SilentServer, Slapd, BASE, PEOPLE, READER_DN, READER_PASSWORD};
use countersign_tests::Daemon;
use secrecy::SecretString;
use serde_json::{json, Value};

fn options(uri: &str, extra: Value) -> LdapOptions {
    let mut v = json!({
        "uris": [uri],
        "bind_dn": READER_DN,
        "base_dn": format!("ou=people,{BASE}"),
        "filter": "(&(objectClass=inetOrgPerson)(uid={login}))",
        "connect_timeout_ms": 1000,
        "timeout_ms": 1000,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn resolver(uri: &str, extra: Value) -> LdapResolver {
    LdapResolver::new("corp", options(uri, extra), Some(SecretString::from(READER_PASSWORD))).unwrap()
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn ldap_user_attributes_and_password_bind() {
    let slapd = Slapd::start();
    let r = resolver(&slapd.uri(), json!({}));
    let alice = r.user("alice").unwrap().expect("alice is found");
    assert_eq!(alice.login, "alice");
    assert_eq!(alice.given_name.as_deref(), Some("Alice"));
    assert_eq!(alice.surname.as_deref(), Some("Liddell"));
    assert_eq!(alice.email.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.phone.as_deref(), Some("+44 20 7946 0001"));
    assert_eq!(alice.resolver, "corp");
    assert_eq!(alice.uid.len(), 36, "entryUUID: {}", alice.uid);
    assert!(r.user("nobody").unwrap().is_none());

    assert!(r.check_password("alice", &pw(PEOPLE[0].password)).unwrap());
    assert!(!r.check_password("alice", &pw("wrong")).unwrap());
    assert!(!r.check_password("alice", &pw(PEOPLE[1].password)).unwrap(), "bob's password is not alice's");
    assert!(!r.check_password("alice", &pw("")).unwrap(), "an empty password is an anonymous bind: refused");
    assert!(!r.check_password("nobody", &pw("x")).unwrap());
    // The kept connection still searches as the reader after user binds.
    assert!(r.user("bob").unwrap().is_some());

    let all = r.list(None, 10).unwrap();
    assert_eq!(all.len(), PEOPLE.len());
    let some = r.list(Some("ar"), 10).unwrap();
    assert_eq!(some.iter().map(|u| u.login.as_str()).collect::<Vec<_>>(), ["carol"]);

    // The uid can be the DN.
    let by_dn =
        resolver(&slapd.uri(), json!({ "attributes": { "uid": "dn", "phone": "telephoneNumber" }, "cache_ttl_s": 0 }));
    assert_eq!(by_dn.user("bob").unwrap().unwrap().uid, format!("uid=bob,ou=people,{BASE}"));
}

#[test]
fn ldap_filter_injection_is_escaped() {
    let slapd = Slapd::start();
    let r = resolver(&slapd.uri(), json!({ "cache_ttl_s": 0 }));
    for login in ["*)(uid=*", "*", "alice)(|(uid=*", "al*", "alice\\", "*)(objectClass=*"] {
        assert!(r.user(login).unwrap().is_none(), "{login} found something");
        assert!(!r.check_password(login, &pw(PEOPLE[0].password)).unwrap(), "{login} bound");
    }
    // A filter that would match several entries with the raw login is an error, not a pick.
    assert!(r.list(Some("*"), 10).unwrap().is_empty(), "a literal * in a listing matches nothing");
}

#[test]
fn ldap_cache_serves_while_down_and_expires() {
    let mut slapd = Slapd::start();
    let ttl = Duration::from_secs(3);
    let r = resolver(&slapd.uri(), json!({ "cache_ttl_s": 3 }));
    let t = Instant::now();
    let first = r.user("carol").unwrap().unwrap();
    let cached_at = Instant::now();
    let ldap_ms = ms(t.elapsed());
    let before = slapd.operations();
    let t = Instant::now();
    assert_eq!(r.user("carol").unwrap().unwrap(), first);
    let hit_ms = ms(t.elapsed());
    assert_eq!(slapd.operations(), before, "the second look-up did not reach slapd");

    slapd.stop();
    assert_eq!(r.user("carol").unwrap().unwrap(), first, "served from the cache while slapd is down");
    // Poll with a deadline until the entry expires and the look-up goes to the (dead) server.
    let deadline = cached_at + ttl + Duration::from_secs(5);
    let expired_after = loop {
        match r.user("carol") {
            Ok(Some(_)) => {}
            Err(ResolverError::Unreachable { .. }) => break cached_at.elapsed(),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < deadline, "the cache entry never expired");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(expired_after >= ttl, "expired after {expired_after:?}, before the TTL");
    slapd.restart();
    // The kept connection died with slapd: the next look-up reconnects.
    assert_eq!(r.user("carol").unwrap().unwrap(), first);
    eprintln!("TIMING LDAP look-up {ldap_ms:.2} ms, cache hit {hit_ms:.3} ms, expired after {expired_after:?}");
}

#[test]
fn ldap_unreachable_and_silent_servers_fail_within_the_timeout() {
    // Nothing listens: refused at once.
    let r = resolver(&format!("ldap://127.0.0.1:{}", closed_port()), json!({}));
    let t = Instant::now();
    let e = r.user("alice").unwrap_err();
    let refused = t.elapsed();
    assert!(matches!(e, ResolverError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot reach ldap://127.0.0.1:"), "{e}");
    assert!(refused < Duration::from_millis(1000 + 500), "{refused:?}");

    // Accepts and never answers: the bind times out.
    let silent = SilentServer::start();
    let uri = format!("ldap://127.0.0.1:{}", silent.port);
    let r = resolver(&uri, json!({ "connect_timeout_ms": 800, "timeout_ms": 800 }));
    let t = Instant::now();
    let e = r.user("alice").unwrap_err();
    let bind = t.elapsed();
    assert!(matches!(e, ResolverError::Timeout { operation: "bind", .. }), "{e:?}");
    assert!(e.to_string().contains("did not answer the bind within 800 ms"), "{e}");
    assert!(bind >= Duration::from_millis(800) && bind < Duration::from_millis(800 + 500), "{bind:?}");

    // Anonymous: the search times out; a password check as well.
    let anon = LdapResolver::new(
        "anon",
        serde_json::from_value(json!({ "uris": [uri], "base_dn": BASE, "timeout_ms": 600 })).unwrap(),
        None,
    )
    .unwrap();
    let t = Instant::now();
    let e = anon.user("alice").unwrap_err();
    let search = t.elapsed();
    assert!(matches!(e, ResolverError::Timeout { operation: "search", .. }), "{e:?}");
    assert!(search < Duration::from_millis(600 + 500), "{search:?}");
    let t = Instant::now();
    assert!(anon.check_password("alice", &pw("x")).is_err());
    let check = t.elapsed();
    assert!(check < Duration::from_millis(600 + 500), "{check:?}");
    eprintln!(
        "TIMING refused {:.1} ms, silent bind {:.1} ms (limit 800), silent search {:.1} ms (limit 600), silent check {:.1} ms",
        ms(refused),
        ms(bind),
        ms(search),
        ms(check)
    );
}

fn define_ldap(d: &Daemon, name: &str, uri: &str, extra: Value, password: &str) -> Value {
    let o = options(uri, extra);
    d.cli_json_stdin(
        &[
            "resolver",
            "add",
            name,
            "--kind",
            "ldap",
            "--options",
            &serde_json::to_string(&o).unwrap(),
            "--bind-password-stdin",
        ],
        &format!("{password}\n"),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn ldap_realm_through_the_daemon() {
    let slapd = Slapd::start();
    let d = Daemon::start("");
    let v = define_ldap(&d, "corp", &slapd.uri(), json!({}), READER_PASSWORD);
    assert_eq!(v["bind_password_set"], true);
    assert!(!v.to_string().contains(READER_PASSWORD));
    let shown = d.cli_json(&["resolver", "show", "corp"]);
    assert_eq!(shown["options"]["timeout_ms"], 1000);
    assert_eq!(shown["options"]["cache_ttl_s"], 120, "defaults are filled in");
    assert!(!shown.to_string().contains(READER_PASSWORD));

    d.cli_json(&["realm", "add", "corp", "--resolvers", "corp"]);
    let realms = d.cli_json(&["realm", "list"]);
    let corp = realms["realms"].as_array().unwrap().iter().find(|r| r["name"] == "corp").unwrap().clone();
    assert_eq!(corp["resolvers"], json!(["corp"]));
    assert_eq!(d.cli_json(&["resolver", "show", "corp"])["realms"], json!(["corp"]));

    let t = d.cli_json(&["resolver", "test", "corp", "alice"]);
    assert_eq!(t["ok"], true, "{t}");
    assert_eq!(t["found"], true);
    assert_eq!(t["user"]["email"], "alice@example.org");
    assert_eq!(t["user"]["given_name"], "Alice");
    assert_eq!(t["user"]["surname"], "Liddell");
    assert_eq!(t["user"]["phone"], "+44 20 7946 0001");
    let t = d.cli_json_stdin(&["resolver", "test", "corp", "bob", "--password-stdin"], "bob-pw-2\n");
    assert_eq!(t["password_accepted"], true, "{t}");
    let t = d.cli_json_stdin(&["resolver", "test", "corp", "bob", "--password-stdin"], "nope\n");
    assert_eq!(t["password_accepted"], false, "{t}");

    let ok = d.cli_json_stdin(&["realm", "check-password", "corp", "alice"], "alice-pw-1\n");
    assert_eq!(ok["accepted"], true);
    let bad = d.cli_json_stdin(&["realm", "check-password", "corp", "alice"], "alice-pw-2\n");
    assert_eq!(bad["accepted"], false);
    let u = d.cli_json(&["realm", "user", "corp", "carol"]);
    assert_eq!(u["user"]["resolver"], "corp");
    // Injection through the daemon finds nothing.
    let out = d.cli(&["realm", "user", "corp", "*)(uid=*"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));

    // A resolver in use is not removed; the realm can be made the default.
    assert!(!d.cli(&["resolver", "remove", "corp"]).status.success());
    d.cli_json(&["realm", "set-default", "corp"]);
    let realms = d.cli_json(&["realm", "list"]);
    assert!(realms["realms"].as_array().unwrap().iter().any(|r| r["name"] == "corp" && r["default"] == true));

    // Changing the options keeps the sealed password; the new options apply at once.
    let o = serde_json::to_string(&options(&slapd.uri(), json!({ "attributes": { "email": "cn" } }))).unwrap();
    let v = d.cli_json(&["resolver", "set", "corp", "--options", &o]);
    assert_eq!(v["bind_password_set"], true);
    let t = d.cli_json(&["resolver", "test", "corp", "alice"]);
    assert_eq!(t["user"]["email"], "Alice Liddell");

    let actions: Vec<String> =
        d.auth_audit().iter().map(|r| r["action"].as_str().unwrap_or_default().to_owned()).collect();
    for a in ["resolver/define", "realm/create", "realm/resolvers", "resolver/test", "realm/default", "resolver/update"]
    {
        assert!(actions.iter().any(|x| x == a), "no {a} audit row in {actions:?}");
    }

    // The bind password is in none of the SQLite files, nor in the audit.
    d.cli(&["health"]);
    if countersign_tests::skip_on_postgres("the scan of the SQLite files for the passwords") {
        return;
    }
    let mut files = 0;
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", d.db().display());
        if let Ok(bytes) = std::fs::read(&p) {
            files += 1;
            assert!(!contains(&bytes, READER_PASSWORD.as_bytes()), "bind password in {p}");
            assert!(!contains(&bytes, b"alice-pw-1"), "user password in {p}");
        }
    }
    assert!(files >= 2, "the database and its WAL were read");
    assert!(!d.auth_audit().iter().any(|r| r.to_string().contains(READER_PASSWORD)));
}

#[test]
fn ldap_down_or_silent_through_the_daemon() {
    let d = Daemon::start("");
    let closed = format!("ldap://127.0.0.1:{}", closed_port());
    define_ldap(&d, "gone", &closed, json!({}), "x");
    let silent = SilentServer::start();
    define_ldap(
        &d,
        "hung",
        &format!("ldap://127.0.0.1:{}", silent.port),
        json!({ "connect_timeout_ms": 1000, "timeout_ms": 1000 }),
        "x",
    );
    d.cli_json(&["realm", "add", "hung", "--resolvers", "hung"]);

    let t = Instant::now();
    let out = d.cli(&["resolver", "test", "gone", "alice"]);
    let gone = t.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("resolver gone: cannot reach ldap://127.0.0.1:"), "{err}");

    let t = Instant::now();
    let out = d.cli(&["resolver", "test", "hung", "alice"]);
    let hung = t.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("did not answer the bind within 1000 ms"), "{err}");
    // CLI start and the round trip add a little to the limit.
    assert!(hung < Duration::from_millis(1000 + 1000), "{hung:?}");

    let t = Instant::now();
    let out = d.cli_stdin(&["realm", "check-password", "hung", "alice"], "alice-pw-1\n");
    let check = t.elapsed();
    assert!(!out.status.success(), "no accept when the directory hangs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("did not answer") && err.contains("HTTP 503"), "{err}");
    assert!(check < Duration::from_millis(1000 + 1000), "{check:?}");
    eprintln!(
        "TIMING daemon: closed port {:.1} ms, silent server {:.1} ms / check {:.1} ms (limit 1000)",
        ms(gone),
        ms(hung),
        ms(check)
    );
}

#[test]
fn passwd_file_resolver() {
    let d = Daemon::start("");
    let file = d.work.path().join("people.passwd");
    std::fs::write(
        &file,
        "# people\nalice:x:1001:1001:Alice Liddell,R1,+44 1,,alice@example.org:/home/alice:/bin/sh\n\
         svc:x:999:999::/nonexistent:/usr/sbin/nologin\n",
    )
    .unwrap();
    let o = json!({ "path": file.display().to_string() }).to_string();
    d.cli_json(&["resolver", "add", "files", "--kind", "passwd", "--options", &o]);
    // A passwd resolver takes no bind password.
    let out = d
        .cli_stdin(&["resolver", "add", "files2", "--kind", "passwd", "--options", &o, "--bind-password-stdin"], "x\n");
    assert!(!out.status.success());
    d.cli_json(&["realm", "add", "local", "--resolvers", "files"]);
    let u = d.cli_json(&["realm", "user", "local", "alice"]);
    assert_eq!(
        u["user"],
        // GECOS as privacyIDEA reads it: the third field is the mobile number, the fourth
        // (empty here) the phone.
        json!({
            "login": "alice", "uid": "1001", "email": "alice@example.org", "phone": null, "mobile": "+44 1",
            "given_name": "Alice", "surname": "Liddell", "resolver": "files",
            "description": "Alice Liddell,R1,+44 1,,alice@example.org"
        })
    );
    let t = d.cli_json_stdin(&["resolver", "test", "files", "alice", "--password-stdin"], "anything\n");
    assert_eq!(t["holds_passwords"], false);
    assert_eq!(t["password_accepted"], false);
    assert!(!d.cli(&["realm", "user", "local", "bob"]).status.success());

    // The file is re-read when it changes.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text += "bob:x:1002:1002:Bob Builder,,,,bob@example.org:/home/bob:/bin/sh\n";
    std::fs::write(&file, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.cli(&["realm", "user", "local", "bob"]).status.success() {
        assert!(Instant::now() < deadline, "bob never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn internal_users_passwords_and_realm_order() {
    let slapd = Slapd::start();
    let d = Daemon::start("");
    d.cli_json(&["user", "add", "dave", "--email", "dave@example.net"]);
    let out = d.cli_stdin(&["user", "set-password", "dave"], "dave-Secret-1\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The default realm lists no resolver: its internal users.
    let ok = d.cli_json_stdin(&["realm", "check-password", "default", "dave"], "dave-Secret-1\n");
    assert_eq!(ok["accepted"], true);
    let bad = d.cli_json_stdin(&["realm", "check-password", "default", "dave"], "dave-Secret-2\n");
    assert_eq!(bad["accepted"], false);

    // A realm asks internal users first, then LDAP: first hit wins.
    d.cli_json(&["resolver", "add", "staff", "--kind", "internal", "--options", "{\"realm\":\"default\"}"]);
    define_ldap(&d, "corp", &slapd.uri(), json!({}), READER_PASSWORD);
    d.cli_json(&["realm", "add", "mixed", "--resolvers", "staff,corp"]);
    assert_eq!(d.cli_json(&["realm", "user", "mixed", "dave"])["user"]["resolver"], "staff");
    assert_eq!(d.cli_json(&["realm", "user", "mixed", "alice"])["user"]["resolver"], "corp");
    let ok = d.cli_json_stdin(&["realm", "check-password", "mixed", "alice"], "alice-pw-1\n");
    assert_eq!(ok["accepted"], true);
    let ok = d.cli_json_stdin(&["realm", "check-password", "mixed", "dave"], "dave-Secret-1\n");
    assert_eq!(ok["accepted"], true);
    d.cli_json(&["realm", "set-resolvers", "mixed", "corp"]);
    assert!(!d.cli(&["realm", "user", "mixed", "dave"]).status.success());

    if countersign_tests::skip_on_postgres("the scan of the SQLite files for the password") {
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{}{suffix}", d.db().display())) {
            assert!(!contains(&bytes, b"dave-Secret-1"));
        }
    }
}
