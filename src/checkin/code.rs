//! The `NTX1` ticket code (CHECKIN.md): `NTX1:` + Base45 of a 55-byte payload and its
//! Ed25519 signature, so a scanner can check a ticket with the public keys and no network.
//! The server and `nearbytix verify-code` both decode with [`decode`].
//!
//! Payload, big-endian: version `0x01` (1) | `key_id` u16 (2) | ticket id (16) | event id (16)
//! | tier id (16) | `serial` u32 (4). The signature (64) is over `nearbytix-ticket-v1` then
//! the payload, so a signature made for anything else never verifies as a ticket.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use uuid::Uuid;

use super::base45;

pub const PREFIX: &str = "NTX1:";
const VERSION: u8 = 1;
const PAYLOAD_BYTES: usize = 55;
const SIGNED_BYTES: usize = PAYLOAD_BYTES + 64;
/// Domain separation: what a ticket signature is over, before the payload.
const CONTEXT: &[u8] = b"nearbytix-ticket-v1";

/// What a code says: which ticket, of which event and tier, which serial, signed by which key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketCode {
    pub key_id: u16,
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    pub tier_id: Uuid,
    /// Starts at 1; a reissue adds 1 and revokes the lower ones.
    pub serial: u32,
}

/// Why a text is not a valid ticket code (all of them scan as `invalid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("not an NTX1 code")]
    NotNtx1,
    #[error("not Base45")]
    NotBase45,
    #[error("not {SIGNED_BYTES} bytes")]
    WrongLength,
    #[error("an unknown version")]
    UnknownVersion,
    #[error("signed with an unknown key")]
    UnknownKey,
    #[error("a signature that does not verify")]
    BadSignature,
}

impl TicketCode {
    fn payload(&self) -> [u8; PAYLOAD_BYTES] {
        let mut payload = [0u8; PAYLOAD_BYTES];
        payload[0] = VERSION;
        payload[1..3].copy_from_slice(&self.key_id.to_be_bytes());
        payload[3..19].copy_from_slice(self.ticket_id.as_bytes());
        payload[19..35].copy_from_slice(self.event_id.as_bytes());
        payload[35..51].copy_from_slice(self.tier_id.as_bytes());
        payload[51..55].copy_from_slice(&self.serial.to_be_bytes());
        payload
    }

    /// The code's text, signed with `key` (whose id the code names). The same ticket, serial
    /// and key always give the same text (Ed25519 signatures are deterministic).
    pub fn sign(&self, key: &SigningKey) -> String {
        let payload = self.payload();
        let signature = key.sign(&signed_message(&payload));
        let mut bytes = Vec::with_capacity(SIGNED_BYTES);
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&signature.to_bytes());
        format!("{PREFIX}{}", base45::encode(&bytes))
    }
}

fn signed_message(payload: &[u8; PAYLOAD_BYTES]) -> Vec<u8> {
    let mut message = Vec::with_capacity(CONTEXT.len() + PAYLOAD_BYTES);
    message.extend_from_slice(CONTEXT);
    message.extend_from_slice(payload);
    message
}

/// The public keys a code may be signed with, by id.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys(BTreeMap<u16, VerifyingKey>);

impl PublicKeys {
    pub fn new(keys: impl IntoIterator<Item = (u16, VerifyingKey)>) -> Self {
        Self(keys.into_iter().collect())
    }
}

