//! BER-TLV as PIV and YKOATH use it: one- or two-byte tags (a first byte with the low five bits
//! set takes a second), definite lengths up to three bytes. Parsing is strict: a length that
//! runs past the data is an error, never a short read.

use super::DeviceError;

/// Appends one TLV.
pub(crate) fn put(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xFF {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(n.min(0xFFFF) as u16).to_be_bytes());
    }
    out.extend_from_slice(value);
}

/// One TLV as a new buffer.
pub(crate) fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 4);
    put(&mut out, tag, value);
    out
}

/// Splits `data` into its top-level TLVs.
pub(crate) fn parse(mut data: &[u8]) -> Result<Vec<(u16, &[u8])>, DeviceError> {
    let bad = |what: &str| DeviceError::Protocol(format!("the card sent malformed TLV data ({what})"));
    let mut out = Vec::new();
    while !data.is_empty() {
        let (tag, rest) = match data {
            [t, u, rest @ ..] if t & 0x1F == 0x1F => (u16::from_be_bytes([*t, *u]), rest),
            [t, rest @ ..] => (u16::from(*t), rest),
            [] => break,
        };
        let (len, rest) = match rest {
            [n, rest @ ..] if *n < 0x80 => (usize::from(*n), rest),
            [0x81, n, rest @ ..] => (usize::from(*n), rest),
            [0x82, a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => return Err(bad("length")),
        };
        if rest.len() < len {
            return Err(bad("value shorter than its length"));
        }
        out.push((tag, &rest[..len]));
        data = &rest[len..];
    }
    Ok(out)
}

/// The value of the first TLV with `tag`.
pub(crate) fn find(data: &[u8], tag: u16) -> Result<Option<&[u8]>, DeviceError> {
    Ok(parse(data)?.into_iter().find(|(t, _)| *t == tag).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_short_long_and_two_byte_tags() {
        let long = vec![7u8; 300];
        let mut buf = Vec::new();
        put(&mut buf, 0x7F49, &[1, 2]);
        put(&mut buf, 0x53, &long);
        put(&mut buf, 0x80, &[0u8; 0x90]);
        let items = parse(&buf).unwrap();
        assert_eq!(items[0], (0x7F49, &[1u8, 2][..]));
        assert_eq!(items[1].1.len(), 300);
        assert_eq!(items[2].1.len(), 0x90);
        assert!(parse(&[0x53, 0x05, 1]).is_err());
    }
}
