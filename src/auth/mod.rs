//! Credentials infrastructure: Argon2id password hashing, JWT access tokens and where the
//! signing secret comes from. The HTTP extractors that use them live in `api`.

pub mod jwt;
pub mod password;
mod secret;

pub use jwt::{IssuedToken, TokenKeys};
pub use secret::resolve_jwt_secret;
pub(crate) use secret::{beside, load_or_create};
