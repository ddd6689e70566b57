//! Secrets stay out of `Debug` output and out of key-loading errors.

use sesame::grant::client_auth::ClientCredentials;
use sesame::store::{ClientKind, DeviceCodeRecord, DeviceStatus, NewClient, SessionRecord};
use sesame::token::secret::Secret;
use sesame::{Config, Sesame};

use crate::common::{Server, data_dir, run_cli};

/// The base64 body of a PEM block that is not a key. No output may contain it.
const KEY_BODY: &str = "c2VjcmV0LWtleS1tYXRlcmlhbC1kby1ub3QtcHJpbnQtdGhpcy1pbi1lcnJvcnM=";

fn armored(tag: &str) -> String {
    format!("-----BEGIN {tag}-----\n{KEY_BODY}\n-----END {tag}-----\n")
}

/// Private key texts that must be rejected without being echoed.
fn bad_keys() -> Vec<(&'static str, String)> {
    vec![
        ("garbage in PKCS#8 armor", armored("PRIVATE KEY")),
        ("garbage in PKCS#1 armor", armored("RSA PRIVATE KEY")),
        ("garbage in SEC 1 armor", armored("EC PRIVATE KEY")),
        ("a public key block", armored("PUBLIC KEY")),
        ("text without armor", format!("{KEY_BODY}\n")),
        (
            "unterminated armor",
            format!("-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n"),
        ),
    ]
}

#[test]
fn bad_key_file_not_echoed() {
    for (case, text) in bad_keys() {
        let dir = data_dir("");
        let path = dir.path().join("oauth-private.key");
        std::fs::write(&path, &text).expect("write key file");
        let (code, stdout, stderr) = run_cli(dir.path(), &["user", "list"], &[]);
        assert_eq!(code, 1, "{case}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{case}: the error does not name the key file: {stderr}"
        );
        assert!(!stderr.contains(KEY_BODY), "{case}: stderr echoes the key");
        assert!(!stdout.contains(KEY_BODY), "{case}: stdout echoes the key");
    }
}

#[test]
fn bad_key_file_variable_not_echoed() {
    let dir = data_dir("");
    let path = dir.path().join("elsewhere.pem");
    std::fs::write(&path, armored("PRIVATE KEY")).expect("write key file");
    let path_text = path.display().to_string();
    let env = [("SESAME_PRIVATE_KEY_FILE", path_text.as_str())];
    let (code, stdout, stderr) = run_cli(dir.path(), &["user", "list"], &env);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&path_text), "{stderr}");
    assert!(!stderr.contains(KEY_BODY), "stderr echoes the key");
    assert!(!stdout.contains(KEY_BODY), "stdout echoes the key");
}

#[test]
fn bad_key_variable_not_echoed() {
    for (case, text) in bad_keys() {
        let dir = data_dir("");
        let env = [("SESAME_PRIVATE_KEY", text.as_str())];
        let (code, stdout, stderr) = run_cli(dir.path(), &["user", "list"], &env);
        assert_eq!(code, 1, "{case}: {stderr}");
        assert!(stderr.contains("SESAME_PRIVATE_KEY"), "{case}: {stderr}");
        assert!(!stderr.contains(KEY_BODY), "{case}: stderr echoes the key");
        assert!(!stdout.contains(KEY_BODY), "{case}: stdout echoes the key");
    }
}

#[tokio::test]
async fn bad_key_error_not_echoed_by_library() {
    for (case, text) in bad_keys() {
        let dir = data_dir("");
        let mut config = Config::for_data_dir(dir.path()).expect("config");
        config.private_key_pem = Some(text);
        let error = Sesame::open(config).await.expect_err(case);
        assert!(
            !error.to_string().contains(KEY_BODY),
            "{case}: Display echoes the key"
        );
        assert!(
            !format!("{error:?}").contains(KEY_BODY),
            "{case}: Debug echoes the key"
        );
    }
}

#[test]
fn config_debug_hides_secrets() {
    let dir = data_dir("");
    let mut config = Config::for_data_dir(dir.path()).expect("config");
    config.database_url = "postgres://sesame:hunter2-db-password@127.0.0.1:5432/sesame".into();
    config.private_key_pem = Some(armored("PRIVATE KEY"));
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2-db-password"), "{debug}");
    assert!(!debug.contains(KEY_BODY), "{debug}");

    let overrides = sesame::config::Overrides {
        database_url: Some(config.database_url.clone()),
        ..Default::default()
    };
    let debug = format!("{overrides:?}");
    assert!(!debug.contains("hunter2-db-password"), "{debug}");
}

#[test]
fn secret_debug_hides_value() {
    let secret = Secret::generate().expect("secret");
    let debug = format!("{secret:?}");
    assert!(!debug.contains(secret.expose()), "{debug}");
}

#[tokio::test]
async fn client_records_debug_hide_secrets() {
    let server = Server::start().await;
    let (client, secret) =
        sesame::install::create_client(&server.sesame, ClientKind::ClientCredentials, "c", None)
            .await
            .expect("client");
    let secret = secret.expect("a confidential client has a secret");
    let stored = client.secret_hash.clone().expect("stored hash");
    for debug in [format!("{client:?}"), format!("{secret:?}")] {
        assert!(!debug.contains(secret.expose()), "{debug}");
        assert!(!debug.contains(&stored), "{debug}");
    }

    let credentials = ClientCredentials {
        client_id: client.id.clone(),
        secret: Some(secret.expose().to_owned()),
        via_basic: true,
    };
    let debug = format!("{credentials:?}");
    assert!(!debug.contains(secret.expose()), "{debug}");

    let new_client = NewClient {
        id: "id".into(),
        name: "name".into(),
        secret_hash: Some(stored.clone()),
        redirect_uris: Vec::new(),
        grant_types: Vec::new(),
        scopes: None,
        personal_access_client: false,
        password_client: false,
        first_party: false,
        require_pkce: true,
        user_id: None,
        audience: None,
    };
    let debug = format!("{new_client:?}");
    assert!(!debug.contains(&stored), "{debug}");
}

#[tokio::test]
async fn token_debug_hides_token() {
    let server = Server::start().await;
    let user = server.user("alice", "correct horse").await;
    let created = server
        .sesame
        .create_token(user, "debug test", &["read"])
        .await
        .expect("token");
    let debug = format!("{created:?}");
    assert!(!debug.contains(&created.access_token), "{debug}");
}

#[test]
fn session_and_device_debug_hide_codes() {
    let session = SessionRecord {
        id_hash: "hash".into(),
        user_id: Some(1),
        csrf_token: "csrf-token-value-0123456789".into(),
        auth_time: None,
        expires_at: 0,
    };
    let debug = format!("{session:?}");
    assert!(!debug.contains("csrf-token-value-0123456789"), "{debug}");

    let device = DeviceCodeRecord {
        id: "id".into(),
        user_code: "WDJBMJHT".into(),
        client_id: "client".into(),
        scopes: Vec::new(),
        user_id: None,
        status: DeviceStatus::Pending,
        poll_interval: 5,
        last_polled_at: None,
        auth_time: None,
        expires_at: 0,
    };
    let debug = format!("{device:?}");
    assert!(!debug.contains("WDJBMJHT"), "{debug}");
}