/// What `text` says, if it is a code signed by one of `keys`.
pub fn decode(text: &str, keys: &PublicKeys) -> Result<TicketCode, CodeError> {
    let encoded = text.strip_prefix(PREFIX).ok_or(CodeError::NotNtx1)?;
    let bytes = base45::decode(encoded).ok_or(CodeError::NotBase45)?;
    let bytes: [u8; SIGNED_BYTES] = bytes.try_into().map_err(|_| CodeError::WrongLength)?;
    let (payload, signature) = bytes.split_at(PAYLOAD_BYTES);
    let payload: [u8; PAYLOAD_BYTES] = payload.try_into().map_err(|_| CodeError::WrongLength)?;
    if payload[0] != VERSION {
        return Err(CodeError::UnknownVersion);
    }
    let key_id = u16::from_be_bytes([payload[1], payload[2]]);
    let key = keys.0.get(&key_id).ok_or(CodeError::UnknownKey)?;
    let signature = Signature::from_slice(signature).map_err(|_| CodeError::BadSignature)?;
    key.verify_strict(&signed_message(&payload), &signature)
        .map_err(|_| CodeError::BadSignature)?;
    let uuid = |at: usize| {
        let mut id = [0u8; 16];
        id.copy_from_slice(&payload[at..at + 16]);
        Uuid::from_bytes(id)
    };
    Ok(TicketCode {
        key_id,
        ticket_id: uuid(3),
        event_id: uuid(19),
        tier_id: uuid(35),
        serial: u32::from_be_bytes([payload[51], payload[52], payload[53], payload[54]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn code(key_id: u16) -> TicketCode {
        TicketCode {
            key_id,
            ticket_id: Uuid::from_u128(1),
            event_id: Uuid::from_u128(2),
            tier_id: Uuid::from_u128(3),
            serial: 7,
        }
    }

    #[test]
    fn a_signed_code_is_184_qr_characters_and_decodes_to_itself() {
        let signing = key(9);
        let keys = PublicKeys::new([(4, signing.verifying_key())]);
        let text = code(4).sign(&signing);
        assert_eq!(text.len(), 184);
        assert!(
            text.bytes()
                .all(|byte| b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".contains(&byte))
        );
        assert_eq!(decode(&text, &keys), Ok(code(4)));
        assert_eq!(text, code(4).sign(&signing), "deterministic");
    }

    #[test]
    fn the_payload_is_laid_out_as_the_contract_says() {
        let code = TicketCode {
            key_id: 0x0102,
            ticket_id: Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888),
            event_id: Uuid::from_u128(0xaaaa_bbbb_cccc_dddd_eeee_ffff_0000_1111),
            tier_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            serial: 0x0a0b_0c0d,
        };
        let hex: String = code.payload().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "01",
                "0102",
                "11112222333344445555666677778888",
                "aaaabbbbccccddddeeeeffff00001111",
                "0123456789abcdef0123456789abcdef",
                "0a0b0c0d"
            )
        );
    }

    #[test]
    fn what_is_not_a_code_of_these_keys_is_refused_with_its_reason() {
        let signing = key(9);
        let keys = PublicKeys::new([(4, signing.verifying_key())]);
        let text = code(4).sign(&signing);
        assert_eq!(decode("NTX2:AB", &keys), Err(CodeError::NotNtx1));
        assert_eq!(decode("NTX1:ab", &keys), Err(CodeError::NotBase45));
        assert_eq!(decode("NTX1:BB8", &keys), Err(CodeError::WrongLength));
        assert_eq!(
            decode(&code(5).sign(&signing), &keys),
            Err(CodeError::UnknownKey)
        );
        let other = PublicKeys::new([(4, key(10).verifying_key())]);
        assert_eq!(decode(&text, &other), Err(CodeError::BadSignature));
        // One payload byte changed (the serial): the signature no longer holds.
        let mut bytes = base45::decode(&text[PREFIX.len()..]).unwrap();
        bytes[54] ^= 1;
        let tampered = format!("{PREFIX}{}", base45::encode(&bytes));
        assert_eq!(decode(&tampered, &keys), Err(CodeError::BadSignature));
        bytes[54] ^= 1;
        bytes[0] = 2;
        let versioned = format!("{PREFIX}{}", base45::encode(&bytes));
        assert_eq!(decode(&versioned, &keys), Err(CodeError::UnknownVersion));
    }

    #[test]
    fn a_plain_signature_of_the_payload_is_not_a_ticket_signature() {
        let signing = key(9);
        let payload = code(4).payload();
        let mut bytes = payload.to_vec();
        bytes.extend_from_slice(&signing.sign(&payload).to_bytes());
        let text = format!("{PREFIX}{}", base45::encode(&bytes));
        let keys = PublicKeys::new([(4, signing.verifying_key())]);
        assert_eq!(decode(&text, &keys), Err(CodeError::BadSignature));
    }
}
