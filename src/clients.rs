//! Client rules beyond installation: the clients users register for themselves through
//! `/oauth/clients` (always third-party, allowed the authorization code and refresh token
//! grants only, with checked redirect URIs), and hashing plain secrets left by an import.

use crate::app::Sesame;
use crate::error::{Error, Result};
use crate::install::validate_client_name;
use crate::store::{ClientRecord, NewClient};
use crate::token::secret::{Secret, hash_secret, is_hashed};

/// The grant types of every client a user registers.
pub const USER_CLIENT_GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token"];

/// The maximum number of redirect URIs of one client.
pub const MAX_REDIRECT_URIS: usize = 32;

/// The maximum length of one redirect URI, in bytes.
pub const MAX_REDIRECT_URI_BYTES: usize = 2000;

/// The maximum length of a client's redirect URIs stored together as a JSON array, in bytes:
/// the size of the MySQL column.
pub const MAX_REDIRECT_URIS_STORED_BYTES: usize = 8000;

/// Schemes never accepted, whatever their case: they run code or carry content instead of
/// reaching an application.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "vbscript", "file", "about", "blob"];

/// Checks a redirect URI for registration.
///
/// It accepts absolute `https` URIs, and `http` URIs whose host is a loopback address
/// (`127.0.0.0/8`, `[::1]`) or `localhost` (RFC 8252 §7.3). It also accepts private-use schemes
/// in reverse domain name form, such as `com.example.app:/callback` (RFC 8252 §7.1). It rejects
/// fragments (RFC 6749 §3.1.2), userinfo, whitespace, control characters and backslashes,
/// wildcards in the host, and `javascript:`, `data:` and similar schemes in any case.
///
/// # Errors
///
/// [`Error::InvalidRedirectUri`] naming the URI and the reason.
pub fn validate_redirect_uri(uri: &str) -> Result<()> {
    let invalid =
        |reason: &str| Error::InvalidRedirectUri(format!("redirect URI {uri:?} {reason}"));
    if uri.is_empty() {
        return Err(invalid("is empty"));
    }
    if uri.len() > MAX_REDIRECT_URI_BYTES {
        return Err(invalid(&format!(
            "is longer than {MAX_REDIRECT_URI_BYTES} bytes"
        )));
    }
    // The URL parser silently drops tabs and newlines and trims spaces, so check the raw text.
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("contains whitespace or control characters"));
    }
    if uri.contains('#') {
        return Err(invalid("has a fragment"));
    }
    // URL parsers read a backslash as a slash in http and https URIs, so the host that a
    // browser reaches is not the one that the text seems to show.
    if uri.contains('\\') {
        return Err(invalid("contains a backslash; percent-encode it as %5C"));
    }
    // Redirects send the URI in a Location header, which must be ASCII.
    if !uri.is_ascii() {
        return Err(invalid(
            "contains non-ASCII characters; percent-encode them",
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|_| invalid("is not an absolute URI"))?;
    let response_parameters = ["code", "state", "iss", "error", "error_description"];
    if parsed
        .query_pairs()
        .any(|(name, _)| response_parameters.contains(&name.as_ref()))
    {
        return Err(invalid(
            "carries an authorization response parameter in its query",
        ));
    }
    let scheme = parsed.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(invalid(&format!("uses the forbidden scheme {scheme:?}")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("has userinfo"));
    }
    match scheme {
        "https" => match parsed.host_str() {
            Some(host) if !host.contains('*') => Ok(()),
            Some(_) => Err(invalid("has a wildcard in its host")),
            None => Err(invalid("has no host")),
        },
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(domain)) => domain == "localhost",
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(invalid(
                    "uses http on a host that is not loopback; use https",
                ))
            }
        }
        private if private.contains('.') => Ok(()),
        _ => Err(invalid(
            "must use https, http on a loopback address, or a private-use scheme in reverse \
             domain name form such as com.example.app",
        )),
    }
}

