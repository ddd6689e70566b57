//! Client authentication at the token endpoint (RFC 6749 §2.3).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::app::Sesame;
use crate::grant::{GrantError, OAuthError};
use crate::store::ClientRecord;
use crate::token::secret::{is_bcrypt, verify_secret};

/// Clients kept by [`ClientCache`] at most; a full cache starts again empty.
const MAX_CACHED_CLIENTS: usize = 1024;

/// Clients that recently got a client_credentials token, so the next request can skip reading
/// the client. An entry is only a guess. The token writer stores a token issued from it only
/// while the stored client still equals it. So a client changed, revoked or deleted by any
/// process or node stops getting tokens from the cache at once.
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    clients: Mutex<HashMap<String, ClientRecord>>,
}

impl ClientCache {
    /// Returns the cached client with this id.
    pub(crate) fn get(&self, id: &str) -> Option<ClientRecord> {
        self.clients.lock().ok()?.get(id).cloned()
    }

    /// Keeps `client`, replacing an entry with its id. A client whose secret is not a
    /// `sha256:` hash is not kept: a bcrypt secret would be checked twice whenever a wrong
    /// secret fails against the kept record.
    pub(crate) fn put(&self, client: &ClientRecord) {
        let sha256 = client
            .secret_hash
            .as_deref()
            .is_some_and(|hash| hash.starts_with("sha256:"));
        if !sha256 {
            return;
        }
        if let Ok(mut clients) = self.clients.lock() {
            if clients.len() >= MAX_CACHED_CLIENTS && !clients.contains_key(&client.id) {
                clients.clear();
            }
            clients.insert(client.id.clone(), client.clone());
        }
    }

    /// Drops the entry with this id.
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut clients) = self.clients.lock() {
            clients.remove(id);
        }
    }
}

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
    let Some(client) = sesame.lookup_client(&credentials.client_id).await? else {
        return Err(failed());
    };
    let accepted = match (&client.secret_hash, &credentials.secret) {
        (Some(stored), Some(presented)) if !client.revoked && is_bcrypt(stored) => sesame
            .hasher()
            .verify_bcrypt(presented.clone(), stored.clone())
            .await
            .map_err(GrantError::from)?,
        _ => accepts(&client, credentials),
    };
    if accepted { Ok(client) } else { Err(failed()) }
}

/// Authenticates a client against its entry in the client cache, if it has one and the
/// credentials match it. The caller must issue tokens only through the token writer with this
/// record, which checks it against the stored client.
pub(crate) fn authenticate_cached(
    sesame: &Sesame,
    credentials: &ClientCredentials,
) -> Option<ClientRecord> {
    let client = sesame.client_cache().get(&credentials.client_id)?;
    accepts(&client, credentials).then_some(client)
}

/// Checks that `client` is not revoked and that the credentials carry its secret, or no secret
/// for a public client. [`authenticate`] checks bcrypt secrets on the hashing threads instead,
/// and the client cache keeps no client with one.
fn accepts(client: &ClientRecord, credentials: &ClientCredentials) -> bool {
    if client.revoked {
        return false;
    }
    match (&client.secret_hash, &credentials.secret) {
        (Some(stored), Some(presented)) => verify_secret(presented, stored),
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientCache, MAX_CACHED_CLIENTS};
    use crate::store::ClientRecord;

    fn client(id: &str) -> ClientRecord {
        ClientRecord {
            id: id.to_owned(),
            user_id: None,
            name: "machine".to_owned(),
            secret_hash: Some("sha256:00".to_owned()),
            redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: None,
            personal_access_client: false,
            password_client: false,
            first_party: false,
            require_pkce: false,
            revoked: false,
            audience: None,
            created_at: 0,
        }
    }

    #[test]
    fn entries_replaced_and_forgotten() {
        let cache = ClientCache::default();
        cache.put(&client("a"));
        let mut revoked = client("a");
        revoked.revoked = true;
        cache.put(&revoked);
        assert_eq!(cache.get("a"), Some(revoked));
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
    }

    #[test]
    fn bcrypt_clients_not_kept() {
        let cache = ClientCache::default();
        let mut moved = client("moved from passport");
        moved.secret_hash = Some("$2y$04$abcdefghijklmnopqrstuu".to_owned());
        cache.put(&moved);
        assert_eq!(cache.get("moved from passport"), None);
    }

    #[test]
    fn full_cache_starts_again() {
        let cache = ClientCache::default();
        for index in 0..MAX_CACHED_CLIENTS {
            cache.put(&client(&index.to_string()));
        }
        // Replacing a kept client never empties the cache.
        cache.put(&client("0"));
        assert!(cache.get("1").is_some());

        cache.put(&client("one more"));
        assert!(cache.get("one more").is_some());
        assert_eq!(cache.get("1"), None);
    }
}
