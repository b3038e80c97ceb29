//! Stripe's webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, an HMAC-SHA256
//! with the endpoint's secret over `"{t}." + body`, the body as received.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Why a webhook's signature is refused (each answers 400, records nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header, or one without t= and v1=")]
    Malformed,
    #[error("the signature's time is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks `header` over `body` with any of `secrets` (more than one while rotating), its time
/// within `tolerance_seconds` of `now` (Unix seconds). Comparisons are constant-time.
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[SecretString],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(decode_hex(value)),
            _ => {}
        }
    }
    let (Some(timestamp), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    if now.abs_diff(timestamp) > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        let mac = signed(secret, timestamp, body);
        if signatures
            .iter()
            .any(|signature| mac.clone().verify_slice(signature).is_ok())
        {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp` (tests, and
/// whoever needs to sign as Stripe does).
pub fn header_for(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let digest = signed(secret, timestamp, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

fn signed(secret: &SecretString, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The bytes of a lower- or upper-case hex string; `None` if it is not one.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn a_signature_made_with_the_secret_verifies_within_the_tolerance() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let key = secret("whsec_test");
        let header = header_for(&key, 1_700_000_000, body);
        let keys = [key];
        assert_eq!(verify(&header, body, &keys, 1_700_000_000, 300), Ok(()));
        assert_eq!(verify(&header, body, &keys, 1_700_000_300, 300), Ok(()));
        assert_eq!(
            verify(&header, body, &keys, 1_700_000_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&header, body, &keys, 1_699_999_699, 300),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn another_body_secret_or_garbled_header_is_refused() {
        let body = b"{}";
        let key = secret("whsec_test");
        let header = header_for(&key, 100, body);
        let keys = [key];
        assert_eq!(
            verify(&header, b"{ }", &keys, 100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, body, &[secret("whsec_other")], 100, 300),
            Err(SignatureError::Mismatch)
        );
        for garbled in [
            "",
            "t=100",
            "v1=00",
            "t=x,v1=00",
            "t=100,v1=zz",
            "t=100,v1=0",
        ] {
            assert_eq!(
                verify(garbled, body, &keys, 100, 300),
                Err(SignatureError::Malformed),
                "{garbled:?}"
            );
        }
    }

    #[test]
    fn any_v1_and_any_secret_while_rotating() {
        let body = b"{}";
        let (old, new) = (secret("whsec_old"), secret("whsec_new"));
        let signed_new = header_for(&new, 100, body);
        let v1 = signed_new.split_once(",v1=").unwrap().1;
        let header = format!("t=100,v1={},v1={v1},v0=ignored", "ab".repeat(32));
        assert_eq!(verify(&header, body, &[old, new], 100, 300), Ok(()));
    }
}
