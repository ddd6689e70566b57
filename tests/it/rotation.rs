//! Key rotation: `sesame keys --rotate`, promotion after `SESAME_JWKS_MAX_AGE`, retirement.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::keys::{KeyAlgorithm, SigningKey};
use sesame::store::{ClientKind, KeyRecord, KeyState};

use crate::common::{Server, data_dir, decode_parts, run_cli};

/// The JWKS max age of the test servers, in seconds.
const MAX_AGE: u64 = 60;

async fn start() -> Server {
    Server::start_with(data_dir(""), |config| {
        config.jwks_max_age = Duration::from_secs(MAX_AGE);
    })
    .await
}

fn kid_of(token: &str) -> String {
    let (header, _) = decode_parts(token);
    header["kid"].as_str().expect("kid").to_owned()
}

async fn jwks(server: &Server) -> Value {
    let response = server
        .http
        .get(server.url("/oauth/jwks"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

fn jwks_kids(document: &Value) -> Vec<String> {
    document["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn key_state(server: &Server, kid: &str) -> KeyState {
    let records = server.sesame.store().keys().await.expect("keys");
    let record = records
        .iter()
        .find(|record| record.kid == kid)
        .expect("recorded key");
    record.key_state()
}

async fn client(server: &Server) -> (String, String) {
    server.client(ClientKind::ClientCredentials, None).await
}

#[tokio::test]
async fn rotated_key_published_then_signs() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let before = server.client_token(&id, &secret, "").await;
    let primary_file = server.data_path().join("oauth-private.key");
    let primary_pem = std::fs::read(&primary_file).expect("primary key");

    let rotated = server.sesame.rotate_key(None, 2048).await.expect("rotate");

    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.alg, KeyAlgorithm::Rs256);
    assert_eq!(rotated.replaces.as_deref(), Some(old_kid.as_str()));
    assert_eq!(
        rotated.path,
        server.data_path().join(format!("{}.pem", rotated.kid))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&rotated.path)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read(&primary_file).expect("primary key"),
        primary_pem
    );
    assert_eq!(key_state(&server, &rotated.kid).await, KeyState::Next);

    let document = jwks(&server).await;
    let mut published = jwks_kids(&document);
    published.sort();
    let mut expected = [old_kid.clone(), rotated.kid.clone()];
    expected.sort();
    assert_eq!(published, expected);
    for key in document["keys"].as_array().expect("keys") {
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["use"], "sig");
        assert!(key["n"].is_string());
        assert!(key["e"].is_string());
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{private} published");
        }
    }
    let waiting = server.client_token(&id, &secret, "").await;
    assert_eq!(kid_of(&waiting), old_kid, "a next key does not sign yet");

    server.clock.advance(MAX_AGE as i64 + 1);
    let after = server.client_token(&id, &secret, "").await;

    assert_eq!(kid_of(&after), rotated.kid);
    server.sesame.refresh_keys().await.expect("refresh");
    assert_eq!(key_state(&server, &rotated.kid).await, KeyState::Current);
    assert_eq!(key_state(&server, &old_kid).await, KeyState::Previous);
    assert_eq!(jwks_kids(&jwks(&server).await).len(), 2);
    for token in [&before, &waiting, &after] {
        let (status, _, body) = server.get_with("/oauth/userinfo", token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "valid client token: {body}");
        assert!(server.sesame.authenticate_bearer(token).await.is_ok());
    }
}

#[tokio::test]
async fn due_key_signs_inside_a_transaction() {
    let server = start().await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    server.user("alice", "pw").await;
    let rotated = server.sesame.rotate_key(None, 2048).await.expect("rotate");
    server.clock.advance(MAX_AGE as i64 + 1);

    // The password grant signs inside a write transaction. A promotion that waited for that
    // transaction's lock would stall for SQLite's busy timeout of 10 s.
    let started = std::time::Instant::now();
    let (access, _) = server
        .password_tokens(&id, &secret, "alice", "pw", "")
        .await;

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(kid_of(&access), rotated.kid);
    server.sesame.refresh_keys().await.expect("refresh");
    assert_eq!(key_state(&server, &rotated.kid).await, KeyState::Current);
    assert!(server.sesame.authenticate_bearer(&access).await.is_ok());
}

