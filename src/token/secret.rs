//! Opaque secrets (client secrets, refresh tokens) and their storage form.

use aws_lc_rs::{digest, rand::SecureRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

use crate::error::{Error, Result};

/// A freshly generated secret: 256 bits from the OS random number generator, base64url-encoded.
///
/// `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Generates a new secret.
    ///
    /// # Errors
    ///
    /// [`Error::Crypto`] if the OS random number generator fails.
    pub fn generate() -> Result<Secret> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Crypto("random number generation"))?;
        Ok(Secret(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Returns the plain value, to be shown once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the form stored in the database.
    pub fn stored(&self) -> String {
        hash_secret(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Hashes a secret for storage: `sha256:` followed by the lowercase hex digest.
///
/// Plain SHA-256 suffices because every secret Sesame issues carries 256 bits of entropy; user
/// passwords use Argon2id instead.
pub fn hash_secret(secret: &str) -> String {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = digest::digest(&digest::SHA256, secret.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest.as_ref() {
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Checks a presented secret against its stored form, in constant time for `sha256:` values.
///
/// A stored value is compared only in its own scheme: `sha256:` hashes and bcrypt `$2y$`/`$2b$`
/// hashes (client secrets moved from Passport). Any other stored form never matches.
pub fn verify_secret(presented: &str, stored: &str) -> bool {
    if stored.starts_with("sha256:") {
        let candidate = hash_secret(presented);
        return bool::from(candidate.as_bytes().ct_eq(stored.as_bytes()));
    }
    if is_bcrypt(stored) {
        return bcrypt::verify(presented, stored).unwrap_or(false);
    }
    false
}

/// Checks whether a stored secret is in a scheme that [`verify_secret`] compares: a `sha256:` hash or a
/// bcrypt hash. Anything else is a plain value, which never matches until `sesame hash`
/// replaces it.
pub fn is_hashed(stored: &str) -> bool {
    stored.starts_with("sha256:") || is_bcrypt(stored)
}

/// Checks whether a stored secret is a bcrypt hash, whose check is slow.
pub(crate) fn is_bcrypt(stored: &str) -> bool {
    ["$2y$", "$2b$", "$2a$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

/// Returns the base64url (no padding) encoding used throughout JOSE.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_has_256_bits() {
        let secret = Secret::generate().expect("rng works");
        assert_eq!(secret.expose().len(), 43);
        assert_ne!(
            secret.expose(),
            Secret::generate().expect("rng works").expose()
        );
    }

    #[test]
    fn hash_matches_known_digest() {
        // The well-known SHA-256 digest of "abc".
        assert_eq!(
            hash_secret("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stored_form_verifies() {
        let secret = Secret::generate().expect("rng works");
        let stored = secret.stored();
        assert!(stored.starts_with("sha256:"));
        assert!(verify_secret(secret.expose(), &stored));
        assert!(!verify_secret("wrong", &stored));
    }

    #[test]
    fn plain_stored_value_never_matches() {
        assert!(!verify_secret("abc", "abc"));
        assert!(!verify_secret("", ""));
    }

    #[test]
    fn bcrypt_stored_value_verifies() {
        let stored = bcrypt::hash("passport-secret", 4).expect("bcrypt hashes");
        let passport_form = stored.replacen("$2b$", "$2y$", 1);
        assert!(verify_secret("passport-secret", &passport_form));
        assert!(!verify_secret("other", &passport_form));
    }

    #[test]
    fn hashed_schemes_recognised() {
        assert!(is_hashed(&hash_secret("x")));
        assert!(is_hashed("$2y$10$abcdefghijklmnopqrstuv"));
        assert!(is_hashed("$2b$10$abcdefghijklmnopqrstuv"));
        assert!(is_hashed("$2a$10$abcdefghijklmnopqrstuv"));
        assert!(!is_hashed("plain-secret"));
        assert!(!is_hashed("SHA256:abc"));
        assert!(!is_hashed(""));
    }

    #[test]
    fn debug_hides_value() {
        let secret = Secret::generate().expect("rng works");
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
