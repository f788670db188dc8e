//! Native API bodies (`/v1/validate/check`, sign, verify, admin bodies) through the route's
//! `Body` extractor and the handler's checks. Input: a route byte, then the JSON body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign_http::fuzzing::native_body(data));
