//! The device authorization grant (RFC 8628): issuing device and user codes, and polling.

use crate::app::Sesame;
use crate::error::Error;
use crate::grant::{
    GrantError, Issue, OAuthError, Params, issue_access_token, issue_refresh_token, ttl_seconds,
};
use crate::store::{ClientRecord, DEVICE_CODE_GRANT, DeviceStatus};
use crate::token::secret::{Secret, hash_secret};

/// Lifetime of a device code, in seconds.
pub const DEVICE_CODE_TTL_SECONDS: i64 = 600;
/// The polling interval a device starts with, in seconds.
pub const DEFAULT_INTERVAL_SECONDS: i64 = 5;
/// Letters of user codes: consonants only (no vowels, so no words; no look-alikes such as
/// 0/O or 1/I), as RFC 8628 §6.1 suggests. 20^8 codes.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LENGTH: usize = 8;

/// The response of the device authorization endpoint. `Debug` hides the device code.
#[derive(Clone, serde::Serialize)]
pub struct DeviceAuthorization {
    /// The secret the device polls with.
    pub device_code: String,
    /// The code the user types, such as `BCDF-GHJK`.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// The same page with the code filled in.
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: i64,
    /// Seconds the device must wait between polls.
    pub interval: i64,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .finish_non_exhaustive()
    }
}

/// Normalises what a user typed: letters upper-cased, and spaces, dashes and zero-width
/// characters dropped, since a phone keyboard or a copied page may give a Unicode hyphen for
/// `-`. Returns `None` when the result cannot be a user code.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !is_separator(*c))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        code.len() == USER_CODE_LENGTH && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// Returns whether `c` may stand between the groups of a typed user code: whitespace, a
/// zero-width character, or a hyphen. A copied page may carry zero-width characters. Hyphens
/// are the ASCII hyphen-minus and the characters shown like it: U+2010 to U+2015, the hyphen
/// bullet, the minus sign, the small and fullwidth hyphen-minus and the soft hyphen.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '\u{ad}'
                | '\u{2010}'..='\u{2015}'
                | '\u{2043}'
                | '\u{2212}'
                | '\u{fe63}'
                | '\u{ff0d}'
                | '\u{200b}'..='\u{200d}'
                | '\u{2060}'
                | '\u{feff}'
        )
}

/// Formats a normalised user code for display: `BCDF-GHJK`.
pub fn display_user_code(code: &str) -> String {
    let (first, second) = code.split_at(code.len().min(4));
    format!("{first}-{second}")
}

fn random_user_code() -> Result<String, Error> {
    let mut bytes = [0u8; USER_CODE_LENGTH];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Crypto("random user code"))?;
    // 256 is not a multiple of 20, so drop the bias by rejecting high bytes.
    let mut code = String::with_capacity(USER_CODE_LENGTH);
    let mut pool = bytes.to_vec();
    while code.len() < USER_CODE_LENGTH {
        let Some(byte) = pool.pop() else {
            let mut more = [0u8; 16];
            aws_lc_rs::rand::fill(&mut more).map_err(|_| Error::Crypto("random user code"))?;
            pool.extend_from_slice(&more);
            continue;
        };
        if usize::from(byte) < 240 {
            code.push(char::from(USER_CODE_ALPHABET[usize::from(byte) % 20]));
        }
    }
    Ok(code)
}