#[tokio::test]
async fn second_rotation_waits_for_first() {
    let server = start().await;
    let first = server.sesame.rotate_key(None, 2048).await.expect("rotate");

    let second = server.sesame.rotate_key(None, 2048).await;

    match second {
        Err(sesame::Error::RotationPending { kid, .. }) => assert_eq!(kid, first.kid),
        other => panic!("expected RotationPending, got {other:?}"),
    }
    assert_eq!(jwks_kids(&jwks(&server).await).len(), 2);
    server.clock.advance(MAX_AGE as i64 + 1);
    server.sesame.refresh_keys().await.expect("refresh");
    let third = server.sesame.rotate_key(None, 2048).await.expect("rotate");
    assert_eq!(third.replaces.as_deref(), Some(first.kid.as_str()));
}

#[tokio::test]
async fn retired_key_tokens_rejected_at_once() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let old_token = server.client_token(&id, &secret, "").await;
    server.sesame.rotate_key(None, 2048).await.expect("rotate");
    server.clock.advance(MAX_AGE as i64 + 1);
    let new_token = server.client_token(&id, &secret, "").await;
    server.sesame.refresh_keys().await.expect("refresh");
    assert!(server.sesame.authenticate_bearer(&old_token).await.is_ok());

    let retired = server.sesame.retire_key(&old_kid).await.expect("retire");

    assert_eq!(retired.previous_state, KeyState::Previous);
    assert!(retired.promoted.is_empty());
    let error = server
        .sesame
        .authenticate_bearer(&old_token)
        .await
        .expect_err("retired key");
    assert!(matches!(error, sesame::BearerError::InvalidToken(_)));
    assert!(!jwks_kids(&jwks(&server).await).contains(&old_kid));
    let reply = server
        .post_form(
            "/oauth/introspect",
            Some((&id, &secret)),
            &[("token", &old_token)],
        )
        .await;
    assert_eq!(reply.json(), json!({"active": false}));
    assert!(server.sesame.authenticate_bearer(&new_token).await.is_ok());
}

#[tokio::test]
async fn retired_key_rejected_by_other_node_at_once() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let old_token = server.client_token(&id, &secret, "").await;
    server.sesame.rotate_key(None, 2048).await.expect("rotate");
    server.clock.advance(MAX_AGE as i64 + 1);
    server.sesame.refresh_keys().await.expect("refresh");
    let config = server.node_config();
    let other_node = sesame::Sesame::open(config).await.expect("second node");

    other_node.retire_key(&old_kid).await.expect("retire");

    let error = server.sesame.authenticate_bearer(&old_token).await;
    assert!(error.is_err(), "the first node still accepted the token");
    other_node.close().await;
}

#[tokio::test]
async fn retiring_current_key_promotes_waiting_key() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let old_token = server.client_token(&id, &secret, "").await;
    let rotated = server.sesame.rotate_key(None, 2048).await.expect("rotate");

    let retired = server.sesame.retire_key(&old_kid).await.expect("retire");

    assert_eq!(retired.previous_state, KeyState::Current);
    assert_eq!(retired.promoted, [rotated.kid.as_str()]);
    assert_eq!(key_state(&server, &rotated.kid).await, KeyState::Current);
    assert_eq!(server.sesame.signing_key().kid(), rotated.kid);
    let new_token = server.client_token(&id, &secret, "").await;
    assert_eq!(kid_of(&new_token), rotated.kid);
    assert!(server.sesame.authenticate_bearer(&old_token).await.is_err());
    assert!(server.sesame.authenticate_bearer(&new_token).await.is_ok());
}

