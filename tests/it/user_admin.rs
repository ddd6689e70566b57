//! `sesame user disable`, `enable` and `password`: what each ends at once, over real HTTP and
//! the real binary.

use std::io::Write as _;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;
use sesame::store::ClientKind;

use crate::browser::Browser;
use crate::common::{Server, jti, sesame_bin};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Runs `sesame user ARGS` against the server's database, with `stdin` as standard input.
/// Returns the exit code, stdout and stderr.
fn user_cli(server: &Server, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut command = Command::new(sesame_bin());
    command
        .arg("--data-dir")
        .arg(server.data_path())
        .arg("user")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, _) in std::env::vars() {
        if name.starts_with("SESAME_") {
            command.env_remove(name);
        }
    }
    command.env("SESAME_DATABASE_URL", &server.sesame.config().database_url);
    let mut child = command.spawn().expect("sesame runs");
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    // A command rejected before it reads stdin (a usage error, an unknown user) may exit
    // first, and then the pipe is closed.
    if let Err(error) = written {
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::BrokenPipe,
            "write stdin: {error}"
        );
    }
    let output = child.wait_with_output().expect("sesame exits");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Everything a signed-in user holds: tokens of each kind, a browser session and a device
/// code approved but not yet exchanged.
struct Holdings {
    access: String,
    refresh: String,
    pat: String,
    browser: Browser,
    device_client: String,
    device_code: String,
}

async fn hold_everything(server: &Server, password_client: (&str, &str)) -> Holdings {
    let user_id = server.sesame.find_user("alice").await.expect("alice").id;
    let (access, refresh) = server
        .password_tokens(
            password_client.0,
            password_client.1,
            "alice",
            "old pw",
            "read",
        )
        .await;
    let pat = server.pat(user_id, &["sesame:account"]).await;
    let browser = Browser::new(server);
    let signed_in = browser.sign_in("alice", "old pw", "/account/tokens").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );

    let (device_client, _) = server.client(ClientKind::Device, None).await;
    let started: Value = server
        .http
        .post(server.url("/oauth/device/code"))
        .form(&[("client_id", device_client.as_str()), ("scope", "read")])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let device_code = started["device_code"].as_str().expect("device_code");
    let user_code = started["user_code"].as_str().expect("user_code");
    let csrf = browser.get("/oauth/device").await.field("_csrf");
    let confirm = browser
        .post(
            "/oauth/device",
            &[("_csrf", &csrf), ("user_code", user_code)],
        )
        .await;
    let approved = browser
        .post(
            "/oauth/device",
            &[
                ("_csrf", &csrf),
                ("user_code", &confirm.field("user_code")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    Holdings {
        access,
        refresh,
        pat,
        browser,
        device_client,
        device_code: device_code.to_owned(),
    }
}

async fn poll_device(server: &Server, holdings: &Holdings) -> (StatusCode, Value) {
    let response = server
        .http
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", DEVICE_GRANT),
            ("device_code", holdings.device_code.as_str()),
            ("client_id", holdings.device_client.as_str()),
        ])
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn password_grant(
    server: &Server,
    client: (&str, &str),
    password: &str,
) -> (StatusCode, Value) {
    server
        .token(
            client.0,
            client.1,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", password),
            ],
        )
        .await
}

async fn refresh(server: &Server, client: (&str, &str), token: &str) -> (StatusCode, Value) {
    server
        .token(
            client.0,
            client.1,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await
}

#[tokio::test]
async fn disable_ends_every_kind_of_access() {
    let server = Server::start().await;
    server.user("alice", "old pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let client = (id.as_str(), secret.as_str());
    let holdings = hold_everything(&server, client).await;

    let (code, stdout, stderr) = user_cli(&server, &["disable", "alice", "--json"], "");
    assert_eq!(code, 0, "{stderr}");
    let output: Value = serde_json::from_str(&stdout).expect("json output");
    assert_eq!(output["ended"]["access_tokens"], 2, "{stdout}");
    assert_eq!(output["ended"]["refresh_tokens"], 1, "{stdout}");
    assert_eq!(output["ended"]["sessions"], 1, "{stdout}");

    let (status, _, _) = server
        .get_with("/oauth/personal-access-tokens", &holdings.pat)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        server
            .sesame
            .authenticate_bearer(&holdings.access)
            .await
            .is_err()
    );
    let (status, body) = refresh(&server, client, &holdings.refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = password_grant(&server, client, "old pw").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = poll_device(&server, &holdings).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let page = holdings.browser.get("/account/tokens").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the session must be gone"
    );
    let page = Browser::new(&server)
        .sign_in("alice", "old pw", "/account/tokens")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);

    let (code, _, stderr) = user_cli(&server, &["enable", "alice"], "");
    assert_eq!(code, 0, "{stderr}");
    let (status, body) = password_grant(&server, client, "old pw").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        server
            .sesame
            .authenticate_bearer(&holdings.access)
            .await
            .is_err(),
        "tokens revoked by disabling stay revoked"
    );
    // Enabling denies the code that was approved before the user was disabled, and the poll
    // does not claim that the user denied it.
    let (status, body) = poll_device(&server, &holdings).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "access_denied");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(!description.contains("user denied"), "{body}");
}

