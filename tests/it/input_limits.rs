//! Hostile input on every endpoint family: too many or too long parameters, repeated
//! parameters, invalid UTF-8 and malformed percent-encoding get a 400 with an OAuth error
//! (or an error page on the browser pages), never a 500.

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use sesame::store::ClientKind;

use crate::common::{Reply, Server};

const FORM: &str = "application/x-www-form-urlencoded";

/// Endpoints that read an OAuth form body and return RFC 6749 JSON errors.
const OAUTH_FORMS: &[&str] = &[
    "/oauth/token",
    "/oauth/revoke",
    "/oauth/introspect",
    "/oauth/device/code",
];

/// Browser pages that read a form body and return errors as HTML pages.
const PAGE_FORMS: &[&str] = &["/login", "/oauth/device", "/oauth/authorize", "/logout"];

/// Bodies every form endpoint must reject, each with the reason.
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let many: Vec<String> = (0..65).map(|i| format!("p{i}=1")).collect();
    vec![
        ("too many parameters", many.join("&").into_bytes()),
        (
            "a value too long",
            format!("grant_type=password&password={}", "x".repeat(8193)).into_bytes(),
        ),
        (
            "a name too long",
            format!("{}=1", "n".repeat(129)).into_bytes(),
        ),
        (
            "a repeated parameter",
            b"grant_type=password&grant_type=client_credentials&client_id=a&token=t".to_vec(),
        ),
        (
            "raw invalid UTF-8",
            b"grant_type=client_credentials&client_id=\xff\xfe&token=t".to_vec(),
        ),
        (
            "percent-encoded invalid UTF-8",
            b"grant_type=client_credentials&client_id=%C3%28&token=t".to_vec(),
        ),
        (
            "an overlong encoding",
            b"grant_type=client_credentials&client_id=%C0%AF&token=t".to_vec(),
        ),
        (
            "a stray percent sign",
            b"grant_type=client_credentials&client_id=a%zz&token=t".to_vec(),
        ),
        (
            "a truncated escape",
            b"grant_type=client_credentials&client_id=a%4".to_vec(),
        ),
    ]
}

async fn post_raw(server: &Server, path: &str, body: Vec<u8>) -> Reply {
    let request = server
        .http
        .post(server.url(path))
        .header(CONTENT_TYPE, FORM)
        .body(body);
    Reply::read(request.send().await.expect("request")).await
}

#[tokio::test]
async fn oauth_forms_reject_bad_input() {
    let server = Server::start().await;
    for path in OAUTH_FORMS {
        for (reason, body) in bad_bodies() {
            let reply = post_raw(&server, path, body).await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{path}, {reason}: {}",
                reply.text
            );
            assert_eq!(reply.json()["error"], "invalid_request", "{path}, {reason}");
            assert!(
                reply.json()["error_description"].is_string(),
                "{path}, {reason}"
            );
        }
    }
}

