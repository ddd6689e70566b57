//! Measures the raw signing and verification rate of one private key on this machine, the
//! references `bench/run` divides Sesame's throughput by.
//!
//! Usage: `bench_crypto KEY_PEM_FILE SECONDS`. Prints one `name rate` line per figure, in
//! operations per second:
//!
//! - `sign_1`, `sign_2`: access tokens signed with Sesame's own signing code (the key parsed
//!   once), on one thread and on two.
//! - `verify_raw_1`, `verify_raw_2`: aws-lc-rs signature checks with a public key parsed once.
//! - `verify_jwt_1`, `verify_jwt_2`: `jsonwebtoken::decode` with a `DecodingKey` built once
//!   from the public JWK (signature, issuer and audience checks). jsonwebtoken 10 rebuilds the
//!   aws-lc-rs key inside every call; Sesame's guard checks signatures with a key parsed once,
//!   as `verify_raw` does, so this figure shows what that saves.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sesame::keys::{KeyAlgorithm, SigningKey};
use sesame::token::jwt::{AccessClaims, sign};

const ISSUER: &str = "http://127.0.0.1:8080";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(seconds)) = (args.next(), args.next()) else {
        return Err("usage: bench_crypto KEY_PEM_FILE SECONDS".to_owned());
    };
    let seconds: f64 = seconds
        .parse()
        .map_err(|_| format!("SECONDS must be a number, got {seconds:?}"))?;
    let window = Duration::from_secs_f64(seconds);
    let text = std::fs::read_to_string(&path).map_err(|error| format!("{path}: {error}"))?;
    let key = Arc::new(SigningKey::from_pem(&text, &path).map_err(|error| error.to_string())?);

    let claims = sample_claims();
    let token = sign(&key, &claims).map_err(|error| error.to_string())?;
    let raw = Arc::new(RawVerifier::new(&key, &token)?);
    let jwt = Arc::new(JwtVerifier::new(&key, token)?);

    for threads in [1, 2] {
        let signer = key.clone();
        let claims = claims.clone();
        let rate = measure(threads, window, move || sign(&signer, &claims).is_ok());
        println!("sign_{threads} {rate:.0}");
    }
    for threads in [1, 2] {
        let raw = raw.clone();
        let rate = measure(threads, window, move || raw.verify());
        println!("verify_raw_{threads} {rate:.0}");
    }
    for threads in [1, 2] {
        let jwt = jwt.clone();
        let rate = measure(threads, window, move || jwt.verify());
        println!("verify_jwt_{threads} {rate:.0}");
    }
    Ok(())
}

fn sample_claims() -> AccessClaims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let now = i64::try_from(now).unwrap_or_default();
    AccessClaims {
        iss: ISSUER.to_owned(),
        sub: "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6".to_owned(),
        aud: ISSUER.to_owned(),
        client_id: "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6".to_owned(),
        jti: "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a7".to_owned(),
        iat: now,
        exp: now + 3600,
        scope: "read".to_owned(),
        scopes: vec!["read".to_owned()],
    }
}

/// Runs `operation` on `threads` threads for `window` and returns the successful operations
/// per second over all threads.
fn measure<F>(threads: usize, window: Duration, operation: F) -> f64
where
    F: Fn() -> bool + Send + Sync + Clone + 'static,
{
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let operation = operation.clone();
            std::thread::spawn(move || {
                let mut count = 0u64;
                while started.elapsed() < window {
                    if operation() {
                        count += 1;
                    }
                }
                count
            })
        })
        .collect();
    let total: u64 = workers
        .into_iter()
        .map(|worker| worker.join().unwrap_or_default())
        .sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// A signature check with aws-lc-rs alone: the public key parsed once, the signing input and
/// signature split off the token once.
struct RawVerifier {
    key: ParsedPublicKey,
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl RawVerifier {
    fn new(key: &SigningKey, token: &str) -> Result<RawVerifier, String> {
        let algorithm: &'static dyn VerificationAlgorithm = match key.alg() {
            KeyAlgorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            KeyAlgorithm::Es256 => &ECDSA_P256_SHA256_FIXED,
            KeyAlgorithm::EdDsa => &ED25519,
        };
        let spki = pem::parse(key.public_pem()).map_err(|error| error.to_string())?;
        let parsed = ParsedPublicKey::new(algorithm, spki.contents())
            .map_err(|error| format!("the public key did not parse: {error}"))?;
        let (message, signature) = token
            .rsplit_once('.')
            .ok_or("the signed token has no signature")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|error| error.to_string())?;
        let verifier = RawVerifier {
            key: parsed,
            message: message.as_bytes().to_vec(),
            signature,
        };
        if !verifier.verify() {
            return Err("the signature of a freshly signed token did not verify".to_owned());
        }
        Ok(verifier)
    }

    fn verify(&self) -> bool {
        self.key.verify_sig(&self.message, &self.signature).is_ok()
    }
}

/// `jsonwebtoken::decode` with its `DecodingKey` built once from the public JWK.
struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    token: String,
}

impl JwtVerifier {
    fn new(key: &SigningKey, token: String) -> Result<JwtVerifier, String> {
        let jwk = key.public_jwk();
        let member = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        let decoding = match key.alg() {
            KeyAlgorithm::Rs256 => {
                jsonwebtoken::DecodingKey::from_rsa_components(&member("n"), &member("e"))
            }
            KeyAlgorithm::Es256 => {
                jsonwebtoken::DecodingKey::from_ec_components(&member("x"), &member("y"))
            }
            KeyAlgorithm::EdDsa => jsonwebtoken::DecodingKey::from_ed_components(&member("x")),
        }
        .map_err(|error| error.to_string())?;
        let mut validation = jsonwebtoken::Validation::new(match key.alg() {
            KeyAlgorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
            KeyAlgorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            KeyAlgorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        });
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let verifier = JwtVerifier {
            key: decoding,
            validation,
            token,
        };
        if !verifier.verify() {
            return Err("jsonwebtoken rejected a freshly signed token".to_owned());
        }
        Ok(verifier)
    }

    fn verify(&self) -> bool {
        jsonwebtoken::decode::<serde_json::Value>(&self.token, &self.key, &self.validation).is_ok()
    }
}