#[tokio::test]
async fn retiring_only_key_refused() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    let kid = server.sesame.signing_key().kid().to_owned();
    let token = server.client_token(&id, &secret, "").await;

    let error = server.sesame.retire_key(&kid).await.expect_err("refused");

    assert!(
        matches!(&error, sesame::Error::LastSigningKey { kid: named } if *named == kid),
        "{error}"
    );
    assert!(
        error.to_string().contains("sesame keys --rotate"),
        "{error}"
    );
    assert_eq!(key_state(&server, &kid).await, KeyState::Current);
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());
    let unknown = server.sesame.retire_key("no-such-kid").await;
    assert!(matches!(unknown, Err(sesame::Error::NotFound { .. })));
}

#[tokio::test]
async fn purge_retires_previous_key_once_unused() {
    let server = start().await;
    let user_id = server.user("alice", "pw").await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let personal = server
        .sesame
        .create_token(user_id, "old key", &["read"])
        .await
        .expect("pat");
    server.sesame.rotate_key(None, 2048).await.expect("rotate");
    server.clock.advance(MAX_AGE as i64 + 1);
    server.sesame.refresh_keys().await.expect("refresh");
    assert_eq!(key_state(&server, &old_kid).await, KeyState::Previous);

    let options = sesame::purge::PurgeOptions::default();
    let report = server.sesame.purge(options).await.expect("purge");
    assert!(
        report.retired_keys.is_empty(),
        "the access lifetime has not passed"
    );

    server.clock.advance(3600 + 61);
    let report = server.sesame.purge(options).await.expect("purge");
    assert!(
        report.retired_keys.is_empty(),
        "a personal token still uses the key"
    );
    assert!(
        server
            .sesame
            .authenticate_bearer(&personal.access_token)
            .await
            .is_ok()
    );

    server
        .sesame
        .store()
        .revoke_personal_token(&personal.token.id, user_id, server.sesame.now())
        .await
        .expect("revoke");
    let report = server.sesame.purge(options).await.expect("purge");
    assert_eq!(report.retired_keys, [old_kid.as_str()]);
    assert_eq!(key_state(&server, &old_kid).await, KeyState::Retired);
    assert!(!jwks_kids(&jwks(&server).await).contains(&old_kid));
}

#[tokio::test]
async fn restarted_node_signs_with_rotated_key() {
    let server = start().await;
    let rotated = server.sesame.rotate_key(None, 2048).await.expect("rotate");
    server.clock.advance(MAX_AGE as i64 + 1);
    server.sesame.refresh_keys().await.expect("refresh");

    let config = server.node_config();
    let restarted = sesame::Sesame::open(config).await.expect("reopens");

    assert_eq!(restarted.signing_key().kid(), rotated.kid);
    assert!(restarted.holds_key(&rotated.kid));
    restarted.close().await;
}

