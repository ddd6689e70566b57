//! Device authorization (RFC 8628): `POST /oauth/device/code` for devices and
//! `GET/POST /oauth/device` where a signed-in user enters the code and decides.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::authorize::scope_views;
use super::form::{OAuthForm, client_credentials, parse_form, query_param};
use super::no_store;
use super::pages::{
    ClientAddress, Session, current_session, internal_page, message_page, render, see_other,
    too_many_attempts,
};
use crate::app::Sesame;
use crate::error::Error;
use crate::grant::device_code::{self, display_user_code, normalize_user_code};
use crate::grant::{GrantError, OAuthError, client_auth};
use crate::store::{DeviceCodeRecord, DeviceStatus};

/// Wrong codes counted per session and per address before entry backs off.
const CODE_THRESHOLD: i64 = 5;
/// The window wrong codes are counted in, in seconds; also the longest back-off.
const CODE_WINDOW_SECONDS: i64 = 900;

/// Starts a device authorization for an authenticated (or public) device client.
pub(crate) async fn device_code(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result: Result<_, GrantError> = async {
        let credentials = client_credentials(&headers, &params)?
            .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
        let client = client_auth::authenticate(&sesame, &credentials).await?;
        device_code::authorize(&sesame, &client, &params).await
    }
    .await;
    match result {
        Ok(authorization) => no_store(axum::Json(authorization).into_response()),
        Err(error) => error.into_response(),
    }
}

/// Shows the code entry form to a signed-in user; others sign in first.
pub(crate) async fn show(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let typed = match query_param(query.as_deref(), "user_code") {
        Ok(typed) => typed.unwrap_or_default(),
        Err(error) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                "Connect a device",
                &error.description,
            );
        }
    };
    match current_session(&sesame, &headers).await {
        Ok(Some(session)) if session.user_id().is_some() => {
            entry_page(StatusCode::OK, &session, &typed, None)
        }
        Ok(_) => {
            let return_to = crate::redirect::with_params("/oauth/device", &[("user_code", &typed)]);
            see_other(&crate::redirect::with_params(
                "/login",
                &[("return_to", &return_to)],
            ))
        }
        Err(error) => internal_page(&error),
    }
}

fn entry_page(
    status: StatusCode,
    session: &Session,
    user_code: &str,
    error: Option<&str>,
) -> Response {
    let context = minijinja::context! {
        title => "Connect a device",
        csrf => session.record.csrf_token,
        user_code,
        error,
    };
    render(status, "device.html", context)
}

/// Looks up a typed code and shows what the device asks for, or records the user's decision.
/// Wrong codes back off per session and per address.
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
            "Connect a device",
            "The form was malformed.",
        ));
    };
    let session = current_session(sesame, headers).await?;
    let (session, user_id) = match session.and_then(|s| s.user_id().map(|id| (s, id))) {
        Some((session, user_id)) if session.csrf_matches(form.get("_csrf")) => (session, user_id),
        _ => {
            return Ok(message_page(
                StatusCode::FORBIDDEN,
                "Connect a device",
                "The form expired or did not come from this site. Reload the page.",
            ));
        }
    };
    let store = sesame.store();
    let now = sesame.now();
    let session_key = format!("device:session:{}", session.record.id_hash);
    let keys: Vec<String> = [address.key("device"), Some(session_key)]
        .into_iter()
        .flatten()
        .collect();
    for key in &keys {
        if let Some(until) = store.attempt_blocked_until(key, now).await? {
            return Ok(too_many_attempts(until - now, "Connect a device"));
        }
    }
    let typed = form.get("user_code").unwrap_or_default();
    let record = match normalize_user_code(typed) {
        Some(code) => store.device_code_by_user_code(&code).await?,
        None => None,
    };
    let Some(record) = record.filter(|r| r.status == DeviceStatus::Pending && r.expires_at > now)
    else {
        for key in &keys {
            store
                .record_failure(key, now, CODE_WINDOW_SECONDS, CODE_THRESHOLD)
                .await?;
        }
        let message = "That code is not valid. Check the code on your device and try again.";
        return Ok(entry_page(
            StatusCode::BAD_REQUEST,
            &session,
            typed,
            Some(message),
        ));
    };
    // A form with `_method=DELETE` denies, whatever its other fields, as on the consent page.
    let deny = form
        .get("_method")
        .is_some_and(|m| m.eq_ignore_ascii_case("DELETE"))
        || form.get("decision") == Some("deny");
    let decision = if deny {
        Some("deny")
    } else {
        form.get("decision")
    };
    match decision {
        None => confirm_page(sesame, &session, &record).await,
        Some(decision) => {
            let status = if decision == "approve" {
                DeviceStatus::Approved
            } else {
                DeviceStatus::Denied
            };
            let auth_time = session.record.auth_time.unwrap_or(now);
            if !store
                .decide_device_code(&record.id, user_id, auth_time, status)
                .await?
            {
                return Ok(message_page(
                    StatusCode::CONFLICT,
                    "Connect a device",
                    "This code was already answered.",
                ));
            }
            tracing::info!(client_id = %record.client_id, user_id, decision, "device authorization decided");
            let message = if status == DeviceStatus::Approved {
                "Device connected. You can return to your device."
            } else {
                "Request denied. The device was not connected."
            };
            let context =
                minijinja::context! { title => "Connect a device", message, kind => "info" };
            Ok(render(StatusCode::OK, "message.html", context))
        }
    }
}

/// Shows the client's name and the scopes before approval, as RFC 8628 §5.4 advises against
/// remote phishing.
async fn confirm_page(
    sesame: &Sesame,
    session: &Session,
    record: &DeviceCodeRecord,
) -> Result<Response, Error> {
    let client = sesame.store().client(&record.client_id).await?;
    let client_name = client
        .map(|client| client.name)
        .unwrap_or_else(|| "An unknown device".into());
    Ok(render(
        StatusCode::OK,
        "consent.html",
        minijinja::context! {
            title => "Connect a device",
            client_name,
            scopes => scope_views(sesame, &record.scopes),
            redirect_host => format!("the device showing code {}", display_user_code(&record.user_code)),
            action => "/oauth/device",
            request_field => "user_code",
            request_id => record.user_code,
            csrf => session.record.csrf_token,
        },
    ))
}
