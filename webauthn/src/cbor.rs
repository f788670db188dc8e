//! Reading CBOR items (with `ciborium`) out of untrusted bytes, and looking up map entries.
//! Owns the decoder's limits; must never interpret what the items mean (the COSE, authData and
//! attestation modules do).

use ciborium::value::Value;

use crate::error::Error;

/// Reads one CBOR item from the start of `input`; returns it and how many bytes it took.
pub(crate) fn read_one(input: &[u8], what: &'static str) -> Result<(Value, usize), Error> {
    let mut rest = input;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, 16)
        .map_err(|e| Error::Cbor { what, detail: e.to_string() })?;
    Ok((value, input.len() - rest.len()))
}

/// Reads `input` as exactly one CBOR item, refusing trailing bytes.
pub(crate) fn read_exact(input: &[u8], what: &'static str) -> Result<Value, Error> {
    let (value, used) = read_one(input, what)?;
    if used != input.len() {
        return Err(Error::Cbor { what, detail: format!("{} trailing bytes after the item", input.len() - used) });
    }
    Ok(value)
}

/// The entries of a map, refusing any other item and duplicate keys.
pub(crate) fn map_entries(value: Value, what: &'static str) -> Result<Vec<(Value, Value)>, Error> {
    let Value::Map(entries) = value else {
        return Err(Error::Cbor { what, detail: "expected a map".to_owned() });
    };
    for (i, (key, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(Error::Cbor { what, detail: format!("duplicate map key {key:?}") });
        }
    }
    Ok(entries)
}

/// Removes and returns the value under integer key `key`.
pub(crate) fn take_int_key(entries: &mut Vec<(Value, Value)>, key: i64) -> Option<Value> {
    let pos = entries.iter().position(|(k, _)| k.as_integer().is_some_and(|i| i128::from(i) == i128::from(key)))?;
    Some(entries.swap_remove(pos).1)
}

/// Removes and returns the value under text key `key`.
pub(crate) fn take_text_key(entries: &mut Vec<(Value, Value)>, key: &str) -> Option<Value> {
    let pos = entries.iter().position(|(k, _)| k.as_text() == Some(key))?;
    Some(entries.swap_remove(pos).1)
}

/// An integer item as `i64`.
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    value.as_integer().and_then(|i| i64::try_from(i128::from(i)).ok())
}
