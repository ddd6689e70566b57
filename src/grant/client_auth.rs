//! Client authentication at the token endpoint (RFC 6749 §2.3).

use crate::app::Sesame;
use crate::grant::{GrantError, OAuthError};
use crate::store::ClientRecord;
use crate::token::secret::verify_secret;

/// Credentials a client presented, by HTTP Basic or in the form body. `Debug` hides the
/// secret.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The client id.
    pub client_id: String,
    /// The secret, absent for public clients.
    pub secret: Option<String>,
    /// Whether they came in an `Authorization: Basic` header.
    pub via_basic: bool,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("via_basic", &self.via_basic)
            .finish_non_exhaustive()
    }
}

/// Authenticates a client: it must exist and not be revoked; a confidential client must
/// present its secret (compared in constant time) and a public client must present none.
///
/// # Errors
///
/// `invalid_client` (401, with a Basic challenge when Basic was used) for any failure; the
/// description does not say which check failed.
pub async fn authenticate(
    sesame: &Sesame,
    credentials: &ClientCredentials,
) -> Result<ClientRecord, GrantError> {
    let failed = || {
        let mut error = OAuthError::invalid_client("client authentication failed");
        error.basic_challenge = credentials.via_basic;
        GrantError::OAuth(error)
    };
    let client = sesame.lookup_client(&credentials.client_id).await?;
    let Some(client) = client else {
        return Err(failed());
    };
    if client.revoked {
        return Err(failed());
    }
    match (&client.secret_hash, &credentials.secret) {
        (Some(stored), Some(presented)) if verify_secret(presented, stored) => Ok(client),
        (None, None) => Ok(client),
        _ => Err(failed()),
    }
}