#[tokio::test]
async fn pages_reject_bad_form_input() {
    let server = Server::start().await;
    for path in PAGE_FORMS {
        for (reason, body) in bad_bodies() {
            let reply = post_raw(&server, path, body).await;
            assert!(
                reply.status.is_client_error() || reply.status.is_redirection(),
                "{path}, {reason}: {}",
                reply.status
            );
            assert_ne!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        }
    }
    let reply = post_raw(&server, "/login", b"username=%ff".to_vec()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text.contains("The form was malformed."),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn nul_character_never_500() {
    let server = Server::start().await;
    let (id, secret) = server.client(ClientKind::ClientCredentials, None).await;
    let forged_id = format!("{id}\0evil");
    let reply = server
        .post_form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &forged_id),
                ("client_secret", &secret),
            ],
        )
        .await;
    // The form parser rejects a NUL in any value before the client is looked up.
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_request");
    let reply = server
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", "alice\0"),
                ("password", "pw"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let reply = post_raw(&server, "/login", b"username=a%00b&password=x".to_vec()).await;
    assert!(reply.status.is_client_error(), "{}", reply.status);

    for path in [
        "/oauth/authorize?response_type=code&client_id=a%00b",
        "/login?return_to=/a%00b",
        "/oauth/device?user_code=AB%00CD",
    ] {
        let reply = Reply::read(
            server
                .http
                .get(server.url(path))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
    }

    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account"]).await;
    let body = serde_json::json!({"name": "a\u{0}b", "scopes": []});
    let reply = server
        .send_json(
            reqwest::Method::POST,
            "/oauth/personal-access-tokens",
            Some(&token),
            Some(&body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_request");
}

#[tokio::test]
async fn authorize_query_limits_give_error_page() {
    let server = Server::start().await;
    let many: Vec<String> = (0..65).map(|i| format!("p{i}=1")).collect();
    let long_state = format!("response_type=code&client_id=x&state={}", "s".repeat(8193));
    let cases = [
        ("too many parameters", many.join("&")),
        ("a value too long", long_state),
        (
            "invalid UTF-8",
            "response_type=code&client_id=%FF%FE".to_owned(),
        ),
        ("a repeated client_id", "client_id=a&client_id=b".to_owned()),
    ];
    for (reason, query) in cases {
        let reply = Reply::read(
            server
                .http
                .get(server.url(&format!("/oauth/authorize?{query}")))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reason}");
        assert!(
            reply.header("content-type").starts_with("text/html"),
            "{reason}"
        );
        assert!(reply.header("location").is_empty(), "{reason}: no redirect");
    }
}

#[tokio::test]
async fn page_queries_reject_malformed_input() {
    let server = Server::start().await;
    let many: Vec<String> = (0..65).map(|i| format!("p{i}=1")).collect();
    let cases = [
        "/login?return_to=/a&return_to=/b".to_owned(),
        format!("/login?{}", many.join("&")),
        "/oauth/device?user_code=A&user_code=B".to_owned(),
        "/login?return_to=%FF".to_owned(),
        "/login?return_to=/a&x=%ZZ".to_owned(),
        "/oauth/device?user_code=%E9".to_owned(),
    ];
    for path in cases {
        let reply = Reply::read(
            server
                .http
                .get(server.url(&path))
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            reply.header("content-type").starts_with("text/html"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn json_apis_reject_bad_bodies() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account"]).await;
    let bodies: [&[u8]; 3] = [b"\xff\xfe{}", b"{\"name\": \"a\", \"name\": \"b\"", b"[]"];
    let mut cases: Vec<(&str, &[u8])> = ["/oauth/personal-access-tokens", "/oauth/clients"]
        .into_iter()
        .flat_map(|path| bodies.map(|body| (path, body)))
        .collect();
    // Arrays of each request's fields in order, which a derived Deserialize accepts as a struct.
    cases.push(("/oauth/personal-access-tokens", b"[\"laptop\", []]"));
    cases.push((
        "/oauth/clients",
        b"[\"app\", [\"https://app.example/cb\"], false]",
    ));
    let before = server.counts().await;
    for (path, body) in cases {
        let reply = Reply::read(
            server
                .http
                .post(server.url(path))
                .bearer_auth(&token)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec())
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_request", "{path}");
    }
    assert_eq!(server.counts().await, before);
}

#[tokio::test]
async fn json_apis_require_json_content_type() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account"]).await;
    let bodies = [
        (
            "/oauth/personal-access-tokens",
            r#"{"name": "laptop", "scopes": []}"#,
        ),
        (
            "/oauth/clients",
            r#"{"name": "app", "redirect_uris": ["https://app.example/cb"]}"#,
        ),
    ];
    let before = server.counts().await;
    for (path, body) in bodies {
        for content_type in [
            None,
            Some("text/plain"),
            Some(FORM),
            Some("application/jsonp"),
        ] {
            let mut request = server.http.post(server.url(path)).bearer_auth(&token);
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            let reply = Reply::read(request.body(body).send().await.expect("request")).await;
            assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path}, {content_type:?}: {}",
                reply.text
            );
            assert_eq!(reply.json()["error"], "invalid_request", "{path}");
        }
        let two_types = server
            .http
            .post(server.url(path))
            .bearer_auth(&token)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_TYPE, "text/plain")
            .body(body);
        let reply = Reply::read(two_types.send().await.expect("request")).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }
    assert_eq!(server.counts().await, before);
    for (path, body) in bodies {
        for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
            let reply = Reply::read(
                server
                    .http
                    .post(server.url(path))
                    .bearer_auth(&token)
                    .header(CONTENT_TYPE, content_type)
                    .body(body)
                    .send()
                    .await
                    .expect("request"),
            )
            .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{path}, {content_type}");
        }
    }
}

#[tokio::test]
async fn bearer_header_with_invalid_bytes_is_400() {
    let server = Server::start().await;
    let value = reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("header");
    let reply = Reply::read(
        server
            .http
            .get(server.url("/oauth/userinfo"))
            .header(reqwest::header::AUTHORIZATION, value)
            .send()
            .await
            .expect("request"),
    )
    .await;
    // A malformed request is `invalid_request` under RFC 6750 §3.1.
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_request");
}

#[tokio::test]
async fn declared_oversized_body_is_413_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = Server::start().await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: {address}\r\nContent-Type: {FORM}\r\n\
         Content-Length: 1000000000000\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // No body follows, so the response must come from the declared length alone. The timeout
    // only keeps a broken server from hanging the suite.
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("answered before any body arrived")
    .expect("read");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("invalid_request"), "{response}");
}

