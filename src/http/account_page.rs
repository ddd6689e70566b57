//! `GET/POST /account/tokens`: the signed-in user's personal access tokens as a web page.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::account::RowId;
use super::authorize::scope_views;
use super::pages::{Session, current_session, internal_page, message_page, render, see_other};
use crate::app::Sesame;
use crate::config::BUILT_IN_SCOPES;
use crate::error::Error;

#[derive(Serialize)]
struct TokenView {
    id: String,
    name: String,
    scopes: Vec<String>,
    created: String,
    expires: String,
}

/// A date-time in UTC for display, such as `2026-12-04 16:14 UTC`.
fn display_time(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil-from-days, after Howard Hinnant's public-domain algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

async fn signed_in(sesame: &Sesame, headers: &HeaderMap) -> Result<Option<(Session, i64)>, Error> {
    let session = current_session(sesame, headers).await?;
    Ok(session.and_then(|s| s.user_id().map(|id| (s, id))))
}

fn login_redirect() -> Response {
    see_other("/login?return_to=%2Faccount%2Ftokens")
}

async fn tokens_page(
    sesame: &Sesame,
    session: &Session,
    user_id: i64,
    new_token: Option<(&str, &str)>,
    error: Option<&str>,
) -> Result<Response, Error> {
    let user = sesame.store().user(user_id).await?;
    let tokens: Vec<TokenView> = sesame
        .store()
        .personal_tokens(user_id, sesame.now())
        .await?
        .into_iter()
        .map(|token| TokenView {
            id: token.id,
            name: token.name.unwrap_or_default(),
            scopes: token.scopes,
            created: display_time(token.created_at),
            expires: display_time(token.expires_at),
        })
        .collect();
    let mut offered: Vec<String> = sesame.config().scopes.keys().cloned().collect();
    // A personal token gets no ID token and no refresh token, so `openid` and
    // `offline_access` would mean nothing on it.
    let meaningful = BUILT_IN_SCOPES
        .iter()
        .filter(|(id, _)| !matches!(*id, "openid" | "offline_access"));
    for (id, _) in meaningful {
        if !offered.iter().any(|s| s == id) {
            offered.push((*id).to_owned());
        }
    }
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        "tokens.html",
        minijinja::context! {
            title => "Personal access tokens",
            user_name => user.map(|u| u.name).unwrap_or_default(),
            csrf => session.record.csrf_token,
            tokens,
            scopes => scope_views(sesame, &offered),
            new_token => new_token.map(|(token, _)| token),
            new_token_name => new_token.map(|(_, name)| name),
            error,
        },
    ))
}

/// The fields of the form that creates a token.
struct CreateForm {
    csrf: Option<String>,
    name: String,
    scopes: Vec<String>,
}

/// Reads the create form as strictly as the OAuth forms, except that `scope` repeats once per
/// ticked box. Returns `None` for a malformed body or any other field given twice.
fn create_form(body: &[u8]) -> Option<CreateForm> {
    let mut form = CreateForm {
        csrf: None,
        name: String::new(),
        scopes: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in super::form::parse_pairs(body).ok()? {
        if key != "scope" && seen.contains(&key) {
            return None;
        }
        match key.as_str() {
            "_csrf" => form.csrf = Some(value),
            "name" => form.name = value,
            "scope" => form.scopes.push(value),
            _ => {}
        }
        seen.push(key);
    }
    Some(form)
}

/// Lists the user's tokens with a form to create one.
pub(crate) async fn show(State(sesame): State<Sesame>, headers: HeaderMap) -> Response {
    let result = async {
        match signed_in(&sesame, &headers).await? {
            Some((session, user_id)) => tokens_page(&sesame, &session, user_id, None, None).await,
            None => Ok(login_redirect()),
        }
    }
    .await;
    result.unwrap_or_else(|error| internal_page(&error))
}

/// Creates a token and shows it once.
pub(crate) async fn create(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let Some((session, user_id)) = signed_in(&sesame, &headers).await? else {
            return Ok(login_redirect());
        };
        let Some(form) = create_form(&body) else {
            return Ok(message_page(
                StatusCode::BAD_REQUEST,
                "Personal access tokens",
                "The form was malformed.",
            ));
        };
        let CreateForm { csrf, name, scopes } = form;
        if !session.csrf_matches(csrf.as_deref()) {
            return Ok(message_page(
                StatusCode::FORBIDDEN,
                "Personal access tokens",
                "The form expired; reload the page.",
            ));
        }
        let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        match sesame.create_token(user_id, &name, &scope_refs).await {
            Ok(created) => {
                let shown = (created.access_token.as_str(), name.trim());
                tokens_page(&sesame, &session, user_id, Some(shown), None).await
            }
            Err(error @ (Error::InvalidInput(_) | Error::UnknownScope(_))) => {
                tokens_page(&sesame, &session, user_id, None, Some(&error.to_string())).await
            }
            Err(error) => Err(error),
        }
    }
    .await;
    result.unwrap_or_else(|error| internal_page(&error))
}

/// Revokes one of the user's tokens.
pub(crate) async fn revoke(
    State(sesame): State<Sesame>,
    headers: HeaderMap,
    RowId(id): RowId,
    body: Bytes,
) -> Response {
    let result = async {
        let Some((session, user_id)) = signed_in(&sesame, &headers).await? else {
            return Ok(login_redirect());
        };
        let form = super::form::parse_form(&body).unwrap_or_default();
        if !session.csrf_matches(form.get("_csrf")) {
            return Ok(message_page(
                StatusCode::FORBIDDEN,
                "Personal access tokens",
                "The form expired; reload the page.",
            ));
        }
        if sesame
            .store()
            .revoke_personal_token(&id, user_id, sesame.now())
            .await?
        {
            tracing::info!(user_id, token_id = %id, "revoked personal access token");
        }
        Ok(see_other("/account/tokens"))
    }
    .await;
    result.unwrap_or_else(|error| internal_page(&error))
}

#[cfg(test)]
mod tests {
    use super::display_time;

    #[test]
    fn formats_utc() {
        assert_eq!(display_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(display_time(1_796_400_000), "2026-12-04 16:00 UTC");
        assert_eq!(display_time(951_782_400), "2000-02-29 00:00 UTC");
    }
}
