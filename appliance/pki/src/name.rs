//! RFC 4514 distinguished names: parsing a string such as `CN=alice,OU=staff,O=Countersign` into an X.509 `Name`
//! (the first RDN in the string is the last, most specific, in the encoding) and escaping a value so that it can be
//! placed into such a string. Multi-valued RDNs (`+`) and `\XX` hex escapes are handled; `#hex` DER values and
//! quoted values are refused.

use const_oid::ObjectIdentifier;
use der::asn1::{Any, SetOfVec};
use der::Tag;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::PkiError;

/// Escapes `value` so that it reads back as exactly itself inside an RFC 4514 attribute value.
pub fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let count = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' | ',' | '+' | '"' | ';' | '<' | '>' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == count => out.push_str("\\ "),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn bad(subject: &str, reason: impl Into<String>) -> PkiError {
    PkiError::BadSubject { subject: subject.to_string(), reason: reason.into() }
}

/// How an attribute's value is encoded.
#[derive(Clone, Copy)]
enum Kind {
    Utf8,
    Printable,
    Ia5,
}

fn attribute_type(subject: &str, name: &str) -> Result<(ObjectIdentifier, Kind), PkiError> {
    let known = match name.to_ascii_uppercase().as_str() {
        "CN" => Some(("2.5.4.3", Kind::Utf8)),
        "SN" | "SURNAME" => Some(("2.5.4.4", Kind::Utf8)),
        "SERIALNUMBER" => Some(("2.5.4.5", Kind::Printable)),
        "C" => Some(("2.5.4.6", Kind::Printable)),
        "L" => Some(("2.5.4.7", Kind::Utf8)),
        "ST" => Some(("2.5.4.8", Kind::Utf8)),
        "STREET" => Some(("2.5.4.9", Kind::Utf8)),
        "O" => Some(("2.5.4.10", Kind::Utf8)),
        "OU" => Some(("2.5.4.11", Kind::Utf8)),
        "TITLE" => Some(("2.5.4.12", Kind::Utf8)),
        "GIVENNAME" | "GN" => Some(("2.5.4.42", Kind::Utf8)),
        "DC" => Some(("0.9.2342.19200300.100.1.25", Kind::Ia5)),
        "UID" => Some(("0.9.2342.19200300.100.1.1", Kind::Utf8)),
        "E" | "EMAILADDRESS" => Some(("1.2.840.113549.1.9.1", Kind::Ia5)),
        _ => None,
    };
    match known {
        Some((oid, kind)) => {
            Ok((ObjectIdentifier::new(oid).map_err(|e| bad(subject, format!("internal OID {oid}: {e}")))?, kind))
        }
        None if name.starts_with(|c: char| c.is_ascii_digit()) => Ok((
            ObjectIdentifier::new(name).map_err(|e| bad(subject, format!("{name:?} is not a dotted OID: {e}")))?,
            Kind::Utf8,
        )),
        None => Err(bad(
            subject,
            format!("unknown attribute type {name:?} (use CN, OU, O, C, L, ST, DC, UID, E or a dotted OID)"),
        )),
    }
}

