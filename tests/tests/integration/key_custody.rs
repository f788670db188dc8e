//! Keys created through the CLI live on the token as sensitive, non-extractable objects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use countersign_tests::Daemon;

#[test]
fn cli_created_keys_are_sensitive_and_not_extractable() {
    let d = Daemon::start("");
    let app = d.cli_json(&["app", "create", "custody", "--algorithm", "ec-p256"]);
    let label = app["versions"][0]["label"].as_str().unwrap().to_owned();
    let key_id = app["versions"][0]["key_id"].as_str().unwrap().to_owned();

    let out = d.hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let block = listing
        .split("Private Key Object")
        .find(|b| b.contains(&label))
        .unwrap_or_else(|| panic!("private key {label} not listed:\n{listing}"));
    assert!(block.contains(&format!("ID:         {key_id}")), "{block}");
    assert!(block.contains("sensitive"), "{block}");
    assert!(block.contains("never extractable"), "{block}");
    assert!(!block.contains("Access:     none"), "{block}");

    // An independent PKCS#11 client (PyKCS11) sees the same flags, and reading CKA_VALUE fails.
    let out = std::process::Command::new("/usr/bin/python3")
        .env("SOFTHSM2_CONF", d.hsm.conf())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/read_key_value.py"))
        .args([countersign_tests::SOFTHSM_MODULE, &d.hsm.label, &d.hsm.user_pin, &key_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["found"], 1, "{v}");
    assert_eq!(v["sensitive"], true, "{v}");
    assert_eq!(v["extractable"], false, "{v}");
    assert_eq!(v["never_extractable"], true, "{v}");
    assert_eq!(v["value_error"], "CKR_ATTRIBUTE_SENSITIVE", "{v}");

    // The same holds for every algorithm the appliance generates.
    for alg in ["ec-p384", "ed25519", "rsa-2048"] {
        let app = d.cli_json(&["app", "create", &format!("custody-{alg}"), "--algorithm", alg]);
        let id = app["versions"][0]["key_id"].as_str().unwrap();
        // pkcs11-tool ignores --id when listing: pick this key's block by its ID.
        let out = d.hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let block = listing
            .split("Private Key Object")
            .find(|b| b.contains(&format!("ID:         {id}")))
            .unwrap_or_else(|| panic!("{alg}: key {id} not listed:\n{listing}"));
        assert!(block.contains("never extractable") && block.contains("sensitive"), "{alg}: {block}");
    }
}

#[test]
fn a_key_deleted_from_the_token_fails_its_requests_but_not_the_daemon() {
    let uid = countersign_tests::own_uid();
    let d = Daemon::start("");
    d.provision("doomed", "ec-p256", "svc", uid);
    d.provision("kept", "ec-p256", "svc", uid);
    let body = serde_json::json!({ "message": "aGk=" });
    let (st, _) = d.api("POST", "/v1/keys/doomed/sign", Some(body.clone()));
    assert_eq!(st, 200);
    let app = d.cli_json(&["app", "show", "doomed"]);
    let id = app["versions"][0]["key_id"].as_str().unwrap();
    let out = d.hsm.pkcs11_tool(&["--delete-object", "--type", "privkey", "--id", id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (st, err) = d.api("POST", "/v1/keys/doomed/sign", Some(body.clone()));
    assert_eq!(st, 500, "{err}");
    assert_eq!(err["error"]["code"], "key_missing_on_token", "{err}");
    // The token itself is fine: health stays ok, other keys keep signing.
    let (st, health) = d.api("GET", "/v1/health", None);
    assert_eq!((st, health["status"].as_str()), (200, Some("ok")), "{health}");
    let (st, _) = d.api("POST", "/v1/keys/kept/sign", Some(body));
    assert_eq!(st, 200);
    let audit = d.audit();
    assert!(audit.iter().any(|r| r["key_name"] == "doomed" && r["result"] == "error"));
}

#[test]
fn a_key_the_store_cannot_record_is_destroyed_on_the_token() {
    let d = Daemon::start("");
    // Make the store refuse new key versions, as a full disk or a broken database would: a
    // trigger in the SQLite file, or on PostgreSQL in the daemon's database.
    let refuse = |on: bool| {
        match &d.pg {
        Some(pg) => pg
            .client()
            .batch_execute(if on {
                "CREATE FUNCTION refuse_keys() RETURNS trigger LANGUAGE plpgsql AS                  $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$;                  CREATE TRIGGER refuse_keys BEFORE INSERT ON master_keypair                  FOR EACH ROW EXECUTE FUNCTION refuse_keys();"
            } else {
                "DROP TRIGGER refuse_keys ON master_keypair; DROP FUNCTION refuse_keys();"
            })
            .unwrap(),
        None => rusqlite::Connection::open(d.db())
            .unwrap()
            .execute_batch(if on {
                "CREATE TRIGGER refuse_keys BEFORE INSERT ON master_keypair BEGIN SELECT RAISE(ABORT, 'refused by test'); END;"
            } else {
                "DROP TRIGGER refuse_keys;"
            })
            .unwrap(),
    }
    };
    refuse(true);
    let out = d.cli(&["app", "create", "unrecorded", "--algorithm", "ec-p256"]);
    assert!(!out.status.success());
    let listing = d.hsm.pkcs11_tool(&["--list-objects"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(!text.contains("countersign/app/unrecorded"), "orphaned key left on the token:\n{text}");
    refuse(false);
    let app = d.cli_json(&["app", "create", "unrecorded", "--algorithm", "ec-p256"]);
    assert_eq!(app["versions"][0]["version"], 1);
}

/// Behind the row seals, a second line: a sealed seed opens only under the serial it was sealed
/// for (AES-GCM's associated data names it), so a seed moved to another token's row is useless
/// even where its row seal would not be checked.
#[test]
fn a_sealed_seed_opens_only_under_its_own_serial() {
    let hsm = countersign_tests::shared_hsm();
    let dir = tempfile::tempdir().unwrap();
    let store =
        countersign::store::Store::open(&dir.path().join("s.db"), countersign::store::Synchronous::Normal).unwrap();
    let secrets = countersign::token_secrets::TokenSecrets::open(&hsm, &store).unwrap();
    let sealed = secrets.seal_seed("OATH0001", b"12345678901234567890").unwrap();
    assert_eq!(secrets.open_seed("OATH0001", &sealed).unwrap().as_slice(), b"12345678901234567890");
    assert!(secrets.open_seed("OATH0002", &sealed).is_err(), "opened under another serial");
}
