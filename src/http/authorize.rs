//! `GET /oauth/authorize` (sign-in, then consent) and `POST`/`DELETE /oauth/authorize`
//! (approve, deny).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::form::parse_form;
use super::pages::{Session, current_session, internal_page, message_page, render, see_other};
use crate::app::Sesame;
use crate::config::ACCOUNT_SCOPE;
use crate::error::Error;
use crate::grant::authorization_code::{
    Approval, AuthorizationRequest, AuthorizeError, check_request, error_redirect, issue_code,
};
use crate::store::AuthRequestRecord;
use crate::token::secret::{Secret, hash_secret};

/// How long a consent page may stay open before its decision is refused, in seconds.
const CONSENT_TTL_SECONDS: i64 = 600;

#[derive(Serialize)]
struct ScopeView {
    id: String,
    description: String,
}

/// Checks the request, sends a visitor without a session to the sign-in page, and then
/// either issues a code at once (first-party confidential clients, or consent remembered for
/// these scopes and this redirect URI) or shows the consent page.
pub(crate) async fn show(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    // A NUL byte counts as a malformed parameter here, so that a NUL in `state` is reported
    // at the redirect URI like any other error.
    if let Err(error) = super::form::check_query_size(&query) {
        return authorize_error(&sesame, AuthorizeError::Page(error.description));
    }
    let params = super::form::parse_authorization_query(&query);
    let request = match check_request(&sesame, &params).await {
        Ok(request) => request,
        Err(error) => return authorize_error(&sesame, error),
    };
    match show_inner(&sesame, &headers, &query, request).await {
        Ok(response) => response,
        Err(error) => authorize_error(&sesame, error),
    }
}

fn authorize_error(sesame: &Sesame, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page(message) => message_page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            &message,
        ),
        AuthorizeError::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => see_other(&error_redirect(
            sesame,
            &redirect_uri,
            error,
            &description,
            state.as_deref(),
        )),
        AuthorizeError::Internal(error) => internal_page(&error),
    }
}

async fn show_inner(
    sesame: &Sesame,
    headers: &HeaderMap,
    query: &str,
    request: AuthorizationRequest,
) -> Result<Response, AuthorizeError> {
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: request.state.clone(),
    };
    let session = current_session(sesame, headers).await?;
    let Some((session, user_id)) = session.and_then(|s| s.user_id().map(|id| (s, id))) else {
        if request.prompts("none") {
            return Err(fail("login_required", "the user is not signed in"));
        }
        let return_to = format!("/oauth/authorize?{query}");
        let login = crate::redirect::with_params("/login", &[("return_to", &return_to)]);
        return Ok(see_other(&login));
    };
    if request.prompts("login") {
        // The sign-in form shows even to a signed-in user, and returns to this request
        // without `login`, so the new sign-in is not asked for again.
        let return_to = format!("/oauth/authorize?{}", without_login_prompt(query));
        let params = [("return_to", return_to.as_str()), ("prompt", "login")];
        return Ok(see_other(&crate::redirect::with_params("/login", &params)));
    }
    let auth_time = session.record.auth_time.unwrap_or_else(|| sesame.now());
    if !needs_consent(sesame, &request, user_id).await? {
        let location = issue_code(sesame, &request.approval(), user_id, auth_time).await?;
        return Ok(see_other(&location));
    }
    if request.prompts("none") {
        return Err(fail(
            "consent_required",
            "the user has not approved this application",
        ));
    }
    if request.scopes.iter().any(|scope| scope == ACCOUNT_SCOPE) {
        return Err(fail(
            "invalid_scope",
            "sesame:account is never granted on a consent page",
        ));
    }
    consent_page(sesame, &session, &request)
        .await
        .map_err(AuthorizeError::Internal)
}

/// Returns `query` with `login` taken out of its `prompt` parameter, and the parameter dropped
/// when nothing is left. Other parameters are kept as sent.
fn without_login_prompt(query: &str) -> String {
    let mut pairs: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let decoded = pair
            .strip_prefix("prompt=")
            .and_then(|value| super::form::decode_component(value).ok());
        let Some(decoded) = decoded else {
            pairs.push(pair.to_owned());
            continue;
        };
        let rest: Vec<&str> = decoded
            .split(' ')
            .filter(|v| !v.is_empty() && *v != "login")
            .collect();
        if !rest.is_empty() {
            let encoded: String =
                url::form_urlencoded::byte_serialize(rest.join(" ").as_bytes()).collect();
            pairs.push(format!("prompt={encoded}"));
        }
    }
    pairs.join("&")
}

/// Whether the user must see the consent page. Remembered consent and first-party skipping
/// never apply to public clients, whose ids anyone can use, nor to `prompt=consent`.
async fn needs_consent(
    sesame: &Sesame,
    request: &AuthorizationRequest,
    user_id: i64,
) -> Result<bool, Error> {
    let client = &request.client;
    if !client.is_confidential() || request.prompts("consent") {
        return Ok(true);
    }
    if client.first_party {
        return Ok(false);
    }
    let granted = sesame
        .store()
        .consent(user_id, &client.id, &request.redirect_uri)
        .await?;
    Ok(!granted.is_some_and(|granted| request.scopes.iter().all(|s| granted.contains(s))))
}