#[tokio::test]
async fn control_and_invisible_characters_in_names_rejected() {
    let server = Server::start().await;
    let user_id = server.user("alice", "pw").await;
    let token = server.pat(user_id, &["sesame:account"]).await;
    let requests = [
        (
            "/oauth/clients",
            serde_json::json!({
                "name": "\u{1b}[31mred\u{1b}[0m\nfake line",
                "redirect_uris": ["https://app.example/cb"],
            }),
        ),
        (
            "/oauth/personal-access-tokens",
            serde_json::json!({"name": "laptop\u{7}", "scopes": []}),
        ),
        // A right-to-left override would show "Goo\u{202e}elgo" as "Google" on a consent page.
        (
            "/oauth/clients",
            serde_json::json!({
                "name": "Goo\u{202e}elgo",
                "redirect_uris": ["https://app.example/cb"],
            }),
        ),
        (
            "/oauth/personal-access-tokens",
            serde_json::json!({"name": "lap\u{200b}top", "scopes": []}),
        ),
    ];
    for (path, body) in requests {
        let reply = Reply::read(
            server
                .http
                .post(server.url(path))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("request"),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.text
        );
        assert_eq!(reply.json()["error"], "invalid_request", "{path}");
    }
}

#[tokio::test]
async fn invisible_characters_in_user_names_rejected() {
    let server = Server::start().await;
    for name in ["bob\u{202e}toor", "a\u{200b}lice", "\u{feff}carol"] {
        let rejected = server
            .sesame
            .add_user(name, None, Some("a long password"))
            .await;
        assert!(
            matches!(rejected, Err(sesame::Error::InvalidInput(_))),
            "{name:?}: {rejected:?}"
        );
    }
    assert!(
        server
            .sesame
            .add_user("Zoë", None, Some("a long password"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn malformed_emails_rejected() {
    let server = Server::start().await;
    let too_long = format!("{}@example.com", "a".repeat(250));
    let cases = [
        "\u{1b}[2Jroot@example.com",
        "alice@example.com\nbob@example.com",
        "alice@exa\u{202e}mple.com",
        "alice example.com",
        "@example.com",
        "alice@",
        "a@@example.com",
        "<alice@example.com>",
        "alice@example.com\"><script>",
        too_long.as_str(),
    ];
    for (index, email) in cases.into_iter().enumerate() {
        let name = format!("user{index}");
        let rejected = server.sesame.add_user(&name, Some(email), None).await;
        assert!(
            matches!(rejected, Err(sesame::Error::InvalidInput(_))),
            "{email:?}: {rejected:?}"
        );
    }
    let users = server.count("SELECT COUNT(*) FROM users").await;
    assert_eq!(users, 0);
    let added = server
        .sesame
        .add_user("zoe", Some("zoë@exämple.com"), None)
        .await;
    assert!(added.is_ok(), "{added:?}");
}

// A typed user name of kilobytes names no user, and its failed sign-ins are counted under a
// key that fits every backend's index.
#[tokio::test]
async fn long_sign_in_names_never_500() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let (id, secret) = server.client(ClientKind::Password, None).await;
    // Random hex, which PostgreSQL cannot compress below its index row limit.
    let name: String = (0..100)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let reply = server
        .post_form(
            "/oauth/token",
            Some((&id, &secret)),
            &[
                ("grant_type", "password"),
                ("username", &name),
                ("password", "pw"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json()["error"], "invalid_grant");

    let browser = crate::browser::Browser::new(&server);
    let page = browser.get("/login").await;
    let csrf = page.field("_csrf");
    let failed = browser
        .post(
            "/login",
            &[("_csrf", &csrf), ("username", &name), ("password", "pw")],
        )
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED, "{}", failed.body);
    assert!(failed.body.contains("incorrect"), "{}", failed.body);
}

#[tokio::test]
async fn passwords_no_form_can_send_rejected() {
    let server = Server::start().await;
    let rejected = server.sesame.add_user("dave", None, Some("pw\0abc")).await;
    assert!(
        matches!(rejected, Err(sesame::Error::InvalidInput(_))),
        "{rejected:?}"
    );
    server.user("erin", "first password").await;
    let rejected = server.sesame.set_user_password("erin", "tab\there").await;
    assert!(
        matches!(rejected, Err(sesame::Error::InvalidInput(_))),
        "{rejected:?}"
    );
}
