//! argon2id password hashing.
//!
//! A password is hashed in Unicode normalization form C (RFC 8265's OpaqueString): "é" typed
//! as one code point on one device and as "e" plus an accent on another is one password.
//!
//! Hashing is deliberately slow (tens of milliseconds); callers on an async runtime should run
//! these functions on a blocking thread.

use std::borrow::Cow;
use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// Hashing failed (practically only on invalid parameters).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// Hashes a password with argon2id and a random salt into a PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(nfc(password).as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Checks a password against a stored PHC string. With `None` (no such account) it still does
/// the work of one verification, so that an unknown email and a wrong password take as long.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("not a real password").unwrap_or_default());
    let (phc, real) = match stored {
        Some(phc) => (phc, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let argon2 = Argon2::default();
    let normal = nfc(password);
    let verifies = |candidate: &str| {
        argon2
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok()
    };
    // A hash made before passwords were normalized is of the password as typed then.
    let ok = verifies(&normal) || (normal != password && verifies(password));
    ok && real
}

/// A password's length in characters as it is compared: in normalization form C, so that an
/// accented letter counts once however it was typed.
pub fn password_length(password: &str) -> usize {
    nfc(password).chars().count()
}

/// `password` in normalization form C, borrowed when it already is (the common case).
fn nfc(password: &str) -> Cow<'_, str> {
    match is_nfc_quick(password.chars()) {
        IsNormalized::Yes => Cow::Borrowed(password),
        _ => Cow::Owned(password.nfc().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify_password("correct horse", Some(&a)));
        assert!(!verify_password("wrong horse", Some(&a)));
        assert!(!verify_password("correct horse", None));
        assert!(!verify_password("x", Some("garbage")));
    }

    #[test]
    fn one_password_however_its_accents_are_typed() {
        let (composed, decomposed) = ("caf\u{e9}", "cafe\u{301}");
        for (set, typed) in [(composed, decomposed), (decomposed, composed)] {
            let phc = hash_password(set).unwrap();
            assert!(
                verify_password(typed, Some(&phc)),
                "set {set:?}, typed {typed:?}"
            );
            assert!(verify_password(set, Some(&phc)));
            assert!(!verify_password("cafe", Some(&phc)));
        }
    }

    #[test]
    fn a_hash_of_an_unnormalized_password_still_verifies() {
        // As stored before passwords were normalized: the decomposed form hashed as typed.
        let salt = SaltString::generate(&mut OsRng);
        let legacy = Argon2::default()
            .hash_password("cafe\u{301}".as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("cafe\u{301}", Some(&legacy)));
        assert!(!verify_password("cafe", Some(&legacy)));
    }
}