/// Checks every redirect URI of a registration, their number and their stored size, and drops
/// exact duplicates, keeping the first.
pub(crate) fn validate_redirect_uris(uris: &[String]) -> Result<Vec<String>> {
    if uris.is_empty() {
        return Err(Error::InvalidRedirectUri(
            "at least one redirect URI is required".into(),
        ));
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err(Error::InvalidRedirectUri(format!(
            "at most {MAX_REDIRECT_URIS} redirect URIs are allowed, got {}",
            uris.len()
        )));
    }
    let mut unique: Vec<String> = Vec::with_capacity(uris.len());
    for uri in uris {
        validate_redirect_uri(uri)?;
        if !unique.contains(uri) {
            unique.push(uri.clone());
        }
    }
    let stored = serde_json::to_string(&unique).map_or(usize::MAX, |json| json.len());
    if stored > MAX_REDIRECT_URIS_STORED_BYTES {
        return Err(Error::InvalidRedirectUri(format!(
            "the redirect URIs take {stored} bytes as a JSON array; at most \
             {MAX_REDIRECT_URIS_STORED_BYTES} are allowed, so register fewer or shorter ones"
        )));
    }
    Ok(unique)
}

fn client_not_found(client_id: &str) -> Error {
    Error::NotFound {
        kind: "client",
        id: client_id.to_owned(),
    }
}

impl Sesame {
    /// Replaces every stored client secret that is neither a `sha256:` nor a bcrypt hash (a
    /// plain value left by a moved Passport database) with its `sha256:` hash, so the client
    /// keeps its secret and Sesame never compares plain values. Running it again changes
    /// nothing. Returns how many secrets were hashed.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] on a query failure; nothing is changed then.
    pub async fn hash_plain_client_secrets(&self) -> Result<u64> {
        let store = self.store();
        let now = self.now();
        let mut transaction = store.begin_write().await?;
        let mut hashed = 0;
        for stored in store.client_secrets(&mut transaction).await? {
            if is_hashed(&stored.value) {
                continue;
            }
            let replacement = hash_secret(&stored.value);
            if store
                .replace_client_secret(
                    &mut transaction,
                    &stored.client_id,
                    &stored.value,
                    &replacement,
                    now,
                )
                .await?
            {
                tracing::info!(client_id = %stored.client_id, "hashed a plain client secret");
                hashed += 1;
            }
        }
        transaction.commit().await?;
        Ok(hashed)
    }

    /// Registers a client owned by `user_id`: never first-party, allowed only the
    /// authorization code and refresh token grants, PKCE required, confidential (with a secret
    /// returned only now) unless `confidential` is false.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a name outside 1 to 255 characters,
    /// [`Error::InvalidRedirectUri`] for a missing or rejected redirect URI, and database
    /// errors.
    pub async fn create_user_client(
        &self,
        user_id: i64,
        name: &str,
        redirect_uris: &[String],
        confidential: bool,
    ) -> Result<(ClientRecord, Option<Secret>)> {
        let name = validate_client_name(name)?;
        let redirect_uris = validate_redirect_uris(redirect_uris)?;

        let secret = if confidential {
            Some(Secret::generate()?)
        } else {
            None
        };
        let client = NewClient {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            secret_hash: secret.as_ref().map(Secret::stored),
            redirect_uris,
            grant_types: USER_CLIENT_GRANT_TYPES
                .iter()
                .map(|grant| (*grant).to_owned())
                .collect(),
            scopes: None,
            personal_access_client: false,
            password_client: false,
            first_party: false,
            require_pkce: true,
            user_id: Some(user_id),
            audience: None,
        };

        let store = self.store();
        let mut transaction = store.begin_write().await?;
        store
            .insert_client(&mut transaction, &client, self.now())
            .await?;
        let record = store.client_in(&mut transaction, &client.id).await?;
        transaction.commit().await?;
        let record = record.ok_or_else(|| client_not_found(&client.id))?;
        tracing::info!(user_id, client_id = %record.id, confidential, "user registered a client");
        Ok((record, secret))
    }

    /// Finds one of the user's unrevoked clients.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the user has no such client, including another user's client.
    pub async fn user_client(&self, user_id: i64, client_id: &str) -> Result<ClientRecord> {
        self.store()
            .user_client(user_id, client_id)
            .await?
            .ok_or_else(|| client_not_found(client_id))
    }

