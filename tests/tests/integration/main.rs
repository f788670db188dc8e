//! Countersign's integration suite, one test binary: each module is one area (its own doc says
//! what it proves), all linked once against the harness in `countersign_tests`. Run one area
//! with `cargo test -p countersign-tests --test integration <module>::`.
//!
//! Tests in one process share it: each starts its own daemons, SoftHSM tokens and servers in
//! their own directories; the one in-process HSM ([`countersign_tests::shared_hsm`]) is shared
//! through a lock that a test simulating a fault holds alone.

mod audit_chain;
mod authorisation;
mod backup_restore;
mod bad_requests;
mod challenges;
mod cluster;
mod concurrency;
mod console_browser;
mod console_system;
mod crash_recovery;
mod directory_users;
mod failure_counting;
mod fuzz_corpus;
mod gateway_fcm;
mod gateways;
mod hardware_enrolment;
mod hsm_faults;
mod hsm_operations;
mod hsm_recovery;
mod http_tls;
mod key_custody;
mod network_hardening;
mod offline_edits;
mod pi_conformance;
mod pi_push;
mod pi_simple_tokens;
mod pi_webauthn;
mod pi_yubikey_protocol;
mod plugin_failures;
mod plugin_host;
mod plugin_publishing;
mod plugin_sandbox;
mod plugin_worker;
mod policies;
mod policy_effects;
mod powerauth;
mod powerauth_activation;
mod powerauth_tokens;
mod privacyidea_api;
mod privacyidea_config;
mod process_and_store;
mod push;
mod resolvers;
mod rotation_and_restart;
mod signing_verifies_with_openssl;
mod simple_tokens;
mod startup_failures;
mod store_copy;
mod systemd_integration;
mod token_lifecycle;
mod token_selection;
mod token_validation;
mod user_identity;
mod webauthn;
mod webauthn_browser;
mod webauthn_passkey_rs;
mod webauthn_verifier;
mod yubikey;