#[tokio::test]
async fn rotation_keeps_algorithm_unless_told() {
    let dir = data_dir("");
    let (code, _, stderr) = run_cli(dir.path(), &["keys", "--alg", "es256"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let server = Server::start_with(dir, |_| {}).await;

    let same = server.sesame.rotate_key(None, 2048).await.expect("rotate");
    assert_eq!(same.alg, KeyAlgorithm::Es256);
    server
        .sesame
        .retire_key(&same.kid)
        .await
        .expect("retire next key");
    let other = server
        .sesame
        .rotate_key(Some(KeyAlgorithm::EdDsa), 2048)
        .await
        .expect("rotate");
    assert_eq!(other.alg, KeyAlgorithm::EdDsa);
}

#[tokio::test]
async fn maintenance_task_promotes_on_time() {
    let server = Server::start_with(data_dir(""), |config| {
        config.jwks_max_age = Duration::from_secs(1);
    })
    .await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let task = server.sesame.spawn_key_maintenance();
    let rotated = server.sesame.rotate_key(None, 2048).await.expect("rotate");

    // The stored state changes first; this node's signing key follows at its next refresh.
    let mut state = KeyState::Next;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        state = key_state(&server, &rotated.kid).await;
        if state == KeyState::Current && server.sesame.signing_key().kid() == rotated.kid {
            break;
        }
    }
    task.abort();

    assert_eq!(state, KeyState::Current, "not promoted within 10 s");
    assert_eq!(key_state(&server, &old_kid).await, KeyState::Previous);
    assert_eq!(server.sesame.signing_key().kid(), rotated.kid);
}

/// A refresh on this node runs all through a rotation. Before, it could record the new key
/// first, and the rotation then failed on the duplicate kid.
#[tokio::test]
async fn rotation_beside_constant_refreshes() {
    let server = start().await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let refresher = server.sesame.clone();
    let refreshes = tokio::spawn(async move {
        loop {
            refresher.refresh_keys().await.expect("refresh");
            tokio::task::yield_now().await;
        }
    });
    for _ in 0..20 {
        let rotated = server
            .sesame
            .rotate_key(Some(KeyAlgorithm::Es256), 2048)
            .await
            .expect("rotate");
        let records = server.sesame.store().keys().await.expect("keys");
        let record = records
            .iter()
            .find(|record| record.kid == rotated.kid)
            .expect("recorded key");
        assert_eq!(record.replaces.as_deref(), Some(old_kid.as_str()));
        server
            .sesame
            .retire_key(&rotated.kid)
            .await
            .expect("retire");
    }
    refreshes.abort();
}

/// Another node sharing the key directory may load a rotated key's file and record the key
/// before the rotating node does. The rotating node completes that record.
#[tokio::test]
async fn rotation_completes_record_made_by_other_node() {
    let server = start().await;
    let store = server.sesame.store();
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let now = server.sesame.now();
    let mut records = Vec::new();
    for state in [KeyState::Next, KeyState::Current] {
        let (key, _) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("key");
        let jwk = key.public_jwk().to_string();
        let recorded = store
            .record_key(key.kid(), "ES256", &jwk, state, now)
            .await
            .expect("record");
        assert!(recorded);
        records.push(KeyRecord {
            kid: key.kid().to_owned(),
            alg: "ES256".to_owned(),
            jwk,
            state: KeyState::Next.as_str().to_owned(),
            replaces: Some(old_kid.clone()),
            created_at: now,
            updated_at: now,
        });
    }

    let mut transaction = store.begin_write().await.expect("begin");
    let completed = store
        .insert_next_key(&mut transaction, &records[0])
        .await
        .expect("insert");
    // A kid recorded in another state is left as it is.
    let other_state = store
        .insert_next_key(&mut transaction, &records[1])
        .await
        .expect("insert");
    transaction.commit().await.expect("commit");
    assert!(completed);
    assert!(!other_state);

    let stored = store.keys().await.expect("keys");
    let find = |kid: &str| {
        stored
            .iter()
            .find(|record| record.kid == kid)
            .expect("record")
    };
    assert_eq!(
        find(&records[0].kid).replaces.as_deref(),
        Some(old_kid.as_str())
    );
    assert_eq!(find(&records[0].kid).key_state(), KeyState::Next);
    assert_eq!(find(&records[1].kid).replaces, None);
    assert_eq!(find(&records[1].kid).key_state(), KeyState::Current);
}

/// Two nodes rotate the same key at once. Before, both passed the check for a waiting key and
/// both recorded a `next` key, which later made two current keys.
#[tokio::test]
async fn concurrent_rotations_on_two_nodes_make_one_key() {
    let server = start().await;
    let other_node = sesame::Sesame::open(server.node_config())
        .await
        .expect("second node");
    let (first, second) = tokio::join!(
        server.sesame.rotate_key(None, 2048),
        other_node.rotate_key(None, 2048)
    );

    let outcomes = [first, second];
    let rotated: Vec<_> = outcomes
        .iter()
        .filter_map(|outcome| outcome.as_ref().ok())
        .collect();
    assert_eq!(rotated.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|outcome| matches!(outcome, Err(sesame::Error::RotationPending { .. }))),
        "{outcomes:?}"
    );
    let records = server.sesame.store().keys().await.expect("keys");
    let waiting = records
        .iter()
        .filter(|record| record.key_state() == KeyState::Next)
        .count();
    assert_eq!(waiting, 1);

    // The losing node's key file is removed with its rotation.
    let files = std::fs::read_dir(server.data_path())
        .expect("data dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".pem"))
        .count();
    assert_eq!(files, 1);
    other_node.close().await;
}

/// Two `next` keys that replace the same key, as concurrent rotations of older versions left:
/// the first to come due replaces it, and the other, which never signed, is retired instead
/// of becoming a second current key.
#[tokio::test]
async fn second_key_replacing_same_key_retired() {
    let server = start().await;
    let old_kid = server.sesame.signing_key().kid().to_owned();
    let store = server.sesame.store();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let (key, _) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("key");
        let now = server.sesame.now();
        let record = KeyRecord {
            kid: key.kid().to_owned(),
            alg: "ES256".to_owned(),
            jwk: key.public_jwk().to_string(),
            state: KeyState::Next.as_str().to_owned(),
            replaces: Some(old_kid.clone()),
            created_at: now,
            updated_at: now,
        };
        let mut transaction = store.begin_write().await.expect("begin");
        let inserted = store.insert_next_key(&mut transaction, &record).await;
        transaction.commit().await.expect("commit");
        assert!(inserted.expect("insert"));
        kids.push(key.kid().to_owned());
        server.clock.advance(1);
    }

    server.clock.advance(MAX_AGE as i64 + 1);
    server.sesame.refresh_keys().await.expect("refresh");
    assert_eq!(key_state(&server, &kids[0]).await, KeyState::Current);
    assert_eq!(key_state(&server, &kids[1]).await, KeyState::Retired);
    assert_eq!(key_state(&server, &old_kid).await, KeyState::Previous);
}

