//! Device authorization (RFC 8628): `POST /oauth/device/code` for devices and
//! `GET/POST /oauth/device` where a signed-in user enters the code and decides.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::authorize::scope_views;
use super::form::{
    OAuthForm, client_credentials, missing_client_credentials, parse_form, query_param,
};
use super::no_store;
use super::pages::{
    ClientAddress, Session, current_session, internal_page, message_page, render, see_other,
    too_many_attempts,
};
use crate::app::Sesame;
use crate::error::Error;
use crate::grant::device_code::{self, display_user_code, normalize_user_code};
use crate::grant::{GrantError, client_auth};
use crate::store::{DeviceCodeRecord, DeviceStatus};

/// Unknown codes counted per session and per address before entry backs off.
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
        let credentials =
            client_credentials(&headers, &params)?.ok_or_else(missing_client_credentials)?;
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
/// Codes that match no device authorization back off per session and per address.
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
    // Only a code that matches no device authorization is a guess. A code that was already
    // decided or has expired comes from a resubmitted form or a late visit, and counting it
    // would let one double-click start the back-off for everyone behind the same address.
    let Some(record) = record else {
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
    if let Some(page) = closed_code_page(&session, user_id, &record, typed, now) {
        return Ok(page);
    }
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
                // Another request decided the code after this one looked it up, and that
                // decision is final.
                let current = store.device_code_by_user_code(&record.user_code).await?;
                let page = current
                    .and_then(|current| closed_code_page(&session, user_id, &current, typed, now));
                return Ok(page.unwrap_or_else(|| {
                    entry_page(
                        StatusCode::CONFLICT,
                        &session,
                        typed,
                        Some(USED_CODE_MESSAGE),
                    )
                }));
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

const USED_CODE_MESSAGE: &str =
    "This code was already used. Start again on your device to get a new code.";

/// Renders the entry page with an error for a code that can no longer be decided, or returns
/// `None` while the code is pending. Only the user who decided the code learns the decision.
/// Everyone else gets one message for approved and denied codes, so a guesser learns only that
/// the code existed and whether it expired.
fn closed_code_page(
    session: &Session,
    user_id: i64,
    record: &DeviceCodeRecord,
    typed: &str,
    now: i64,
) -> Option<Response> {
    let decided_by_user = record.user_id == Some(user_id);
    let expired = record.expires_at <= now;
    let (status, message) = match record.status {
        DeviceStatus::Pending if !expired => return None,
        // An approved code whose device never collected the tokens is of no use after expiry,
        // so only an issued code keeps reporting the decision.
        DeviceStatus::Pending | DeviceStatus::Approved | DeviceStatus::Denied if expired => (
            StatusCode::BAD_REQUEST,
            "This code has expired. Start again on your device to get a new code.",
        ),
        DeviceStatus::Approved | DeviceStatus::Issued if decided_by_user => (
            StatusCode::CONFLICT,
            "You already approved this code. A code can be approved or denied only once.",
        ),
        DeviceStatus::Denied if decided_by_user => (
            StatusCode::CONFLICT,
            "You already denied this code. A code can be approved or denied only once.",
        ),
        _ => (StatusCode::CONFLICT, USED_CODE_MESSAGE),
    };
    Some(entry_page(status, session, typed, Some(message)))
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