#[tokio::test]
async fn disable_names_no_device_codes() {
    let server = Server::start().await;
    server.user("alice", "pw").await;

    let (code, stdout, stderr) = user_cli(&server, &["disable", "alice"], "");

    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("revoked 0 access tokens"), "{stdout}");
    assert!(!stdout.contains("device codes"), "{stdout}");
}

#[tokio::test]
async fn enable_revokes_tokens_that_raced_disable() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let raced = server.pat(user_id, &["profile"]).await;
    // A token issued while `user disable` ran can commit after its revocation: the user is
    // disabled but the row is not revoked.
    server
        .execute("UPDATE users SET disabled = TRUE WHERE name = 'alice'")
        .await;
    let (status, challenge, _) = server.get_with("/oauth/userinfo", &raced).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("user is disabled"), "{challenge}");

    let (code, _, stderr) = user_cli(&server, &["enable", "alice"], "");
    assert_eq!(code, 0, "{stderr}");
    let (status, _, _) = server.get_with("/oauth/userinfo", &raced).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the raced token must not come back"
    );
    let row = server
        .sesame
        .store()
        .access_token(&jti(&raced))
        .await
        .expect("query")
        .expect("row");
    assert!(row.revoked);

    let fresh = server.pat(user_id, &["profile"]).await;
    let (code, _, stderr) = user_cli(&server, &["enable", "alice"], "");
    assert_eq!(code, 0, "{stderr}");
    let (status, _, body) = server.get_with("/oauth/userinfo", &fresh).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "enabling an active user revokes nothing: {body}"
    );
}

#[tokio::test]
async fn password_change_ends_access() {
    let server = Server::start().await;
    server.user("alice", "old pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    let client = (id.as_str(), secret.as_str());
    let holdings = hold_everything(&server, client).await;

    let (code, stdout, stderr) = user_cli(
        &server,
        &["password", "alice", "--password-stdin"],
        "new pw\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("revoked 2 access tokens"), "{stdout}");

    assert!(
        server
            .sesame
            .authenticate_bearer(&holdings.access)
            .await
            .is_err()
    );
    assert!(
        server
            .sesame
            .authenticate_bearer(&holdings.pat)
            .await
            .is_err()
    );
    let (status, body) = refresh(&server, client, &holdings.refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = poll_device(&server, &holdings).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "access_denied");
    let page = holdings.browser.get("/account/tokens").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "the session must be gone"
    );

    let (status, _) = password_grant(&server, client, "old pw").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = password_grant(&server, client, "new pw").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn user_cli_errors_are_one_line() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let cases: &[(&[&str], &str, i32)] = &[
        (&["disable", "nobody"], "", 1),
        (&["enable", "nobody"], "", 1),
        (&["password", "nobody", "--password-stdin"], "pw\n", 1),
        (&["password", "alice", "--password-stdin"], "", 1),
        (&["password", "alice"], "pw\n", 2),
    ];
    for (args, stdin, expected) in cases {
        let (code, _, stderr) = user_cli(&server, args, stdin);
        assert_eq!(code, *expected, "{args:?}: {stderr}");
        if *expected == 1 {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        }
    }
    let (status, _) = {
        let (id, secret) = server.client(ClientKind::Password, None).await;
        password_grant(&server, (&id, &secret), "pw").await
    };
    assert_eq!(
        status,
        StatusCode::OK,
        "a failed change leaves the password alone"
    );
}
