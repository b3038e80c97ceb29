//! Check-in (CHECKIN.md): signed ticket codes a scanner verifies offline.

mod base45;
pub mod code;
pub mod keys;
pub mod qr;

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use keys::ListedKey;

/// What `nearbytix verify-code` prints for a valid `code`, checked with the keys file (the
/// answer of `GET /checkin/keys`) with the decoder the server uses; why not otherwise.
pub fn verify_code(code: &str, keys_file: &Path) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct KeysAnswer {
        keys: Vec<KeyEntry>,
    }
    #[derive(Deserialize)]
    struct KeyEntry {
        key_id: u16,
        alg: String,
        public_key: String,
        #[serde(default)]
        signing: bool,
    }
    let text = std::fs::read_to_string(keys_file)
        .with_context(|| format!("reading {}", keys_file.display()))?;
    let answer: KeysAnswer = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not the answer of GET /checkin/keys",
            keys_file.display()
        )
    })?;
    let mut listed: Vec<ListedKey> = Vec::with_capacity(answer.keys.len());
    for key in answer.keys {
        anyhow::ensure!(
            key.alg == "Ed25519",
            "key {}: algorithm {} (only Ed25519)",
            key.key_id,
            key.alg
        );
        anyhow::ensure!(
            listed.iter().all(|seen| seen.key_id != key.key_id),
            "key {} is listed twice",
            key.key_id
        );
        listed.push(ListedKey {
            key_id: key.key_id,
            public_key: key.public_key,
            signing: key.signing,
        });
    }
    let public = keys::public_keys_of(&listed)?;
    let code =
        code::decode(code.trim(), &public).map_err(|error| anyhow::anyhow!("invalid: {error}"))?;
    Ok(serde_json::json!({
        "valid": true,
        "format": "NTX1",
        "key_id": code.key_id,
        "ticket_id": code.ticket_id,
        "event_id": code.event_id,
        "tier_id": code.tier_id,
        "serial": code.serial,
    })
    .to_string())
}
