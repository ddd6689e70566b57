//! Signing keys: generation, loading from files or the environment, `kid` thumbprints and the
//! public JWK form that verifiers use.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::token::secret::b64;

/// File name of the first private key in the key directory (Laravel Passport's name).
pub const PRIVATE_KEY_FILE: &str = "oauth-private.key";
/// File name of the first public key in the key directory (Laravel Passport's name).
pub const PUBLIC_KEY_FILE: &str = "oauth-public.key";

/// A JWS signing algorithm Sesame can issue tokens with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA with P-256 and SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl KeyAlgorithm {
    /// Returns the JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::Es256 => "ES256",
            KeyAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name or the CLI spelling (`rs256`, `es256`, `eddsa`).
    pub fn parse(text: &str) -> Option<KeyAlgorithm> {
        match text.to_ascii_lowercase().as_str() {
            "rs256" => Some(KeyAlgorithm::Rs256),
            "es256" => Some(KeyAlgorithm::Es256),
            "eddsa" => Some(KeyAlgorithm::EdDsa),
            _ => None,
        }
    }
}

enum KeyPair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private signing key, parsed once and kept for the life of the process.
///
/// `Debug` shows only the `kid` and algorithm.
pub struct SigningKey {
    pair: KeyPair,
    alg: KeyAlgorithm,
    kid: String,
    jwk: Value,
    /// The encoded JWS header of the access tokens this key signs, the same for each one.
    access_token_header: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl SigningKey {
    /// Generates a new key. `rsa_bits` is 2048, 3072 or 4096 and applies to RS256 only.
    /// Returns the key and its PKCS#8 PEM text. RSA generation takes up to seconds, so call this
    /// off the async runtime.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an unsupported RSA size, [`Error::Crypto`] if generation
    /// fails.
    pub fn generate(alg: KeyAlgorithm, rsa_bits: u32) -> Result<(SigningKey, String)> {
        let der: Vec<u8> = match alg {
            KeyAlgorithm::Rs256 => {
                let size = match rsa_bits {
                    2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
                    3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
                    4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
                    other => {
                        return Err(Error::InvalidInput(format!(
                            "RSA key length must be 2048, 3072 or 4096 bits, got {other}"
                        )));
                    }
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| Error::Crypto("RSA keygen"))?;
                let der: Pkcs8V1Der<'static> = pair
                    .as_der()
                    .map_err(|_| Error::Crypto("RSA key encoding"))?;
                der.as_ref().to_vec()
            }
            KeyAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| Error::Crypto("EC keygen"))?;
                let document = pair
                    .to_pkcs8v1()
                    .map_err(|_| Error::Crypto("EC key encoding"))?;
                document.as_ref().to_vec()
            }
            KeyAlgorithm::EdDsa => {
                let pair =
                    Ed25519KeyPair::generate().map_err(|_| Error::Crypto("Ed25519 keygen"))?;
                let document = pair
                    .to_pkcs8v1()
                    .map_err(|_| Error::Crypto("Ed25519 key encoding"))?;
                document.as_ref().to_vec()
            }
        };
        let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", der.clone()));
        let key = Self::from_der(&der, "PRIVATE KEY", "a generated key")?;
        Ok((key, pem_text))
    }

    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC 1
    /// (`EC PRIVATE KEY`). `origin` names the file or variable in error messages; the key text
    /// itself is never included.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if the text is not a supported private key.
    pub fn from_pem(text: &str, origin: &str) -> Result<SigningKey> {
        let parsed = pem::parse(text.trim()).map_err(|_| Error::InvalidKey {
            origin: origin.to_owned(),
            reason: "not PEM-encoded".to_owned(),
        })?;
        Self::from_der(parsed.contents(), parsed.tag(), origin)
    }

    fn from_der(der: &[u8], tag: &str, origin: &str) -> Result<SigningKey> {
        let invalid = |reason: &str| Error::InvalidKey {
            origin: origin.to_owned(),
            reason: reason.to_owned(),
        };
        let pair = match tag {
            "RSA PRIVATE KEY" => KeyPair::Rsa(
                RsaKeyPair::from_der(der).map_err(|_| invalid("malformed PKCS#1 RSA key"))?,
            ),
            "EC PRIVATE KEY" => KeyPair::Ec(
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| invalid("not a P-256 EC private key"))?,
            ),
            "PRIVATE KEY" => {
                if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                    KeyPair::Rsa(pair)
                } else if let Ok(pair) =
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                {
                    KeyPair::Ec(pair)
                } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
                    KeyPair::Ed(pair)
                } else {
                    return Err(invalid("not an RSA, P-256 or Ed25519 PKCS#8 private key"));
                }
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid(
                    "encrypted keys are not supported; decrypt it first",
                ));
            }
            other => return Err(invalid(&format!("unexpected PEM block {other:?}"))),
        };
        if let KeyPair::Rsa(rsa) = &pair
            && rsa.public_modulus_len() < 256
        {
            return Err(invalid("RSA keys must have at least 2048 bits"));
        }
        let (alg, jwk) = public_jwk(&pair);
        let kid = thumbprint(&jwk);
        let mut jwk = jwk;
        jwk["kid"] = Value::String(kid.clone());
        jwk["use"] = Value::String("sig".to_owned());
        jwk["alg"] = Value::String(alg.name().to_owned());
        let mut key = SigningKey {
            pair,
            alg,
            kid,
            jwk,
            access_token_header: String::new(),
            rng: SystemRandom::new(),
        };
        key.access_token_header = crate::token::jwt::encode_header(&key, "at+jwt");
        Ok(key)
    }

    /// The RFC 7638 thumbprint that names this key in token headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Returns the base64url-encoded JWS header of access tokens: `alg`, `typ: at+jwt`, `kid`.
    pub(crate) fn access_token_header(&self) -> &str {
        &self.access_token_header
    }

    /// Returns the modulus length in bits of an RSA key, and `None` for other keys.
    pub fn rsa_bits(&self) -> Option<u32> {
        match &self.pair {
            KeyPair::Rsa(pair) => u32::try_from(pair.public_modulus_len() * 8).ok(),
            KeyPair::Ec(_) | KeyPair::Ed(_) => None,
        }
    }

    /// The signing algorithm.
    pub fn alg(&self) -> KeyAlgorithm {
        self.alg
    }

    /// The public key as a JWK with `kid`, `use` and `alg`; never any private member.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as SubjectPublicKeyInfo PEM (`PUBLIC KEY`).
    pub fn public_pem(&self) -> String {
        let der: Option<Vec<u8>> = match &self.pair {
            KeyPair::Rsa(pair) => pair.public_key().as_der().ok().map(|d| d.as_ref().to_vec()),
            KeyPair::Ec(pair) => pair.public_key().as_der().ok().map(|d| d.as_ref().to_vec()),
            KeyPair::Ed(pair) => pair.public_key().as_der().ok().map(|d| d.as_ref().to_vec()),
        };
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.unwrap_or_default()))
    }

    /// Signs `message` and returns the JWS signature bytes.
    ///
    /// # Errors
    ///
    /// [`Error::Crypto`] if the crypto library fails.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        match &self.pair {
            KeyPair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| Error::Crypto("RSA signing"))?;
                Ok(signature)
            }
            KeyPair::Ec(pair) => pair
                .sign(&self.rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| Error::Crypto("ECDSA signing")),
            KeyPair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

