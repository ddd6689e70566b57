//! Signing keys from the command line and the environment.

use base64::Engine as _;

use crate::common::{Server, data_dir, run_cli};

#[test]
fn keys_refuses_overwrite_without_force() {
    let dir = data_dir("");
    let (code, stdout, stderr) = run_cli(dir.path(), &["keys"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
    let before = std::fs::read(dir.path().join("oauth-private.key")).expect("key");
    let (code, stdout, stderr) = run_cli(dir.path(), &["keys"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(!stdout.contains("PRIVATE KEY") && !stderr.contains("PRIVATE KEY"));
    assert_eq!(
        before,
        std::fs::read(dir.path().join("oauth-private.key")).expect("key")
    );
    let (code, _, stderr) = run_cli(dir.path(), &["keys", "--force", "--alg", "es256"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(
        before,
        std::fs::read(dir.path().join("oauth-private.key")).expect("key")
    );
}

#[cfg(unix)]
#[test]
fn private_key_written_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = data_dir("");
    let (code, _, _) = run_cli(dir.path(), &["keys", "--alg", "eddsa"], &[]);
    assert_eq!(code, 0);
    let mode = std::fs::metadata(dir.path().join("oauth-private.key"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[cfg(unix)]
#[test]
fn world_readable_key_warns_with_chmod() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = data_dir("");
    let (code, _, _) = run_cli(dir.path(), &["keys", "--alg", "es256"], &[]);
    assert_eq!(code, 0);
    let key = dir.path().join("oauth-private.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, stdout, _) = run_cli(dir.path(), &["doctor"], &[]);
    assert_eq!(code, 1);
    assert!(stdout.contains("chmod 600"), "{stdout}");
}

#[test]
fn mismatched_pair_refuses_start() {
    let dir = data_dir("");
    let other = data_dir("");
    run_cli(dir.path(), &["keys", "--alg", "es256"], &[]);
    run_cli(other.path(), &["keys", "--alg", "es256"], &[]);
    std::fs::copy(
        other.path().join("oauth-public.key"),
        dir.path().join("oauth-public.key"),
    )
    .expect("copy");
    let (code, _, stderr) = run_cli(dir.path(), &["user", "list"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("does not belong"), "{stderr}");
    assert!(stderr.contains("sesame keys --force"), "{stderr}");
}

#[test]
fn malformed_pem_in_environment_not_echoed() {
    let dir = data_dir("");
    let secret_body = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtcHJpbnQ=";
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{secret_body}\n-----END PRIVATE KEY-----\n");
    let (code, stdout, stderr) = run_cli(
        dir.path(),
        &["user", "list"],
        &[("SESAME_PRIVATE_KEY", &pem)],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("SESAME_PRIVATE_KEY"), "{stderr}");
    assert!(!stderr.contains(secret_body) && !stdout.contains(secret_body));
    assert!(
        !dir.path().join("oauth-private.key").exists(),
        "no key generated beside a bad one"
    );
}

#[test]
fn key_from_environment_used() {
    let dir = data_dir("");
    let source = data_dir("");
    run_cli(source.path(), &["keys", "--alg", "es256"], &[]);
    let pem = std::fs::read_to_string(source.path().join("oauth-private.key")).expect("pem");
    let env = [("SESAME_PRIVATE_KEY", pem.as_str())];
    let (code, stdout, stderr) = run_cli(dir.path(), &["doctor", "--json"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("loaded from SESAME_PRIVATE_KEY"),
        "{stdout}"
    );
    assert!(!dir.path().join("oauth-private.key").exists());
}

/// Returns the size in bits of the RSA modulus in the public key file of `dir`.
fn public_key_bits(dir: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(dir.join("oauth-public.key")).expect("public key");
    let pem = pem::parse(text).expect("PEM");
    assert_eq!(pem.tag(), "PUBLIC KEY");
    aws_lc_rs::rsa::PublicEncryptingKey::from_der(pem.contents())
        .expect("an RSA public key")
        .key_size_bits()
}

#[test]
fn keys_default_to_rsa_2048() {
    let dir = data_dir("");
    let (code, _, stderr) = run_cli(dir.path(), &["keys"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(public_key_bits(dir.path()), 2048);
    // Off a terminal the progress line has no dots, only its start and its end.
    let progress = format!(
        "Generating an RSA-2048 signing key in {} done",
        dir.path().display()
    );
    assert_eq!(stderr.lines().collect::<Vec<_>>(), [progress.as_str()]);
}

#[tokio::test]
async fn keys_length_4096_makes_4096_bit_key() {
    let dir = data_dir("");
    let (code, stdout, stderr) = run_cli(dir.path(), &["keys", "--length", "4096", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(public_key_bits(dir.path()), 4096);
    let progress = format!(
        "Generating an RSA-4096 signing key in {} done",
        dir.path().display()
    );
    assert_eq!(stderr.lines().collect::<Vec<_>>(), [progress.as_str()]);
    let output: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(output["alg"], "RS256");

    let kid = output["kid"].as_str().expect("kid").to_owned();

    let server = Server::start_with(dir, |_| {}).await;
    let jwks: serde_json::Value = server
        .http
        .get(server.url("/oauth/jwks"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let published = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("{kid} not in {jwks}"));
    let modulus = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(published["n"].as_str().expect("n"))
        .expect("base64url");
    assert_eq!(modulus.len(), 512, "4096 bits");
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &[]).await;
    let (status, _, _) = server.get_with("/oauth/userinfo", &token).await;
    assert_eq!(status, reqwest::StatusCode::OK, "the 4096-bit key signs");
}

#[test]
fn rotation_keeps_rsa_length() {
    let dir = data_dir("");
    let (code, _, stderr) = run_cli(dir.path(), &["keys", "--length", "3072"], &[]);
    assert_eq!(code, 0, "{stderr}");

    let (code, stdout, stderr) = run_cli(dir.path(), &["keys", "--rotate", "--json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let output: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(output["alg"], "RS256");
    let path = output["private_key"].as_str().expect("private key path");
    let text = std::fs::read_to_string(path).expect("rotated key file");
    let key = sesame::keys::SigningKey::from_pem(&text, path).expect("a private key");
    assert_eq!(key.rsa_bits(), Some(3072));
}
