//! JSON objects whose string values are secrets (a gateway's opened credentials, a Google
//! service account's key file), read into zeroizing buffers.
//!
//! Why not serde_json: it unescapes every string that holds an escape (`\n` in a PEM key, `\"`
//! in a key file kept as a credential's value) through a scratch buffer that it frees without
//! zeroizing, so the secret would stay behind in freed heap memory after every delivery. This
//! reader writes each string once, into a buffer of its exact length (so turning it into a
//! [`SecretString`] moves it rather than copying it), zeroized when dropped.
//!
//! It owns only that: a top-level object, its string values kept by key, any other value
//! (numbers, objects, arrays, literals) skipped. It must never put a value, or the text
//! around an error, into an error, a log line or any buffer but the one it returns.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

/// Why a text is not a JSON object: what was wrong and at which byte, never the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JSON object: {what} at byte {at}")]
pub struct NotAnObject {
    what: &'static str,
    at: usize,
}

/// The string values of the JSON object `text`, by key; values that are not strings are left
/// out. A key given twice is refused (which of the two counts would be a guess).
pub fn string_fields(text: &str) -> Result<BTreeMap<String, SecretString>, NotAnObject> {
    let mut r = Reader { b: text.as_bytes(), i: 0 };
    let mut out = BTreeMap::new();
    // Keys are no secret; those of skipped values count for duplicates too.
    let mut seen = BTreeSet::new();
    r.ws();
    r.expect(b'{', "expected '{'")?;
    r.ws();
    if r.peek() == Some(b'}') {
        r.i += 1;
        return r.end(out);
    }
    loop {
        r.ws();
        let key = into_secret(r.string()?).expose_secret().to_owned();
        r.ws();
        r.expect(b':', "expected ':'")?;
        r.ws();
        let value = if r.peek() == Some(b'"') { Some(r.string()?) } else { r.skip_value(0).map(|()| None)? };
        if !seen.insert(key.clone()) {
            return Err(r.err("a key given twice"));
        }
        if let Some(v) = value {
            out.insert(key, into_secret(v));
        }
        r.ws();
        match r.next() {
            Some(b',') => continue,
            Some(b'}') => return r.end(out),
            _ => return Err(r.err("expected ',' or '}'")),
        }
    }
}