fn public_jwk(pair: &KeyPair) -> (KeyAlgorithm, Value) {
    match pair {
        KeyPair::Rsa(pair) => {
            let public = pair.public_key();
            let jwk = json!({
                "kty": "RSA",
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            });
            (KeyAlgorithm::Rs256, jwk)
        }
        KeyPair::Ec(pair) => {
            // The public key is the uncompressed point 0x04 || x || y.
            let point = pair.public_key().as_ref();
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(&point[1..33]),
                "y": b64(&point[33..65]),
            });
            (KeyAlgorithm::Es256, jwk)
        }
        KeyPair::Ed(pair) => {
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
            (KeyAlgorithm::EdDsa, jwk)
        }
    }
}

/// Computes the RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic
/// order, base64url-encoded.
fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("RSA") => &["e", "kty", "n"],
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let mut canonical = String::from("{");
    for (index, member) in members.iter().enumerate() {
        if index > 0 {
            canonical.push(',');
        }
        let value = jwk[*member].as_str().unwrap_or_default();
        canonical.push_str(&format!("\"{member}\":\"{value}\""));
    }
    canonical.push('}');
    b64(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// A published public key, parsed once into aws-lc-rs's form so that checking a signature
/// parses nothing. (`jsonwebtoken::decode` rebuilds the aws-lc-rs key from its `DecodingKey`
/// on every call, which made RS256 verification about 1.8 times slower.)
pub(crate) struct VerifyingKey {
    alg: KeyAlgorithm,
    key: ParsedPublicKey,
}

impl VerifyingKey {
    /// Builds the key from a stored public JWK.
    ///
    /// Returns `None` for a JWK of an unsupported type or with malformed members.
    pub(crate) fn from_jwk(jwk: &Value) -> Option<VerifyingKey> {
        let alg = KeyAlgorithm::parse(jwk["alg"].as_str()?)?;
        let member = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str()?).ok();
        let key = match (alg, jwk["kty"].as_str()?) {
            (KeyAlgorithm::Rs256, "RSA") => {
                let (modulus, exponent) = (member("n")?, member("e")?);
                let public = pkcs1::RsaPublicKey {
                    modulus: pkcs1::UintRef::new(&modulus).ok()?,
                    public_exponent: pkcs1::UintRef::new(&exponent).ok()?,
                };
                let der = pkcs1::der::Encode::to_der(&public).ok()?;
                ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der).ok()?
            }
            (KeyAlgorithm::Es256, "EC") => {
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                // The uncompressed SEC 1 point: 0x04, then x and y.
                let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok()?
            }
            (KeyAlgorithm::EdDsa, "OKP") => ParsedPublicKey::new(&ED25519, member("x")?).ok()?,
            _ => return None,
        };
        Some(VerifyingKey { alg, key })
    }

    /// The algorithm this key verifies, whatever a token's header claims.
    pub(crate) fn alg(&self) -> KeyAlgorithm {
        self.alg
    }

    /// Checks a JWS signature over `signing_input` (the header and payload segments).
    pub(crate) fn verify(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(signing_input, signature).is_ok()
    }
}