/// Starts a device authorization for `client` with `scopes`.
///
/// # Errors
///
/// `unauthorized_client` for a client without the device grant, `invalid_scope`.
pub async fn authorize(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<DeviceAuthorization, GrantError> {
    if !client.allows_grant(DEVICE_CODE_GRANT) {
        return Err(
            OAuthError::unauthorized_client("this client may not use the device grant").into(),
        );
    }
    let scopes = crate::grant::requested_scopes(sesame, client, params)?;
    let device_code = Secret::generate()?;
    let now = sesame.now();
    for _ in 0..5 {
        let user_code = random_user_code()?;
        let inserted = sesame
            .store()
            .insert_device_code(
                &uuid::Uuid::now_v7().to_string(),
                &device_code.stored(),
                &user_code,
                &client.id,
                &scopes,
                DEFAULT_INTERVAL_SECONDS,
                now,
                now + DEVICE_CODE_TTL_SECONDS,
            )
            .await?;
        if inserted {
            let verification_uri = format!("{}/oauth/device", sesame.config().issuer);
            let shown = display_user_code(&user_code);
            return Ok(DeviceAuthorization {
                device_code: device_code.expose().to_owned(),
                verification_uri_complete: crate::redirect::with_params(
                    &verification_uri,
                    &[("user_code", &shown)],
                ),
                verification_uri,
                user_code: shown,
                expires_in: DEVICE_CODE_TTL_SECONDS,
                interval: DEFAULT_INTERVAL_SECONDS,
            });
        }
    }
    Err(Error::Crypto("could not draw an unused user code").into())
}

/// Answers a device's poll: `authorization_pending`, `slow_down` (the interval grows by 5 s),
/// `access_denied`, `expired_token`, or tokens once, after the user approved.
///
/// # Errors
///
/// The RFC 8628 §3.5 error codes above, and `invalid_grant` for unknown, foreign or spent
/// device codes and disabled users.
pub async fn grant(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<crate::grant::TokenResponse, GrantError> {
    if !client.allows_grant(DEVICE_CODE_GRANT) {
        return Err(
            OAuthError::unauthorized_client("this client may not use the device grant").into(),
        );
    }
    let device_code = params.require("device_code")?;
    let store = sesame.store();
    let now = sesame.now();
    let mut transaction = store.begin_write().await?;
    let record = store
        .device_code_by_hash(&mut transaction, &hash_secret(device_code))
        .await?;
    let record = match record {
        Some(record) if record.client_id == client.id => record,
        _ => return Err(OAuthError::invalid_grant("the device code is invalid").into()),
    };
    if record.status == DeviceStatus::Issued {
        return Err(OAuthError::invalid_grant("the device code was already used").into());
    }
    if record.expires_at <= now {
        return Err(oauth("expired_token", "the device code expired"));
    }
    match record.status {
        // Denied by the user, or by a password change or `user enable` after approval.
        DeviceStatus::Denied => {
            return Err(oauth(
                "access_denied",
                "the authorization request was denied",
            ));
        }
        DeviceStatus::Pending => {
            let too_soon = record
                .last_polled_at
                .is_some_and(|last| now - last < record.poll_interval);
            let interval = if too_soon {
                record.poll_interval + 5
            } else {
                record.poll_interval
            };
            store
                .record_device_poll(&mut transaction, &record.id, now, interval)
                .await?;
            transaction.commit().await?;
            return Err(if too_soon {
                oauth(
                    "slow_down",
                    "polling too fast; wait longer between requests",
                )
            } else {
                oauth("authorization_pending", "the user has not decided yet")
            });
        }
        DeviceStatus::Approved | DeviceStatus::Issued => {}
    }
    let user_id = record
        .user_id
        .ok_or_else(|| OAuthError::invalid_grant("the device code is invalid"))?;
    match store.user_in(&mut transaction, user_id).await? {
        Some(user) if !user.disabled => {}
        _ => return Err(OAuthError::invalid_grant("the user is no longer active").into()),
    }
    if !store
        .issue_device_code(&mut transaction, &record.id)
        .await?
    {
        return Err(OAuthError::invalid_grant("the device code was already used").into());
    }
    let ttl = ttl_seconds(sesame.config().access_ttl);
    let issue = Issue {
        user_id: Some(user_id),
        client_id: &client.id,
        scopes: &record.scopes,
        ttl_seconds: ttl,
        name: None,
    };
    let (access_token, row) = issue_access_token(sesame, &mut transaction, issue).await?;
    let refresh_token = if client.allows_grant("refresh_token") {
        let family_id = uuid::Uuid::now_v7().to_string();
        Some(issue_refresh_token(sesame, &mut transaction, &row, &family_id, &record.scopes).await?)
    } else {
        None
    };
    transaction.commit().await?;
    Ok(crate::grant::TokenResponse {
        token_type: "Bearer",
        expires_in: ttl,
        access_token,
        refresh_token,
        scope: record.scopes.join(" "),
        id_token: None,
    })
}

fn oauth(code: &'static str, description: &str) -> GrantError {
    let mut error = OAuthError::invalid_grant(description);
    error.code = code;
    GrantError::OAuth(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_code_normalised() {
        assert_eq!(
            normalize_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code("BCDF GHJK").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(normalize_user_code("BCDFGHJ"), None);
        assert_eq!(normalize_user_code("ABCDEFGH"), None);
    }

    #[test]
    fn unicode_dashes_read_as_hyphen() {
        for typed in [
            "bcdf\u{2010}ghjk",
            "bcdf\u{2013}ghjk",
            "BCDF\u{2212}GHJK",
            "BCDF\u{ff0d}GHJK",
            "BCDF\u{a0}GHJK",
            "BCDF\u{ad}GHJK",
            "BCDF\u{200b}GHJK",
            "BCDF\u{2043}GHJK",
        ] {
            assert_eq!(
                normalize_user_code(typed).as_deref(),
                Some("BCDFGHJK"),
                "{typed:?}"
            );
        }
        assert_eq!(normalize_user_code("BCDF_GHJK"), None);
    }

    #[test]
    fn random_codes_use_alphabet() {
        for _ in 0..50 {
            let code = random_user_code().expect("rng");
            assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()));
        }
    }
}