/// A `<kid>.pem` file that no rotation recorded, such as one left by a rotation that failed,
/// is not recorded by a refresh and verifies nothing. Before, it became a `next` key that
/// replaced nothing and then a second current key, and the node trusted it at once.
#[tokio::test]
async fn unrecorded_key_file_not_published() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    let token = server.client_token(&id, &secret, "").await;
    let (key, pem) = SigningKey::generate(KeyAlgorithm::Es256, 2048).expect("key");
    sesame::keys::write_rotated_key_file(server.data_path(), &key, &pem).expect("key file");
    server.sesame.refresh_keys().await.expect("refresh");

    // The claims of a stored token, signed with the unrecorded key.
    let (_, claims) = decode_parts(&token);
    let forged = sesame::token::jwt::sign_jws(&key, "at+jwt", &claims).expect("sign");
    assert_eq!(kid_of(&forged), key.kid());
    assert!(server.sesame.authenticate_bearer(&forged).await.is_err());

    server.clock.advance(MAX_AGE as i64 + 1);
    server.sesame.refresh_keys().await.expect("refresh");

    let records = server.sesame.store().keys().await.expect("keys");
    assert!(records.iter().all(|record| record.kid != key.kid()));
    assert!(!jwks_kids(&jwks(&server).await).contains(&key.kid().to_owned()));
    let current = records
        .iter()
        .filter(|record| record.key_state() == KeyState::Current)
        .count();
    assert_eq!(current, 1);
}