/// Where the signing key came from, for messages and `doctor`.
#[derive(Debug, Clone)]
pub enum KeyOrigin {
    /// `SESAME_PRIVATE_KEY`.
    Environment,
    /// A file: `SESAME_PRIVATE_KEY_FILE` or the key directory.
    File(PathBuf),
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Environment => f.write_str("SESAME_PRIVATE_KEY"),
            KeyOrigin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A loaded key with where it came from and any warnings about its file.
#[derive(Debug)]
pub struct LoadedKey {
    /// The key.
    pub key: SigningKey,
    /// Where it came from.
    pub origin: KeyOrigin,
    /// Problems that do not stop Sesame, such as a world-readable key file.
    pub warnings: Vec<String>,
}

/// Loads the signing key from `SESAME_PRIVATE_KEY`, `SESAME_PRIVATE_KEY_FILE` or the key
/// directory, in that order, and checks the matching public key where one is given.
///
/// Returns `Ok(None)` when no key is configured anywhere.
///
/// # Errors
///
/// [`Error::InvalidKey`] for a malformed key or a public key from another pair,
/// [`Error::Io`] for an unreadable file.
pub fn load(config: &Config) -> Result<Option<LoadedKey>> {
    let mut warnings = Vec::new();
    let (key, origin, public_pem, public_origin) = if let Some(text) = &config.private_key_pem {
        let key = SigningKey::from_pem(text, "SESAME_PRIVATE_KEY")?;
        (
            key,
            KeyOrigin::Environment,
            config.public_key_pem.clone(),
            "SESAME_PUBLIC_KEY".into(),
        )
    } else {
        let path = match &config.private_key_file {
            Some(path) => path.clone(),
            None => config.keys_dir.join(PRIVATE_KEY_FILE),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if config.private_key_file.is_some() {
                    return Err(Error::Io {
                        action: "cannot read",
                        path,
                        source: error,
                    });
                }
                return Ok(None);
            }
            Err(source) => {
                return Err(Error::Io {
                    action: "cannot read",
                    path,
                    source,
                });
            }
        };
        if let Some(warning) = permission_warning(&path) {
            warnings.push(warning);
        }
        let key = SigningKey::from_pem(&text, &path.display().to_string())?;
        let public_path = match &config.private_key_file {
            Some(_) => None,
            None => Some(config.keys_dir.join(PUBLIC_KEY_FILE)),
        };
        let public_pem = match &public_path {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(Error::Io {
                        action: "cannot read",
                        path: path.clone(),
                        source,
                    });
                }
            },
            None => None,
        };
        let public_origin = public_path
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        (key, KeyOrigin::File(path), public_pem, public_origin)
    };
    if let Some(public_pem) = public_pem
        && normalize_pem(&public_pem) != normalize_pem(&key.public_pem())
    {
        return Err(Error::KeyPairMismatch {
            origin: public_origin,
        });
    }
    Ok(Some(LoadedKey {
        key,
        origin,
        warnings,
    }))
}

fn normalize_pem(text: &str) -> Option<Vec<u8>> {
    pem::parse(text.trim())
        .ok()
        .map(|parsed| parsed.contents().to_vec())
}

