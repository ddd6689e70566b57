//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Reply, Server, data_dir};

async fn get(server: &Server, path: &str) -> Reply {
    let response = server
        .http
        .get(server.url(path))
        .send()
        .await
        .expect("request");
    Reply::read(response).await
}

const DOCUMENTS: [&str; 2] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
];

#[tokio::test]
async fn metadata_lists_existing_endpoints() {
    let server = Server::start().await;
    for path in DOCUMENTS {
        let reply = get(&server, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.header("cache-control").contains("max-age="), "{path}");
        let body = reply.json();
        let url = |suffix: &str| Value::String(format!("{}{suffix}", server.base));
        assert_eq!(body["issuer"], server.base, "{path}");
        assert_eq!(body["token_endpoint"], url("/oauth/token"));
        assert_eq!(body["revocation_endpoint"], url("/oauth/revoke"));
        assert_eq!(body["introspection_endpoint"], url("/oauth/introspect"));
        assert_eq!(body["jwks_uri"], url("/oauth/jwks"));
        assert_eq!(body["userinfo_endpoint"], url("/oauth/userinfo"));
        assert_eq!(
            body["grant_types_supported"],
            json!([
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:device_code",
                "client_credentials",
                "refresh_token",
                "password"
            ])
        );
        assert_eq!(
            body["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(
            body["introspection_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "client_secret_post"])
        );
        assert!(body["revocation_endpoint_auth_methods_supported"].is_array());
        assert_eq!(body["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(body["authorization_response_iss_parameter_supported"], true);
        assert_eq!(body["response_types_supported"], json!(["code"]));
        assert_eq!(body["authorization_endpoint"], url("/oauth/authorize"));
        assert_eq!(
            body["device_authorization_endpoint"],
            url("/oauth/device/code")
        );
    }
}

#[tokio::test]
async fn scopes_exclude_reserved_account_scope() {
    let server = Server::start().await;
    let body = get(&server, DOCUMENTS[0]).await.json();
    let scopes: Vec<&str> = body["scopes_supported"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for scope in [
        "read",
        "write",
        "openid",
        "profile",
        "email",
        "offline_access",
    ] {
        assert!(scopes.contains(&scope), "{scope} missing from {scopes:?}");
    }
    assert!(!scopes.contains(&"sesame:account"), "{scopes:?}");
}

#[tokio::test]
async fn openid_configuration_has_discovery_fields() {
    let server = Server::start().await;
    let body = get(&server, "/.well-known/openid-configuration")
        .await
        .json();
    assert_eq!(body["subject_types_supported"], json!(["public"]));
    assert_eq!(
        body["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert!(
        body["claims_supported"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("nonce")))
    );
    let oauth = get(&server, "/.well-known/oauth-authorization-server")
        .await
        .json();
    assert!(oauth.get("subject_types_supported").is_none());
}

#[tokio::test]
async fn disabled_password_grant_not_advertised() {
    let server = Server::start_with(data_dir("password_grant = false\n"), |_| {}).await;
    let body = get(&server, DOCUMENTS[0]).await.json();
    assert_eq!(
        body["grant_types_supported"],
        json!([
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:device_code",
            "client_credentials",
            "refresh_token"
        ])
    );
}

#[tokio::test]
async fn urls_ignore_host_headers() {
    let server = Server::start().await;
    for path in DOCUMENTS {
        let response = server
            .http
            .get(server.url(path))
            .header("host", "evil.example")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
            .header("forwarded", "host=evil.example;proto=https")
            .send()
            .await
            .expect("request");
        let reply = Reply::read(response).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(!reply.text.contains("evil.example"), "{}", reply.text);
        assert_eq!(reply.json()["issuer"], server.base);
    }
}

#[tokio::test]
async fn issuer_comes_from_configuration() {
    let server = Server::start_with(data_dir(""), |config| {
        config.issuer = "https://auth.example.com".into();
    })
    .await;
    let body = get(&server, DOCUMENTS[0]).await.json();
    assert_eq!(body["issuer"], "https://auth.example.com");
    assert_eq!(
        body["token_endpoint"],
        "https://auth.example.com/oauth/token"
    );
}

#[tokio::test]
async fn advertised_endpoints_exist() {
    let server = Server::start().await;
    for path in DOCUMENTS {
        let body = get(&server, path).await.json();
        let urls: Vec<String> = body
            .as_object()
            .expect("object")
            .iter()
            .filter(|(name, _)| name.ends_with("_endpoint") || name.ends_with("_uri"))
            .filter_map(|(_, value)| value.as_str().map(str::to_owned))
            .collect();
        assert!(urls.len() >= 5, "{urls:?}");
        for url in urls {
            let local = url.replacen(&server.base, "", 1);
            assert_ne!(local, url, "{url} is not under the issuer");
            for method in [reqwest::Method::GET, reqwest::Method::POST] {
                let response = server
                    .http
                    .request(method.clone(), server.url(&local))
                    .send()
                    .await
                    .expect("request");
                assert_ne!(
                    response.status(),
                    StatusCode::NOT_FOUND,
                    "{method} {url} has no route"
                );
            }
        }
    }
}