/// Moves the bytes into a [`SecretString`] without a copy: the buffer is exactly as long as
/// its content, so `into_boxed_str` does not reallocate.
fn into_secret(mut v: Zeroizing<Vec<u8>>) -> SecretString {
    let bytes = std::mem::take(&mut *v);
    match String::from_utf8(bytes) {
        Ok(s) => SecretString::from(s),
        // Cannot happen (the input was a `str` and escapes decode to chars), but if it did the
        // bytes are wiped, not leaked.
        Err(e) => {
            e.into_bytes().zeroize();
            SecretString::default()
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn err(&self, what: &'static str) -> NotAnObject {
        NotAnObject { what, at: self.i }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), NotAnObject> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Nothing but white space may follow the object.
    fn end(&mut self, out: BTreeMap<String, SecretString>) -> Result<BTreeMap<String, SecretString>, NotAnObject> {
        self.ws();
        if self.i < self.b.len() {
            return Err(self.err("text after the object"));
        }
        Ok(out)
    }

    /// The escape at `at` (just after its backslash): the char and how many bytes it takes.
    fn escape(&self, at: usize) -> Result<(char, usize), NotAnObject> {
        let bad = NotAnObject { what: "a bad escape", at };
        let simple = match self.b.get(at) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let hex4 = |p: usize| -> Option<u32> {
                    let s = std::str::from_utf8(self.b.get(p..p + 4)?).ok()?;
                    u32::from_str_radix(s, 16).ok()
                };
                let first = hex4(at + 1).ok_or(bad.clone())?;
                if (0xd800..0xdc00).contains(&first) {
                    // A high surrogate: a low one must follow as `\uXXXX`.
                    if self.b.get(at + 5..at + 7) != Some(b"\\u") {
                        return Err(bad);
                    }
                    let low = hex4(at + 7).ok_or(bad.clone())?;
                    if !(0xdc00..0xe000).contains(&low) {
                        return Err(bad);
                    }
                    let c = char::from_u32(0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00)).ok_or(bad)?;
                    return Ok((c, 11));
                }
                return Ok((char::from_u32(first).ok_or(bad)?, 5));
            }
            _ => return Err(bad),
        };
        Ok((simple, 1))
    }

    /// The string starting at the current `"`, unescaped into a buffer of its exact length.
    fn string(&mut self) -> Result<Zeroizing<Vec<u8>>, NotAnObject> {
        self.expect(b'"', "expected a string")?;
        // First pass: where it ends and how long it is unescaped.
        let (mut j, mut len) = (self.i, 0usize);
        loop {
            match self.b.get(j) {
                None => return Err(NotAnObject { what: "an unterminated string", at: j }),
                Some(b'"') => break,
                Some(b'\\') => {
                    let (c, n) = self.escape(j + 1)?;
                    len += c.len_utf8();
                    j += 1 + n;
                }
                Some(c) if *c < 0x20 => return Err(NotAnObject { what: "a control character in a string", at: j }),
                Some(_) => {
                    len += 1;
                    j += 1;
                }
            }
        }
        // Second pass: write it.
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let mut k = self.i;
        while k < j {
            if self.b[k] == b'\\' {
                let (c, n) = self.escape(k + 1)?;
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                utf8.zeroize();
                k += 1 + n;
            } else {
                out.push(self.b[k]);
                k += 1;
            }
        }
        self.i = j + 1;
        Ok(out)
    }

    /// Skips one value that is not a string at the top level (strings inside are skipped
    /// without being unescaped anywhere).
    fn skip_value(&mut self, depth: usize) -> Result<(), NotAnObject> {
        if depth > 64 {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                loop {
                    match self.next() {
                        None => return Err(self.err("an unterminated string")),
                        Some(b'"') => return Ok(()),
                        Some(b'\\') => self.i += 1,
                        Some(_) => {}
                    }
                }
            }
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    match self.peek() {
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        Some(b',' | b':') => self.i += 1,
                        Some(_) => self.skip_value(depth + 1)?,
                        None => return Err(self.err("an unterminated object or array")),
                    }
                }
            }
            Some(c) if c == b'-' || c.is_ascii_alphanumeric() => {
                while matches!(self.peek(), Some(c) if c == b'-' || c == b'+' || c == b'.' || c.is_ascii_alphanumeric())
                {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_come_out_unescaped_and_other_values_are_left_out() {
        let text =
            r#" {"a":"x\ny\"z\\\/\t","n": 3599, "o": {"k": ["v", 1, true, null]}, "u":"\u00e9\ud83d\ude00", "e":"" } "#;
        let f = string_fields(text).unwrap();
        assert_eq!(f.keys().collect::<Vec<_>>(), ["a", "e", "u"]);
        assert_eq!(f["a"].expose_secret(), "x\ny\"z\\/\t");
        assert_eq!(f["u"].expose_secret(), "é😀");
        assert_eq!(f["e"].expose_secret(), "");
        assert!(string_fields("{}").unwrap().is_empty());
    }

    #[test]
    fn what_is_not_an_object_of_strings_is_refused_without_quoting_it() {
        for (text, what) in [
            ("[]", "expected '{'"),
            (r#"{"a":"secret"#, "an unterminated string"),
            (r#"{"a":"sec\qret"}"#, "a bad escape"),
            (r#"{"a":"x","a":"y"}"#, "a key given twice"),
            (r#"{"a":"x"} trailing"#, "text after the object"),
            (r#"{"a":"x" "b":"y"}"#, "expected ',' or '}'"),
            (r#"{"a":"\ud800x"}"#, "a bad escape"),
            ("{\"a\":\"line\nbreak\"}", "a control character in a string"),
        ] {
            let e = string_fields(text).unwrap_err();
            assert_eq!(e.what, what, "{text}");
            assert!(!e.to_string().contains("secret") && !e.to_string().contains("qret"), "{e}");
        }
    }

    #[test]
    fn what_serde_json_writes_reads_back() {
        let mut m = BTreeMap::new();
        m.insert("service_account", "{\"private_key\":\"-----BEGIN PRIVATE KEY-----\\nMII\\n\"}");
        m.insert("password", "p\u{e4}ss \"w\" \\ \u{1}");
        let text = serde_json::to_string(&m).unwrap();
        let f = string_fields(&text).unwrap();
        for (k, v) in m {
            assert_eq!(f[k].expose_secret(), v);
        }
    }
}
