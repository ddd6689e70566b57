//! Personal access tokens: long-lived access tokens a user issues to themselves through the
//! personal access client.

use crate::app::Sesame;
use crate::error::{Error, Result};
use crate::grant::{Issue, issue_standalone_access_token, ttl_seconds};
use crate::store::AccessTokenRecord;

/// A newly created personal access token. `Debug` hides the token.
#[derive(Clone)]
pub struct PersonalAccessToken {
    /// The signed JWT, shown to its owner once.
    pub access_token: String,
    /// The stored record.
    pub token: AccessTokenRecord,
}

impl std::fmt::Debug for PersonalAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonalAccessToken")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The maximum length of a token name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

impl Sesame {
    /// Issues a personal access token for `user_id`, named `name`, with `scopes`.
    ///
    /// Ensures the personal access client first, creating it if a fresh or refreshed
    /// database lacks it. Scopes are not limited by any client: the caller decides what the
    /// user may have (the HTTP API allows only scopes the presenting token holds).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty or overlong name, [`Error::UnknownScope`],
    /// [`Error::NotFound`] for an unknown user, [`Error::InvalidInput`] for a disabled one, and
    /// [`Error::PersonalAccessClientMissing`] when the client cannot be ensured.
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        scopes: &[&str],
    ) -> Result<PersonalAccessToken> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_NAME_CHARS
            || name.chars().any(crate::names::is_forbidden_in_name)
        {
            return Err(Error::InvalidInput(format!(
                "a token name must be 1 to {MAX_NAME_CHARS} characters without control or \
                 invisible formatting characters"
            )));
        }
        let mut granted: Vec<String> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if self.config().scope_description(scope).is_none() {
                return Err(Error::UnknownScope((*scope).to_owned()));
            }
            if !granted.iter().any(|s| s == scope) {
                granted.push((*scope).to_owned());
            }
        }
        let (user, recorded_client) = match self.store().user_and_personal_client(user_id).await? {
            Some((user, _)) if user.disabled => {
                return Err(Error::InvalidInput(format!(
                    "user {} is disabled; `sesame user enable {}` enables it",
                    user.name, user.name
                )));
            }
            Some(found) => found,
            None => {
                return Err(Error::NotFound {
                    kind: "user",
                    id: user_id.to_string(),
                });
            }
        };
        // The usual case reads the user and the personal client in one query; the slow path
        // repairs a missing client, or names the fix.
        let client_id = match recorded_client {
            Some(id) => id,
            None => self.ensure_personal_access_client().await?,
        };

        let issue = Issue {
            user_id: Some(user_id),
            client_id: &client_id,
            scopes: &granted,
            ttl_seconds: ttl_seconds(self.config().pat_ttl),
            name: Some(name),
        };
        let (access_token, row) = issue_standalone_access_token(self, issue, None).await?;
        tracing::info!(user_id, token_id = %row.id, "created personal access token");
        if let Some(metrics) = self.metrics() {
            metrics.record_token_issued("personal_access");
        }
        let token = AccessTokenRecord {
            id: row.id,
            user_id: row.user_id,
            client_id: row.client_id,
            name: row.name,
            scopes: row.scopes,
            revoked: false,
            created_at: row.created_at,
            expires_at: row.expires_at,
            client_revoked: Some(false),
            user_disabled: Some(false),
            key_retired: false,
            user_name: Some(user.name),
            user_email: user.email,
        };
        Ok(PersonalAccessToken {
            access_token,
            token,
        })
    }
}
