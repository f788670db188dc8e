//! privacyIDEA parameters: query + form/JSON body merged by `Params`, then targets, lists,
//! pagination, resolver parameters (`from_params`) and policy actions (`parse_actions`).
//! Input: a content-type byte (`j`, `f`, `n`, other), the query, a newline, the body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign_http::fuzzing::pi_params(data));