/// Returns a warning naming the `chmod` when a key file is readable by others.
pub fn permission_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(format!(
                "private key {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    let _ = path;
    None
}

/// Writes a key pair into the key directory as `oauth-private.key` (mode 0600) and
/// `oauth-public.key`. Refuses to replace existing files unless `force` is set.
///
/// # Errors
///
/// [`Error::KeysExist`] without `force` when a key file exists; [`Error::Io`] on write
/// failures.
pub fn write_key_files(dir: &Path, key: &SigningKey, private_pem: &str, force: bool) -> Result<()> {
    let private_path = dir.join(PRIVATE_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    if !force && (private_path.exists() || public_path.exists()) {
        return Err(Error::KeysExist {
            dir: dir.to_owned(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "cannot create",
        path: dir.to_owned(),
        source,
    })?;
    write_private_file(&private_path, private_pem, force)?;
    std::fs::write(&public_path, key.public_pem()).map_err(|source| Error::Io {
        action: "cannot write",
        path: public_path,
        source,
    })?;
    Ok(())
}

/// Returns the path of a key made by a rotation: `<kid>.pem` in the key directory.
pub fn rotated_key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// Writes a key made by a rotation as `<kid>.pem` (mode 0600) in the key directory. Never
/// replaces an existing file. Returns the path.
///
/// # Errors
///
/// [`Error::KeysExist`] when the file exists; [`Error::Io`] on write failures.
pub fn write_rotated_key_file(dir: &Path, key: &SigningKey, private_pem: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "cannot create",
        path: dir.to_owned(),
        source,
    })?;
    let path = rotated_key_path(dir, key.kid());
    write_private_file(&path, private_pem, false)?;
    Ok(path)
}

/// Loads the keys made by a rotation: the `<kid>.pem` files in the key directory whose
/// contents have that kid, except the kids `skip` accepts. Files that cannot be read or
/// parsed, or whose kid does not match their name, are skipped with a warning, so one stray
/// file never stops a start.
pub fn load_rotated(dir: &Path, skip: impl Fn(&str) -> bool) -> Vec<LoadedKey> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), %error, "cannot list the key directory");
            }
            return Vec::new();
        }
    };
    let mut loaded = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(kid) = rotated_key_kid(&path) else {
            continue;
        };
        if skip(kid) {
            continue;
        }
        match load_rotated_file(&path, kid) {
            Ok(key) => loaded.push(key),
            Err(reason) => tracing::warn!(path = %path.display(), "skipped key file: {reason}"),
        }
    }
    loaded.sort_by(|a, b| a.key.kid().cmp(b.key.kid()));
    loaded
}

/// Returns the kid a file name like `<kid>.pem` claims, when it could be a thumbprint.
fn rotated_key_kid(path: &Path) -> Option<&str> {
    if path.extension()? != "pem" {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    // An RFC 7638 SHA-256 thumbprint is 43 base64url characters.
    let plausible = stem.len() == 43
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some(stem)
}

fn load_rotated_file(path: &Path, kid: &str) -> std::result::Result<LoadedKey, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    let key =
        SigningKey::from_pem(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
    if key.kid() != kid {
        return Err(format!(
            "its key has kid {}, not the file name's",
            key.kid()
        ));
    }
    let warnings = permission_warning(path).into_iter().collect();
    Ok(LoadedKey {
        key,
        origin: KeyOrigin::File(path.to_owned()),
        warnings,
    })
}

/// Writes a private key through a temporary file created with mode 0600, then moves it into
/// place, so the key is never readable by others and never half-written. Without `force` the
/// move is a hard link, which fails if another process created the key first.
fn write_private_file(path: &Path, contents: &str, force: bool) -> Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let io_error = |source| Error::Io {
        action: "cannot write",
        path: temporary.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temporary).map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    if force {
        return std::fs::rename(&temporary, path).map_err(|source| Error::Io {
            action: "cannot write",
            path: path.to_owned(),
            source,
        });
    }
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::KeysExist {
            dir: path.parent().unwrap_or(path).to_owned(),
        }),
        Err(source) => Err(Error::Io {
            action: "cannot write",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The example key from RFC 7638 section 3.1.
        let jwk = json!({
            "kty": "RSA",
            "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(
            thumbprint(&jwk),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for alg in [
            KeyAlgorithm::Es256,
            KeyAlgorithm::EdDsa,
            KeyAlgorithm::Rs256,
        ] {
            let (key, pem_text) = SigningKey::generate(alg, 2048).expect("generates");
            let parsed = SigningKey::from_pem(&pem_text, "test").expect("parses");
            assert_eq!(parsed.kid(), key.kid());
            assert_eq!(parsed.alg(), alg);
            assert!(VerifyingKey::from_jwk(key.public_jwk()).is_some());
        }
    }

    #[test]
    fn jwk_has_no_private_members() {
        let (key, _) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("generates");
        let jwk = key.public_jwk();
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(member).is_none(), "{member} leaked");
        }
        assert_eq!(jwk["use"], "sig");
    }

    #[test]
    fn malformed_pem_error_hides_contents() {
        let text =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----";
        let error = SigningKey::from_pem(text, "SESAME_PRIVATE_KEY").expect_err("rejected");
        let message = error.to_string();
        assert!(message.contains("SESAME_PRIVATE_KEY"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
    }

    #[test]
    fn garbage_is_not_pem() {
        let error = SigningKey::from_pem("hunter2 secret", "X").expect_err("rejected");
        assert!(!error.to_string().contains("hunter2"));
    }
}
