//! A ticket code as a QR code in SVG: one alphanumeric segment (every code character is in
//! that mode's alphabet), the smallest version for the error correction asked, a quiet zone of
//! 4 modules, one SVG unit per module.

use qrcode::bits::Bits;
use qrcode::{Color, EcLevel, QrCode, Version};

/// How much of a damaged code a scanner can still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Correction {
    /// ~7 %.
    Low,
    /// ~15 %.
    #[default]
    Medium,
    /// ~25 %.
    Quartile,
    /// ~30 %.
    High,
}

impl Correction {
    /// `L`, `M`, `Q` or `H`.
    pub fn parse(letter: &str) -> Option<Self> {
        match letter {
            "L" => Some(Correction::Low),
            "M" => Some(Correction::Medium),
            "Q" => Some(Correction::Quartile),
            "H" => Some(Correction::High),
            _ => None,
        }
    }
}

const QUIET_ZONE: usize = 4;

/// The SVG of `text` (a ticket code) at `correction`.
pub fn svg(text: &str, correction: Correction) -> anyhow::Result<String> {
    let level = match correction {
        Correction::Low => EcLevel::L,
        Correction::Medium => EcLevel::M,
        Correction::Quartile => EcLevel::Q,
        Correction::High => EcLevel::H,
    };
    // The segments are chosen here, not by the encoder: it would split runs of digits into
    // numeric segments, and the contract (and scanners' text reading) wants one alphanumeric
    // segment. The smallest version that holds it, for this correction level.
    let code = (1..=40)
        .find_map(|version| {
            let mut bits = Bits::new(Version::Normal(version));
            bits.push_alphanumeric_data(text.as_bytes()).ok()?;
            bits.push_terminator(level).ok()?;
            QrCode::with_bits(bits, level).ok()
        })
        .ok_or_else(|| anyhow::anyhow!("a ticket code does not fit a QR code"))?;
    let width = code.width();
    let size = width + 2 * QUIET_ZONE;
    let mut path = String::with_capacity(width * width * 4);
    for (index, color) in code.to_colors().into_iter().enumerate() {
        if color == Color::Dark {
            let (x, y) = (index % width + QUIET_ZONE, index / width + QUIET_ZONE);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_takes_the_smallest_version_of_its_correction() {
        // 184 characters of the alphanumeric alphabet, as every code is, with a long run of
        // digits (which an encoder choosing its own segments would make a numeric one).
        let text = format!(
            "NTX1:{}{}",
            "0123456789".repeat(3),
            "A1 $%*+-./:".repeat(15)
        )
        .chars()
        .take(184)
        .collect::<String>();
        for (correction, size) in [
            (Correction::Low, 49),
            (Correction::Medium, 57),
            (Correction::Quartile, 61),
            (Correction::High, 69),
        ] {
            let svg = svg(&text, correction).unwrap();
            assert!(
                svg.contains(&format!("viewBox=\"0 0 {size} {size}\"")),
                "{correction:?}"
            );
        }
    }
}
