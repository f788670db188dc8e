//! Card answers: TLV, PIV (version, serial, metadata, mutual authentication, generate, data
//! objects) and YKOATH (select, list, unlock) parsing, and GET RESPONSE chaining driven by a
//! scripted card. Input: a mode byte, then one answer or a script of answers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| countersign_card::fuzzing::card_answers(data));
