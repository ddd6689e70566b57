//! `GET /metrics` and the `X-Request-Id` header, in-process.

use reqwest::StatusCode;
use sesame::store::ClientKind;

use crate::common::{Reply, Server, data_dir};

async fn scrape(server: &Server) -> Reply {
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics request");
    Reply::read(response).await
}

#[tokio::test]
async fn metrics_served_as_prometheus_text() {
    let server = Server::start().await;

    let reply = scrape(&server).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.header("content-type")
    );
    assert!(
        reply
            .text
            .contains("# TYPE sesame_db_pool_max_connections gauge"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn metrics_count_grants_and_errors() {
    let server = Server::start().await;
    let (id, secret) = server
        .client(ClientKind::ClientCredentials, Some(&["read"]))
        .await;
    server.client_token(&id, &secret, "read").await;
    let user = server.user("alice", "correct horse").await;
    server.pat(user, &["read"]).await;
    let (status, _) = server
        .token(&id, "wrong", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let text = scrape(&server).await.text;

    for line in [
        "sesame_tokens_issued_total{grant=\"client_credentials\"} 1",
        "sesame_tokens_issued_total{grant=\"personal_access\"} 1",
        "sesame_oauth_errors_total{error=\"invalid_client\"} 1",
        "sesame_http_requests_total{route=\"/oauth/token\",method=\"POST\",status=\"401\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
}

#[tokio::test]
async fn metrics_label_routes_not_paths() {
    let server = Server::start().await;
    let path = "/oauth/personal-access-tokens/some-unknown-id";
    let reply = server
        .send_json(reqwest::Method::DELETE, path, None, None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = server
        .send_json(
            reqwest::Method::from_bytes(b"BREW").expect("method"),
            "/x",
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let text = scrape(&server).await.text;

    assert!(!text.contains("some-unknown-id"), "{text}");
    assert!(
        text.contains("route=\"/oauth/personal-access-tokens/{id}\",method=\"DELETE\""),
        "{text}"
    );
    assert!(
        text.contains("route=\"unmatched\",method=\"other\",status=\"404\""),
        "{text}"
    );
    assert!(!text.contains("BREW"), "{text}");
}

#[tokio::test]
async fn metrics_off_answers_not_found() {
    let server = Server::start_with(data_dir("metrics = false\n"), |_| {}).await;

    let reply = scrape(&server).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(server.sesame.metrics().is_none());
}

#[tokio::test]
async fn request_id_echoed_or_made() {
    let server = Server::start().await;
    let send = |id: Option<String>| {
        let mut request = server.http.get(server.url("/healthz"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };

    let kept = send(Some("edge-7f3a.2_b".to_owned()))
        .await
        .expect("request");
    let made = send(None).await.expect("request");
    let long = send(Some("a".repeat(1024))).await.expect("request");
    let unsafe_chars = send(Some("id with spaces<>".to_owned()))
        .await
        .expect("request");

    let id = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    assert_eq!(id(&kept), "edge-7f3a.2_b");
    for response in [&made, &long, &unsafe_chars] {
        let parsed = uuid::Uuid::parse_str(&id(response)).expect("uuid request id");
        assert_eq!(parsed.get_version_num(), 7);
    }
}
