//! Minimal BER-TLV helpers as smart-card applets use them: one- or two-byte tags, lengths in
//! the short form or the 0x81/0x82 long forms.

/// Encodes one TLV; tags above 0xFF are written as two bytes.
pub(crate) fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 5);
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    out.extend_from_slice(&encode_len(value.len()));
    out.extend_from_slice(value);
    out
}

/// Encodes a BER length.
pub(crate) fn encode_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else if len <= 0xFF {
        vec![0x81, len as u8]
    } else {
        vec![0x82, (len >> 8) as u8, len as u8]
    }
}

/// Parses a flat sequence of TLVs; the tag is one byte unless its low five bits are all set
/// (then two bytes, as 0x7F49 or 0x5F2F). Returns `None` on malformed input.
pub(crate) fn parse(mut data: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let (tag, rest) = if data[0] & 0x1F == 0x1F {
            (u16::from_be_bytes([data[0], *data.get(1)?]), &data[2..])
        } else {
            (u16::from(data[0]), &data[1..])
        };
        let (len, rest) = match *rest.first()? {
            l if l < 0x80 => (usize::from(l), &rest[1..]),
            0x81 => (usize::from(*rest.get(1)?), rest.get(2..)?),
            0x82 => (usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])), rest.get(3..)?),
            _ => return None,
        };
        out.push((tag, rest.get(..len)?));
        data = &rest[len..];
    }
    Some(out)
}

/// The value of the first TLV with `tag` in a flat sequence.
pub(crate) fn find(data: &[u8], tag: u16) -> Option<&[u8]> {
    parse(data)?.into_iter().find(|(t, _)| *t == tag).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 1000] {
            let value = vec![7u8; len];
            let enc = tlv(0x7F49, &value);
            let parsed = parse(&enc).unwrap();
            assert_eq!(parsed, vec![(0x7F49, &value[..])]);
        }
    }
}