fn is_printable(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

fn make_atv(subject: &str, type_name: &str, value: &str) -> Result<AttributeTypeAndValue, PkiError> {
    let (oid, kind) = attribute_type(subject, type_name)?;
    if value.is_empty() {
        return Err(bad(subject, format!("{type_name} has an empty value")));
    }
    let tag = match kind {
        Kind::Utf8 => Tag::Utf8String,
        Kind::Printable if is_printable(value) => Tag::PrintableString,
        Kind::Printable => {
            return Err(bad(
                subject,
                format!("{type_name} allows only letters, digits and ' ()+,-./:=? (got {value:?})"),
            ))
        }
        Kind::Ia5 if value.is_ascii() => Tag::Ia5String,
        Kind::Ia5 => return Err(bad(subject, format!("{type_name} must be ASCII (got {value:?})"))),
    };
    let value = Any::new(tag, value.as_bytes()).map_err(|e| bad(subject, e.to_string()))?;
    Ok(AttributeTypeAndValue { oid, value })
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses an RFC 4514 string into a `Name`.
pub fn parse_rfc4514(subject: &str) -> Result<Name, PkiError> {
    if subject.trim().is_empty() {
        return Err(bad(subject, "it is empty"));
    }
    let bytes = subject.as_bytes();
    let mut rdns: Vec<RelativeDistinguishedName> = Vec::new();
    let mut current: Vec<AttributeTypeAndValue> = Vec::new();
    let mut i = 0;
    loop {
        // attribute type, up to '='
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            if bytes[i] == b',' || bytes[i] == b'+' {
                return Err(bad(subject, format!("missing '=' in {:?}", &subject[start..i])));
            }
            i += 1;
        }
        if i >= bytes.len() {
            return Err(bad(subject, format!("missing '=' after {:?}", subject[start..].trim())));
        }
        let type_name = subject[start..i].trim();
        i += 1;
        // skip unescaped leading spaces of the value
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i < bytes.len() && (bytes[i] == b'#' || bytes[i] == b'"') {
            return Err(bad(subject, format!("{type_name}: #hex and quoted values are not supported; escape instead")));
        }
        let mut value: Vec<u8> = Vec::new();
        let mut significant = 0; // length of value without unescaped trailing spaces
        let mut separator = None;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b',' | b'+' => {
                    separator = Some(b);
                    i += 1;
                    break;
                }
                b'\\' => {
                    let next = *bytes.get(i + 1).ok_or_else(|| bad(subject, "it ends with a lone '\\'"))?;
                    if let (Some(h), Some(l)) = (hex_digit(next), bytes.get(i + 2).copied().and_then(hex_digit)) {
                        value.push(h << 4 | l);
                        i += 3;
                    } else if b"\\,+\"; <>=#".contains(&next) {
                        value.push(next);
                        i += 2;
                    } else {
                        return Err(bad(subject, format!("'\\{}' is not a valid escape", next as char)));
                    }
                    significant = value.len();
                }
                _ => {
                    value.push(b);
                    i += 1;
                    if b != b' ' {
                        significant = value.len();
                    }
                }
            }
        }
        value.truncate(significant);
        let value = String::from_utf8(value).map_err(|_| bad(subject, "a \\XX escape does not form UTF-8"))?;
        current.push(make_atv(subject, type_name, &value)?);
        if separator != Some(b'+') {
            let set = SetOfVec::try_from(std::mem::take(&mut current))
                .map_err(|e| bad(subject, format!("duplicate attribute in a multi-valued RDN: {e}")))?;
            rdns.push(RelativeDistinguishedName(set));
        }
        if separator.is_none() {
            break;
        }
    }
    rdns.reverse();
    Ok(RdnSequence(rdns))
}

/// The first value of attribute `oid` in `name`, when it is a string.
pub(crate) fn first_attribute(name: &Name, oid: ObjectIdentifier) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|atv| atv.oid == oid).and_then(|atv| {
        match der::Tagged::tag(&atv.value) {
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
                std::str::from_utf8(atv.value.value()).ok().map(str::to_string)
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &Name) -> Vec<Vec<String>> {
        name.0
            .iter()
            .rev()
            .map(|rdn| rdn.0.iter().map(|atv| String::from_utf8_lossy(atv.value.value()).into_owned()).collect())
            .collect()
    }

    #[test]
    fn escaping_round_trips_every_special_character() {
        for raw in ["a,b", "a+b", "a=b", "\\", "\\,", "x\\\\,y", " lead", "trail ", "#hash", "q\"<>;", "tab\there", "ü"]
        {
            let name = parse_rfc4514(&format!("CN={},O=x", escape_rfc4514(raw))).unwrap();
            assert_eq!(values(&name), vec![vec![raw.to_string()], vec!["x".to_string()]], "{raw:?}");
        }
    }

    #[test]
    fn parses_multi_valued_rdns_hex_escapes_and_spaces() {
        let name = parse_rfc4514("CN=a+UID=b, O = Acme\\2C Inc ,C=DE").unwrap();
        assert_eq!(name.0.len(), 3);
        assert_eq!(name.0[2].0.len(), 2);
        assert_eq!(values(&name)[1], vec!["Acme, Inc".to_string()]);
        assert_eq!(name.to_string(), "CN=a+UID=b,O=Acme\\, Inc,C=DE");
    }

    #[test]
    fn refuses_what_it_cannot_encode_faithfully() {
        for bad in ["", "CN", "CN=", "XX=a", "CN=#0403", "CN=\"q\"", "CN=a\\", "CN=a\\q", "C=Deutschland!", "DC=ü"] {
            assert!(parse_rfc4514(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
