//! Authentication: password hashing, JWT access/refresh tokens, random opaque tokens.

mod hashing;
mod jwt;
mod password;
mod secret_token;

pub use hashing::{HashingError, PasswordHashing};
pub use jwt::{AccessClaims, IssuedRefresh, RefreshClaims, TokenError, TokenIssuer, TokenKind};
pub use password::{hash_password, password_length, verify_password, PasswordError};
pub use secret_token::{hash_token, new_secret_token, new_token_id};