    /// Replaces the name and redirect URIs of one of the user's clients.
    ///
    /// # Errors
    ///
    /// As [`Sesame::create_user_client`], and [`Error::NotFound`] when the user has no such
    /// client.
    pub async fn update_user_client(
        &self,
        user_id: i64,
        client_id: &str,
        name: &str,
        redirect_uris: &[String],
    ) -> Result<ClientRecord> {
        let name = validate_client_name(name)?;
        let redirect_uris = validate_redirect_uris(redirect_uris)?;
        let updated = self
            .store()
            .update_user_client(user_id, client_id, name, &redirect_uris, self.now())
            .await?;
        if !updated {
            return Err(client_not_found(client_id));
        }
        tracing::info!(user_id, client_id, "user updated a client");
        self.user_client(user_id, client_id).await
    }

    /// Revokes one of the user's clients: it can no longer authenticate and its tokens stop
    /// working.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the user has no such client.
    pub async fn revoke_user_client(&self, user_id: i64, client_id: &str) -> Result<()> {
        if !self
            .store()
            .revoke_user_client(user_id, client_id, self.now())
            .await?
        {
            return Err(client_not_found(client_id));
        }
        tracing::info!(user_id, client_id, "user revoked a client");
        Ok(())
    }

    /// Gives one of the user's confidential clients a new secret, returned only now; the old
    /// secret stops working.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the user has no such client, [`Error::InvalidInput`] for a
    /// public client.
    pub async fn replace_user_client_secret(
        &self,
        user_id: i64,
        client_id: &str,
    ) -> Result<(ClientRecord, Secret)> {
        let client = self.user_client(user_id, client_id).await?;
        if !client.is_confidential() {
            return Err(Error::InvalidInput(format!(
                "client {client_id} is public and has no secret"
            )));
        }
        let secret = Secret::generate()?;
        if !self
            .store()
            .set_user_client_secret(user_id, client_id, &secret.stored(), self.now())
            .await?
        {
            return Err(client_not_found(client_id));
        }
        tracing::info!(user_id, client_id, "user replaced a client secret");
        Ok((client, secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_redirect_uris() {
        for uri in [
            "https://client.example/cb",
            "https://client.example/cb?tenant=a",
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/callback",
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
        ] {
            assert!(validate_redirect_uri(uri).is_ok(), "{uri} rejected");
        }
    }

    #[test]
    fn rejected_redirect_uris() {
        for uri in [
            "",
            "/relative/cb",
            "client.example/cb",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "DATA:text/html,x",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "http://client.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://localhost.evil.example/cb",
            "https://client.example/cb#frag",
            "https://client.example/cb#",
            "https://user@client.example/cb",
            "https://a@b@evil.example/cb",
            "http://localhost@evil.example/cb",
            "https://user:pass@client.example/cb",
            "https://*.client.example/cb",
            "https://client.example/c b",
            "https://client.example/cb\n",
            " https://client.example/cb",
            "https://client.example/\tcb",
            "myapp://callback",
            "ftp://client.example/cb",
        ] {
            let result = validate_redirect_uri(uri);
            assert!(
                matches!(result, Err(Error::InvalidRedirectUri(_))),
                "{uri:?} accepted"
            );
        }
    }

    #[test]
    fn overlong_redirect_uri_rejected() {
        let uri = format!(
            "https://client.example/{}",
            "a".repeat(MAX_REDIRECT_URI_BYTES)
        );
        assert!(validate_redirect_uri(&uri).is_err());
    }

    #[test]
    fn duplicate_redirect_uris_collapse() {
        let uris = vec![
            "https://a.example/cb".to_owned(),
            "https://a.example/cb".to_owned(),
            "https://b.example/cb".to_owned(),
        ];
        let unique = validate_redirect_uris(&uris).expect("valid");
        assert_eq!(unique, ["https://a.example/cb", "https://b.example/cb"]);
    }

    #[test]
    fn empty_redirect_uri_list_rejected() {
        assert!(validate_redirect_uris(&[]).is_err());
    }
}
