//! The keys ticket codes are signed with (`TICKET_SIGNING_KEYS`): `key_id:seed`, comma
//! separated, each seed 32 bytes in base64url; the first signs, all verify, so a key is rotated
//! by putting a new one first. Not the login-token key: a ticket code never works as a token,
//! nor a token as a code.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use ed25519_dalek::SigningKey;
use secrecy::{ExposeSecret, SecretString};

use super::code::PublicKeys;
use crate::auth::{beside, load_or_create};

/// Base64url, with or without padding.
const SEED_TEXT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub struct TicketKeys {
    signing: u16,
    keys: BTreeMap<u16, SigningKey>,
}

/// A public key as `GET /checkin/keys` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub key_id: u16,
    /// Unpadded base64url of the 32 bytes.
    pub public_key: String,
    pub signing: bool,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("signing", &self.signing)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// `TICKET_SIGNING_KEYS` when set. Otherwise PostgreSQL refuses to start (every process
    /// must sign with the same keys), and SQLite uses a key made once and kept beside the
    /// database file (`<database>.ticket-keys`, key id 1), so codes survive restarts.
    pub fn resolve(
        configured: Option<&SecretString>,
        database_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        if let Some(keys) = configured {
            return Self::parse(keys.expose_secret());
        }
        let Some(database) = database_file else {
            anyhow::bail!(
                "TICKET_SIGNING_KEYS is required with PostgreSQL: `1:` and 32 random bytes in \
                 base64url (for example: echo 1:$(openssl rand -base64 32 | tr '+/' '-_')), \
                 the same in every process"
            );
        };
        let path = beside(database, "ticket-keys");
        let text = load_or_create(&path, "the ticket signing key", || {
            let mut seed = [0u8; 32];
            OsRng.fill_bytes(&mut seed);
            format!("1:{}", URL_SAFE_NO_PAD.encode(seed))
        })?;
        Self::parse(&text).map_err(|error| {
            anyhow::anyhow!(
                "{error:#} (in {}; delete it to make a new key)",
                path.display()
            )
        })
    }

    /// Keys in `TICKET_SIGNING_KEYS`'s format; the first signs.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = BTreeMap::new();
        let mut signing = None;
        for (index, entry) in text.split(',').map(str::trim).enumerate() {
            let (id, seed) = entry.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("TICKET_SIGNING_KEYS entry {} is not key_id:seed", index + 1)
            })?;
            let id = id.trim();
            let id: u16 = id
                .bytes()
                .all(|byte| byte.is_ascii_digit())
                .then(|| id.parse().ok())
                .flatten()
                .ok_or_else(|| {
                    anyhow::anyhow!("TICKET_SIGNING_KEYS entry {}: key_id 0–65535", index + 1)
                })?;
            let seed: [u8; 32] = SEED_TEXT
                .decode(seed.trim())
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "TICKET_SIGNING_KEYS key {id}: the seed must be 32 bytes in base64url"
                    )
                })?;
            anyhow::ensure!(
                keys.insert(id, SigningKey::from_bytes(&seed)).is_none(),
                "TICKET_SIGNING_KEYS names key {id} twice"
            );
            signing.get_or_insert(id);
        }
        let signing = signing.ok_or_else(|| anyhow::anyhow!("TICKET_SIGNING_KEYS is empty"))?;
        Ok(Self { signing, keys })
    }

    /// The key new codes are signed with, and its id.
    pub fn signing(&self) -> (u16, &SigningKey) {
        (self.signing, &self.keys[&self.signing])
    }

    /// Key `key_id`, if it is still kept.
    pub fn key(&self, key_id: u16) -> Option<(u16, &SigningKey)> {
        self.keys.get(&key_id).map(|key| (key_id, key))
    }

    pub fn public(&self) -> PublicKeys {
        PublicKeys::new(self.keys.iter().map(|(id, key)| (*id, key.verifying_key())))
    }

    pub fn listed(&self) -> Vec<ListedKey> {
        self.keys
            .iter()
            .map(|(id, key)| ListedKey {
                key_id: *id,
                public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                signing: *id == self.signing,
            })
            .collect()
    }
}

/// Public keys as `GET /checkin/keys` lists them (what `nearbytix verify-code` reads).
pub fn public_keys_of(listed: &[ListedKey]) -> anyhow::Result<PublicKeys> {
    let mut keys = Vec::with_capacity(listed.len());
    for key in listed {
        let bytes: [u8; 32] = SEED_TEXT
            .decode(&key.public_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("key {}: not 32 bytes in base64url", key.key_id))?;
        let public = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| anyhow::anyhow!("key {}: not an Ed25519 public key", key.key_id))?;
        keys.push((key.key_id, public));
    }
    Ok(PublicKeys::new(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_signs_and_every_key_is_listed() {
        let seed = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let padded = base64::engine::general_purpose::URL_SAFE.encode([8u8; 32]);
        let keys = TicketKeys::parse(&format!("9:{seed}, 2:{padded}")).unwrap();
        assert_eq!(keys.signing().0, 9);
        let listed = keys.listed();
        assert_eq!(
            listed
                .iter()
                .map(|k| (k.key_id, k.signing))
                .collect::<Vec<_>>(),
            [(2, false), (9, true)]
        );
        assert!(listed.iter().all(|k| k.public_key.len() == 43));
        assert!(public_keys_of(&listed).is_ok());
    }

    #[test]
    fn malformed_keys_are_refused() {
        let seed = URL_SAFE_NO_PAD.encode([7u8; 32]);
        for bad in [
            String::new(),
            "1".to_owned(),
            format!("x:{seed}"),
            format!("70000:{seed}"),
            "1:c2hvcnQ".to_owned(),
            format!("+1:{seed}"),
            format!("1:{seed},1:{seed}"),
        ] {
            assert!(TicketKeys::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sqlite_makes_one_private_key_and_postgres_requires_keys() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tix.db");
        let first = TicketKeys::resolve(None, Some(&database)).unwrap();
        let again = TicketKeys::resolve(None, Some(&database)).unwrap();
        assert_eq!(first.listed(), again.listed());
        assert_eq!(first.signing().0, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.path().join("tix.db.ticket-keys");
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(TicketKeys::resolve(None, None).is_err());
    }
}
