//! `GET/POST /login` and `POST /logout`: the built-in sign-in page.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::form::{parse_form, query_param};
use super::pages::{
    ClientAddress, Session, current_session, internal_page, message_page, render, safe_return_to,
    see_other, session_cookie, set_cookie, start_session, too_many_attempts,
};
use crate::app::Sesame;
use crate::error::Error;

use crate::grant::password::{LOGIN_THRESHOLD, LOGIN_WINDOW_SECONDS};

/// Shows the sign-in form. A visitor without a session gets an anonymous one that carries
/// the form's CSRF token.
pub(crate) async fn show(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let return_to = match query_param(query.as_deref(), "return_to") {
        Ok(return_to) => safe_return_to(return_to.as_deref()),
        Err(error) => return message_page(StatusCode::BAD_REQUEST, "Sign in", &error.description),
    };
    // An authorization request with prompt=login requires a new sign-in, even when signed in.
    let again = matches!(
        query_param(query.as_deref(), "prompt"),
        Ok(Some(prompt)) if prompt == "login"
    );
    match current_session(&sesame, &headers).await {
        Ok(Some(session)) => {
            if session.user_id().is_some() && !again {
                return see_other(&return_to);
            }
            login_page(StatusCode::OK, &session, &return_to, "", None)
        }
        Ok(None) => match start_session(&sesame, None).await {
            Ok((session, cookie)) => set_cookie(
                login_page(StatusCode::OK, &session, &return_to, "", None),
                cookie,
            ),
            Err(error) => internal_page(&error),
        },
        Err(error) => internal_page(&error),
    }
}

fn login_page(
    status: StatusCode,
    session: &Session,
    return_to: &str,
    username: &str,
    error: Option<&str>,
) -> Response {
    let context = minijinja::context! {
        title => "Sign in",
        csrf => session.record.csrf_token,
        return_to,
        username,
        error,
    };
    render(status, "login.html", context)
}

/// Checks the form and the password. Success replaces the session with a new one for the
/// user and redirects (303) to `return_to` when it is a local path. Failures say only that
/// the name or password is wrong, take the same time for unknown users, and back off per
/// user name and per address.
pub(crate) async fn submit(
    State(sesame): State<Sesame>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match submit_inner(&sesame, address, &headers, &body).await {
        Ok(response) => response,
        Err(error) => internal_page(&error),
    }
}

async fn submit_inner(
    sesame: &Sesame,
    address: ClientAddress,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Error> {
    let Ok(form) = parse_form(body) else {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "The form was malformed.",
        ));
    };
    let session = match current_session(sesame, headers).await? {
        Some(session) if session.csrf_matches(form.get("_csrf")) => session,
        _ => {
            return Ok(message_page(
                StatusCode::FORBIDDEN,
                "Sign in",
                "The sign-in form expired. Reload the page and try again.",
            ));
        }
    };
    let return_to = safe_return_to(form.get("return_to"));
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let store = sesame.store();
    let now = sesame.now();
    let user_key = crate::users::sign_in_attempt_key(username);
    let _turn = sesame.sign_in_turns().wait(&user_key).await?;
    let keys: Vec<String> = [Some(user_key.clone()), address.key("login")]
        .into_iter()
        .flatten()
        .collect();
    for key in &keys {
        if let Some(until) = store.attempt_blocked_until(key, now).await? {
            return Ok(too_many_attempts(until - now, "Sign in"));
        }
    }

    let user = store.user_by_name(username).await?;
    let stored = user.as_ref().and_then(|user| user.password_hash.clone());
    let verified = sesame.hasher().verify(stored, password.to_owned()).await?;
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        _ => {
            for key in &keys {
                store
                    .record_failure(key, now, LOGIN_WINDOW_SECONDS, LOGIN_THRESHOLD)
                    .await?;
            }
            tracing::info!(outcome = "failed", "sign-in failed");
            let message = "The user name or password is incorrect.";
            return Ok(login_page(
                StatusCode::UNAUTHORIZED,
                &session,
                &return_to,
                username,
                Some(message),
            ));
        }
    };
    store.clear_failures(&user_key).await?;
    store.delete_session(&session.record.id_hash).await?;
    let (_, cookie) = start_session(sesame, Some(user.id)).await?;
    tracing::info!(user_id = user.id, "signed in");
    Ok(set_cookie(see_other(&return_to), cookie))
}

/// Ends the session (CSRF-protected) and returns to the sign-in page.
pub(crate) async fn logout(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body).unwrap_or_default();
    match current_session(&sesame, &headers).await {
        Ok(Some(session)) if session.csrf_matches(form.get("_csrf")) => {
            if let Err(error) = sesame.store().delete_session(&session.record.id_hash).await {
                return internal_page(&error);
            }
            let cleared = session_cookie(&sesame, "", 0);
            set_cookie(see_other("/login"), cleared)
        }
        Ok(Some(_)) => message_page(
            StatusCode::FORBIDDEN,
            "Sign out",
            "The form expired; reload the page.",
        ),
        Ok(None) => see_other("/login"),
        Err(error) => internal_page(&error),
    }
}