#[test]
fn cli_rotates_and_retires() {
    let dir = data_dir("");
    // A rotation waits SESAME_JWKS_MAX_AGE, read by each command when it opens the database.
    let long = [("SESAME_JWKS_MAX_AGE", "600")];
    let short = [("SESAME_JWKS_MAX_AGE", "1")];
    let (code, install, stderr) = run_cli(dir.path(), &["install", "--json"], &long);
    assert_eq!(code, 0, "{stderr}");
    let install: Value = serde_json::from_str(&install).expect("json");
    let first_kid = install["kid"].as_str().expect("kid").to_owned();

    let (code, stdout, stderr) = run_cli(dir.path(), &["keys", "--rotate", "--json"], &long);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("PRIVATE KEY"));
    assert!(!stderr.contains("PRIVATE KEY"));
    let rotated: Value = serde_json::from_str(&stdout).expect("json");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    assert_eq!(rotated["state"], "next");
    assert_eq!(rotated["replaces"], first_kid);
    assert!(dir.path().join(format!("{new_kid}.pem")).exists());

    let (code, _, stderr) = run_cli(dir.path(), &["keys", "--rotate"], &long);
    assert_eq!(code, 1);
    assert!(stderr.contains("already waiting"), "{stderr}");

    // Key times are whole seconds and a key is due once more than the max age has passed,
    // which takes up to two seconds.
    std::thread::sleep(Duration::from_millis(2100));
    let (code, stdout, stderr) = run_cli(
        dir.path(),
        &["keys", "--retire", &first_kid, "--now", "--json"],
        &short,
    );
    assert_eq!(code, 0, "{stderr}");
    let retired: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(retired["previous_state"], "previous", "promoted at open");

    let (code, _, stderr) = run_cli(
        dir.path(),
        &["keys", "--retire", &first_kid, "--now"],
        &short,
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("already retired"), "{stderr}");
    let (code, _, stderr) = run_cli(dir.path(), &["keys", "--retire", &new_kid, "--now"], &short);
    assert_eq!(code, 1);
    assert!(stderr.contains("sesame keys --rotate"), "{stderr}");
    for unknown in ["nope", "-starts-with-a-hyphen"] {
        let (code, _, stderr) =
            run_cli(dir.path(), &["keys", "--retire", unknown, "--now"], &short);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!("key not found: {unknown}")),
            "{stderr}"
        );
    }
    let (code, _, _) = run_cli(dir.path(), &["keys", "--retire", &new_kid], &short);
    assert_eq!(code, 2, "--retire needs --now");
    let (code, _, _) = run_cli(dir.path(), &["keys", "--rotate", "--force"], &short);
    assert_eq!(code, 2);

    let (code, stdout, stderr) = run_cli(dir.path(), &["token", "--user", "1", "--json"], &short);
    assert_eq!(code, 1, "no user 1 yet: {stdout}{stderr}");
    let (code, _, stderr) = run_cli(dir.path(), &["user", "add", "alice"], &short);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) =
        run_cli(dir.path(), &["token", "--user", "alice", "--json"], &short);
    assert_eq!(code, 0, "{stderr}");
    let token: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        kid_of(token["accessToken"].as_str().expect("token")),
        new_kid
    );

    let (code, stdout, stderr) = run_cli(dir.path(), &["doctor"], &short);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("key {first_kid} is retired")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("{new_kid} (current)")), "{stdout}");
}

#[tokio::test]
async fn replaced_key_file_makes_node_unready() {
    let server = start().await;
    let (id, secret) = client(&server).await;
    server.client_token(&id, &secret, "").await;
    let url = server.sesame.config().database_url.clone();

    let (code, _, stderr) = run_cli(
        server.data_path(),
        &["keys", "--force"],
        &[("SESAME_DATABASE_URL", &url)],
    );
    assert_eq!(code, 0, "{stderr}");
    server.sesame.refresh_keys().await.expect("refresh");

    let response = server
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json()["error"], "temporarily_unavailable");
    assert_eq!(response.header("cache-control"), "no-store");
    let ready = server
        .http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "no current signing key");
}
