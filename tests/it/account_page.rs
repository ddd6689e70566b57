//! The personal access token page, `/account/tokens`.

use reqwest::StatusCode;

use crate::browser::{Browser, check_page_headers};
use crate::common::Server;

#[tokio::test]
async fn create_show_once_and_revoke() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let browser = Browser::new(&server);
    let page = browser.sign_in("alice", "pw", "/account/tokens").await;
    assert_eq!(page.location.as_deref(), Some("/account/tokens"));
    let page = browser.get("/account/tokens").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.field("_csrf");
    let created = browser
        .post(
            "/account/tokens",
            &[
                ("_csrf", &csrf),
                ("name", "laptop"),
                ("scope", "read"),
                ("scope", "sesame:account"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    // The page shows a secret, so no cache may keep it.
    check_page_headers(&created);
    let start = created.body.find("id=\"new-token\"").expect("token shown");
    let rest = &created.body[start..];
    let token =
        rest[rest.find('>').expect("tag") + 1..rest.find("</textarea>").expect("end")].to_owned();
    let bearer = server
        .sesame
        .authenticate_bearer(&token)
        .await
        .expect("token works");
    assert_eq!(bearer.scopes, ["read", "sesame:account"]);
    let listed = browser.get("/account/tokens").await;
    assert!(listed.body.contains("laptop"));
    assert!(!listed.body.contains(&token), "shown only once");

    let revoke_path = format!("/account/tokens/{}/revoke", bearer.token_id);
    let forged = browser.post(&revoke_path, &[("_csrf", "nope")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(server.sesame.authenticate_bearer(&token).await.is_ok());
    let revoked = browser.post(&revoke_path, &[("_csrf", &csrf)]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert!(server.sesame.authenticate_bearer(&token).await.is_err());
}

#[tokio::test]
async fn unknown_scope_shows_error() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let csrf = browser.get("/account/tokens").await.field("_csrf");
    let page = browser
        .post(
            "/account/tokens",
            &[("_csrf", &csrf), ("name", "x"), ("scope", "admin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("unknown scope"));
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        0
    );
}

#[tokio::test]
async fn malformed_create_forms_rejected() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let browser = Browser::new(&server);
    let signed_in = browser.sign_in("alice", "pw", "/account/tokens").await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    let page = browser.get("/account/tokens").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.field("_csrf");
    let many: Vec<String> = (0..65).map(|i| format!("p{i}=1")).collect();
    let cases = [
        format!("_csrf=forged&_csrf={csrf}&name=laptop"),
        format!("_csrf={csrf}&name=a&name=b"),
        format!("_csrf={csrf}&name=caf%E9"),
        format!("_csrf={csrf}&name=a%ZZ"),
        format!("_csrf={csrf}&name=laptop&{}", many.join("&")),
    ];
    for body in &cases {
        let page = browser.post_raw("/account/tokens", body).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let tokens = server
        .count("SELECT COUNT(*) FROM oauth_access_tokens")
        .await;
    assert_eq!(tokens, 0);

    // Personal tokens get no ID token and no refresh token, so the page never offers the
    // scopes that ask for them.
    assert!(page.body.contains("value=\"read\""), "{}", page.body);
    assert!(!page.body.contains("value=\"openid\""), "{}", page.body);
    assert!(
        !page.body.contains("value=\"offline_access\""),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn signed_out_visitor_sent_to_login() {
    let server = Server::start().await;
    let browser = Browser::new(&server);
    let page = browser.get("/account/tokens").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = browser.post("/account/tokens", &[("name", "x")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        0
    );
}

#[tokio::test]
async fn json_api_accepts_session_with_csrf_header() {
    let server = Server::start().await;
    server.user("alice", "pw").await;
    let browser = Browser::new(&server);
    browser.sign_in("alice", "pw", "/account/tokens").await;
    let csrf = browser.get("/account/tokens").await.field("_csrf");
    let url = server.url("/oauth/personal-access-tokens");

    let listed = browser.http.get(&url).send().await.expect("list");
    assert_eq!(listed.status(), StatusCode::OK);
    let body = serde_json::json!({"name": "from the page", "scopes": ["read"]});
    let forged = browser
        .http
        .post(&url)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "no CSRF header");
    let wrong = browser
        .http
        .post(&url)
        .header("x-csrf-token", "nope")
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM oauth_access_tokens")
            .await,
        0
    );
    let created = browser
        .http
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), StatusCode::CREATED);
    let anonymous = server.http.get(&url).send().await.expect("list");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