async fn consent_page(
    sesame: &Sesame,
    session: &Session,
    request: &AuthorizationRequest,
) -> Result<Response, Error> {
    let request_id = Secret::generate()?;
    let now = sesame.now();
    let record = AuthRequestRecord {
        id_hash: request_id.stored(),
        session_hash: session.record.id_hash.clone(),
        client_id: request.client.id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        redirect_uri_given: request.redirect_uri_given,
        scopes: request.scopes.clone(),
        state: request.state.clone(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        expires_at: now + CONSENT_TTL_SECONDS,
    };
    sesame.store().insert_auth_request(&record, now).await?;
    let user_name = match session.user_id() {
        Some(user_id) => sesame.store().user(user_id).await?.map(|user| user.name),
        None => None,
    };
    Ok(render(
        StatusCode::OK,
        "consent.html",
        minijinja::context! {
            title => "Authorize application",
            client_name => request.client.name,
            user_name,
            scopes => scope_views(sesame, &request.scopes),
            redirect_host => redirect_host(&request.redirect_uri),
            action => "/oauth/authorize",
            request_field => "auth_request",
            request_id => request_id.expose(),
            csrf => session.record.csrf_token,
        },
    ))
}

pub(crate) fn scope_views(sesame: &Sesame, scopes: &[String]) -> Vec<minijinja::Value> {
    scopes
        .iter()
        .map(|id| {
            let description = sesame
                .config()
                .scope_description(id)
                .unwrap_or(id)
                .to_owned();
            minijinja::Value::from_serialize(ScopeView {
                id: id.clone(),
                description,
            })
        })
        .collect()
}

fn redirect_host(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|parsed| {
            parsed
                .host_str()
                .map(str::to_owned)
                .or_else(|| Some(parsed.scheme().to_owned()))
        })
        .unwrap_or_default()
}

/// Records the user's decision on a pending request. The form must carry the session's CSRF
/// token and the request id the consent page was rendered with; the request is taken from the
/// server, so a decision applies to exactly what the user saw, once. Approval redirects with
/// a code, denial with `access_denied`, both with 303.
pub(crate) async fn decide(
    State(sesame): State<Sesame>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match decide_inner(&sesame, &method, &headers, &body).await {
        Ok(response) => response,
        Err(error) => internal_page(&error),
    }
}

async fn decide_inner(
    sesame: &Sesame,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Error> {
    let Ok(form) = parse_form(body) else {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "Authorization failed",
            "The form was malformed.",
        ));
    };
    let session = current_session(sesame, headers).await?;
    let (session, user_id) = match session.and_then(|s| s.user_id().map(|id| (s, id))) {
        Some((session, user_id)) if session.csrf_matches(form.get("_csrf")) => (session, user_id),
        _ => {
            return Ok(message_page(
                StatusCode::FORBIDDEN,
                "Authorization failed",
                "The form expired or did not come from this site. Start again from the application.",
            ));
        }
    };
    // A form without a decision approves, as Passport's POST does. DELETE denies.
    let method_denies = method == Method::DELETE
        || form
            .get("_method")
            .is_some_and(|m| m.eq_ignore_ascii_case("DELETE"));
    let deny = match form.get("decision") {
        _ if method_denies => true,
        None | Some("approve") => false,
        Some("deny") => true,
        Some(_) => {
            return Ok(message_page(
                StatusCode::BAD_REQUEST,
                "Authorization failed",
                "The form was malformed: the decision must be approve or deny.",
            ));
        }
    };
    let now = sesame.now();
    let request_hash = hash_secret(form.get("auth_request").unwrap_or_default());
    let Some(request) = sesame
        .store()
        .take_auth_request(&request_hash, &session.record.id_hash, now)
        .await?
    else {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "Authorization failed",
            "This request expired or was already answered. Start again from the application.",
        ));
    };
    let client = sesame.store().client(&request.client_id).await?;
    let Some(client) = client.filter(|client| !client.revoked) else {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "Authorization failed",
            "The application was removed.",
        ));
    };
    if deny {
        tracing::info!(client_id = %client.id, user_id, "user denied authorization");
        let location = error_redirect(
            sesame,
            &request.redirect_uri,
            "access_denied",
            "the user denied the request",
            request.state.as_deref(),
        );
        return Ok(see_other(&location));
    }
    if client.is_confidential() {
        sesame
            .store()
            .save_consent(
                user_id,
                &client.id,
                &request.redirect_uri,
                &request.scopes,
                now,
            )
            .await?;
    }
    let approval = Approval {
        client_id: &client.id,
        redirect_uri: &request.redirect_uri,
        redirect_uri_given: request.redirect_uri_given,
        scopes: &request.scopes,
        state: request.state.as_deref(),
        code_challenge: request.code_challenge.as_deref(),
        nonce: request.nonce.as_deref(),
    };
    let auth_time = session.record.auth_time.unwrap_or(now);
    let location = issue_code(sesame, &approval, user_id, auth_time).await?;
    Ok(see_other(&location))
}
