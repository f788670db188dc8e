//! Enrolment URIs as QR codes drawn for a terminal, so an admin enrolling at a desk can scan
//! the code shown once. The URI carries a seed: nothing here writes it anywhere but the
//! returned text.

use qrcode::{Color, EcLevel, QrCode};

/// The QR code of `text` drawn with half-block characters, two modules per character row, dark
/// on a light quiet zone (scannable from a terminal with a dark or light theme).
pub fn qr_terminal(text: &str) -> Result<String, String> {
    let qr = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| format!("QR code: {e}"))?;
    let width = qr.width();
    let colors = qr.to_colors();
    let dark = |x: isize, y: isize| -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < width
            && colors[y as usize * width + x as usize] == Color::Dark
    };
    let q = 2isize;
    let w = width as isize;
    let mut out = String::new();
    let mut y = -q;
    while y < w + q {
        for x in -q..w + q {
            // Light modules print as full blocks so the code reads dark-on-light everywhere.
            out.push(match (dark(x, y), dark(x, y + 1)) {
                (false, false) => '\u{2588}',
                (true, false) => '\u{2584}',
                (false, true) => '\u{2580}',
                (true, true) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_uri_draws_as_rows_of_blocks() {
        let text = qr_terminal("otpauth://totp/x?secret=AAAA").unwrap();
        assert!(text.lines().count() > 10);
        assert!(text.lines().all(|l| l.chars().all(|c| "\u{2588}\u{2584}\u{2580} ".contains(c))));
    }
}
