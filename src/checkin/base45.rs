//! Base45 (RFC 9285): two bytes in three characters of the QR alphanumeric alphabet, so a code
//! fits a QR code's densest text mode.

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

pub fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(2) * 3);
    for pair in bytes.chunks(2) {
        let (mut value, digits) = match *pair {
            [high, low] => (usize::from(high) * 256 + usize::from(low), 3),
            [single] => (usize::from(single), 2),
            _ => unreachable!("chunks of at most two"),
        };
        for _ in 0..digits {
            text.push(char::from(ALPHABET[value % 45]));
            value /= 45;
        }
    }
    text
}

/// The bytes of `text`; `None` when it is not Base45 (a character outside the alphabet, a
/// dangling character, or a group worth more than its bytes can hold).
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<usize> = text
        .bytes()
        .map(|byte| ALPHABET.iter().position(|&symbol| symbol == byte))
        .collect::<Option<_>>()?;
    let mut bytes = Vec::with_capacity(digits.len() / 3 * 2 + 1);
    for group in digits.chunks(3) {
        match *group {
            [c, d, e] => {
                let value = c + d * 45 + e * 45 * 45;
                let value = u16::try_from(value).ok()?;
                bytes.extend_from_slice(&value.to_be_bytes());
            }
            [c, d] => bytes.push(u8::try_from(c + d * 45).ok()?),
            _ => return None,
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_examples() {
        assert_eq!(encode(b"AB"), "BB8");
        assert_eq!(encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(encode(b"base-45"), "UJCLQE7W581");
        assert_eq!(decode("QED8WEX0").as_deref(), Some(&b"ietf!"[..]));
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_base45() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&bytes)), Some(bytes));
        assert_eq!(decode("GGW"), None, "65536 does not fit two bytes");
        assert_eq!(decode("A"), None, "a dangling character");
        assert_eq!(decode("ab"), None, "lower case is not in the alphabet");
    }
}
