//! `GET /.well-known/oauth-authorization-server` (RFC 8414) and
//! `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0), both built by
//! [`document`] from the list of [`Feature`]s this server offers.
//!
//! Every URL comes from the configured issuer, never from the request's `Host` or
//! `X-Forwarded-Host`, so a spoofed header cannot redirect clients.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::app::Sesame;
use crate::config::{ACCOUNT_SCOPE, BUILT_IN_SCOPES, Config};

/// Something the server offers that metadata advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    /// `POST /oauth/revoke`.
    Revocation,
    /// `POST /oauth/introspect`.
    Introspection,
    /// `GET/POST /oauth/userinfo`.
    UserInfo,
    /// The client credentials grant.
    ClientCredentialsGrant,
    /// The refresh token grant.
    RefreshTokenGrant,
    /// The password grant (`SESAME_PASSWORD_GRANT`).
    PasswordGrant,
    /// `GET /oauth/authorize` and the authorization code grant.
    AuthorizationCodeGrant,
    /// `POST /oauth/device/code` and the device code grant.
    DeviceCodeGrant,
}

/// The metadata document to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Document {
    /// RFC 8414 authorization server metadata.
    OAuthAuthorizationServer,
    /// OpenID Connect Discovery provider metadata.
    OpenIdConfiguration,
}

/// Lists what this server offers now.
pub(crate) fn enabled_features(config: &Config) -> Vec<Feature> {
    let mut features = vec![
        Feature::Revocation,
        Feature::Introspection,
        Feature::UserInfo,
        Feature::ClientCredentialsGrant,
        Feature::RefreshTokenGrant,
        Feature::AuthorizationCodeGrant,
        Feature::DeviceCodeGrant,
    ];
    if config.password_grant {
        features.push(Feature::PasswordGrant);
    }
    features
}

/// Builds a metadata document. This is the one place that decides what metadata contains, so a
/// new endpoint or grant is one more [`Feature`] and a few lines here.
pub(crate) fn document(
    config: &Config,
    features: &[Feature],
    kind: Document,
    id_token_alg: &str,
) -> Value {
    let issuer = config.issuer.as_str();
    let endpoint = |path: &str| Value::String(format!("{issuer}{path}"));
    let has = |feature: Feature| features.contains(&feature);
    let mut metadata = Map::new();

    metadata.insert("issuer".into(), json!(issuer));
    metadata.insert("token_endpoint".into(), endpoint("/oauth/token"));
    metadata.insert("jwks_uri".into(), endpoint("/oauth/jwks"));
    metadata.insert("scopes_supported".into(), json!(advertised_scopes(config)));

    let grant_types: Vec<&str> = [
        (Feature::AuthorizationCodeGrant, "authorization_code"),
        (Feature::DeviceCodeGrant, crate::store::DEVICE_CODE_GRANT),
        (Feature::ClientCredentialsGrant, "client_credentials"),
        (Feature::RefreshTokenGrant, "refresh_token"),
        (Feature::PasswordGrant, "password"),
    ]
    .into_iter()
    .filter(|(feature, _)| has(*feature))
    .map(|(_, grant)| grant)
    .collect();
    metadata.insert("grant_types_supported".into(), json!(grant_types));
    // RFC 8414 requires this member; it is empty when no authorization endpoint exists.
    let response_types: &[&str] = if has(Feature::AuthorizationCodeGrant) {
        &["code"]
    } else {
        &[]
    };
    metadata.insert("response_types_supported".into(), json!(response_types));
    if has(Feature::AuthorizationCodeGrant) {
        metadata.insert(
            "authorization_endpoint".into(),
            endpoint("/oauth/authorize"),
        );
        metadata.insert("response_modes_supported".into(), json!(["query"]));
        metadata.insert(
            "prompt_values_supported".into(),
            json!(["none", "login", "consent"]),
        );
    }
    if has(Feature::DeviceCodeGrant) {
        metadata.insert(
            "device_authorization_endpoint".into(),
            endpoint("/oauth/device/code"),
        );
    }
    metadata.insert(
        "token_endpoint_auth_methods_supported".into(),
        json!(["client_secret_basic", "client_secret_post", "none"]),
    );
    metadata.insert("code_challenge_methods_supported".into(), json!(["S256"]));
    metadata.insert(
        "authorization_response_iss_parameter_supported".into(),
        json!(true),
    );

    if has(Feature::Revocation) {
        metadata.insert("revocation_endpoint".into(), endpoint("/oauth/revoke"));
        // Public clients revoke their own tokens with only their client_id (RFC 7009 §5).
        metadata.insert(
            "revocation_endpoint_auth_methods_supported".into(),
            json!(["client_secret_basic", "client_secret_post", "none"]),
        );
    }
    if has(Feature::Introspection) {
        metadata.insert(
            "introspection_endpoint".into(),
            endpoint("/oauth/introspect"),
        );
        metadata.insert(
            "introspection_endpoint_auth_methods_supported".into(),
            json!(["client_secret_basic", "client_secret_post"]),
        );
    }
    if has(Feature::UserInfo) {
        metadata.insert("userinfo_endpoint".into(), endpoint("/oauth/userinfo"));
    }

    match kind {
        Document::OAuthAuthorizationServer => {}
        Document::OpenIdConfiguration => {
            metadata.insert("subject_types_supported".into(), json!(["public"]));
            metadata.insert(
                "id_token_signing_alg_values_supported".into(),
                json!([id_token_alg]),
            );
            metadata.insert(
                "claims_supported".into(),
                json!([
                    "iss",
                    "sub",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "at_hash",
                    "name",
                    "preferred_username",
                    "email"
                ]),
            );
        }
    }
    Value::Object(metadata)
}

/// Declared and built-in scopes, without the reserved `sesame:account`, which no third-party
/// client may request.
fn advertised_scopes(config: &Config) -> Vec<String> {
    let mut scopes: Vec<String> = config.scopes.keys().cloned().collect();
    for (scope, _) in BUILT_IN_SCOPES {
        if !scopes.iter().any(|declared| declared == scope) {
            scopes.push((*scope).to_owned());
        }
    }
    scopes.retain(|scope| scope != ACCOUNT_SCOPE);
    scopes
}

fn respond(sesame: &Sesame, kind: Document) -> Response {
    let config = sesame.config();
    let id_token_alg = sesame.signing_key().alg().name();
    let body = document(config, &enabled_features(config), kind, id_token_alg);
    let mut response = axum::Json(body).into_response();
    // Metadata changes only with the configuration; caches may keep it as long as the JWKS.
    let max_age = config.jwks_max_age.as_secs();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        response.headers_mut().insert(CACHE_CONTROL, value);
    }
    response
}

/// Serves RFC 8414 authorization server metadata.
pub(crate) async fn oauth_authorization_server(State(sesame): State<Sesame>) -> Response {
    respond(&sesame, Document::OAuthAuthorizationServer)
}

/// Serves OpenID Connect Discovery provider metadata.
pub(crate) async fn openid_configuration(State(sesame): State<Sesame>) -> Response {
    respond(&sesame, Document::OpenIdConfiguration)
}
