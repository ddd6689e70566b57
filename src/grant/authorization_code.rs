//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636): checking authorization
//! requests, issuing codes and redeeming them.

use std::collections::HashMap;

use aws_lc_rs::digest;
use subtle::ConstantTimeEq as _;

use crate::app::Sesame;
use crate::error::Error;
use crate::grant::{
    GrantError, Issue, OAuthError, Params, TokenResponse, issue_access_token, issue_refresh_token,
    ttl_seconds,
};
use crate::redirect;
use crate::store::{ClientRecord, NewAuthCode};
use crate::token::id_token::{IdTokenFor, sign_id_token};
use crate::token::secret::{Secret, b64, hash_secret};

/// Lifetime of an authorization code, in seconds.
pub const CODE_TTL_SECONDS: i64 = 600;

/// The longest `state` echoed back, in bytes.
const MAX_STATE_BYTES: usize = 8192;
/// The longest `nonce` stored, in characters.
const MAX_NONCE_CHARS: usize = 512;

/// A checked authorization request.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The client.
    pub client: ClientRecord,
    /// The redirect URI the response goes to.
    pub redirect_uri: String,
    /// Whether the request named the redirect URI (the token request must then repeat it).
    pub redirect_uri_given: bool,
    /// Requested scopes, checked for the client.
    pub scopes: Vec<String>,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// The OpenID Connect nonce.
    pub nonce: Option<String>,
    /// The `prompt` values, space-separated: `none` alone, or `login`, `consent` or both.
    pub prompt: Option<String>,
}

/// The failure of an authorization request.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect.
    Page(String),
    /// Send the error to the client's redirect URI (RFC 6749 §4.1.2.1).
    Redirect {
        /// The trusted redirect URI.
        redirect_uri: String,
        /// The `error` code.
        error: &'static str,
        /// The `error_description`.
        description: String,
        /// The client's `state`.
        state: Option<String>,
    },
    /// A server-side failure.
    Internal(Error),
}

impl From<Error> for AuthorizeError {
    fn from(error: Error) -> Self {
        AuthorizeError::Internal(error)
    }
}

/// The parameters of an authorization request's query string.
#[derive(Debug, Default)]
pub struct QueryParams {
    /// Each well-formed parameter's value; for a repeated one, the last.
    pub values: HashMap<String, String>,
    /// The names given more than once.
    pub repeated: Vec<String>,
    /// The names whose name or value has malformed percent-encoding, is not UTF-8 once
    /// decoded, or contains a NUL byte. They have no value in `values`.
    pub malformed: Vec<String>,
}

/// Checks an authorization request. Problems with `client_id` or `redirect_uri` are
/// [`AuthorizeError::Page`]; every later problem redirects with `error`, `state` and `iss`.
pub async fn check_request(
    sesame: &Sesame,
    query: &QueryParams,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let repeated = &query.repeated;
    let get = |name: &str| {
        query
            .values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let names_client = |name: &String| name == "client_id" || name == "redirect_uri";
    if repeated.iter().any(names_client) {
        return Err(AuthorizeError::Page(
            "client_id or redirect_uri was given more than once".into(),
        ));
    }
    if query.malformed.iter().any(names_client) {
        return Err(AuthorizeError::Page(
            "client_id or redirect_uri has malformed percent-encoding, invalid UTF-8 or a NUL \
             byte"
                .into(),
        ));
    }
    let client_id =
        get("client_id").ok_or_else(|| AuthorizeError::Page("client_id is missing".into()))?;
    let client = match sesame.store().client(client_id).await? {
        Some(client) if !client.revoked && client.allows_grant("authorization_code") => client,
        _ => {
            return Err(AuthorizeError::Page(
                "the application is unknown or not allowed to sign users in".into(),
            ));
        }
    };
    let (redirect_uri, redirect_uri_given) = match get("redirect_uri") {
        Some(requested) => match redirect::find_match(&client.redirect_uris, requested) {
            Some(_) => (requested.to_owned(), true),
            None => {
                return Err(AuthorizeError::Page(
                    "the redirect URI is not registered for this application".into(),
                ));
            }
        },
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            _ => {
                return Err(AuthorizeError::Page(
                    "redirect_uri is required because the application registered several".into(),
                ));
            }
        },
    };

    // A repeated state is echoed not at all: either copy could be the one the client checks.
    let state = get("state")
        .filter(|_| !repeated.iter().any(|name| name == "state"))
        .map(str::to_owned);
    let fail = |error: &'static str, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: state.clone().filter(|s| s.len() <= MAX_STATE_BYTES),
    };
    if let Some(name) = repeated.first() {
        return Err(fail(
            "invalid_request",
            &format!("{} was given more than once", parameter_label(name)),
        ));
    }
    if let Some(name) = query.malformed.first() {
        return Err(fail(
            "invalid_request",
            &format!(
                "{} has malformed percent-encoding, invalid UTF-8 or a NUL byte",
                parameter_label(name)
            ),
        ));
    }
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
        return Err(fail("invalid_request", "state is too long"));
    }
    match get("response_type") {
        None => return Err(fail("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) if client.require_pkce || !client.is_confidential() => {
            return Err(fail(
                "invalid_request",
                "code_challenge (PKCE with S256) is required",
            ));
        }
        (None, None) => None,
        (Some(challenge), Some("S256")) if is_s256_challenge(challenge) => {
            Some(challenge.to_owned())
        }
        (Some(_), Some("S256")) => {
            return Err(fail(
                "invalid_request",
                "code_challenge must be 43 base64url characters",
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method was sent without a code_challenge",
            ));
        }
        (Some(_), _) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
    };
    let scopes = crate::scopes::parse(get("scope").unwrap_or_default())
        .map_err(|error| fail("invalid_scope", &error.0))?;
    crate::scopes::check_for_client(sesame.config(), &client, &scopes)
        .map_err(|error| fail("invalid_scope", &error.0))?;
    let nonce = get("nonce").map(str::to_owned);
    if nonce
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NONCE_CHARS)
    {
        return Err(fail("invalid_request", "nonce is too long"));
    }
    // Responses go back in the query string only, as the metadata lists, so a client that
    // requested them elsewhere would wait for a response that never comes.
    if let Some(mode) = get("response_mode").filter(|mode| *mode != "query") {
        return Err(fail(
            "invalid_request",
            &format!("response_mode {mode:?} is not supported; only query is"),
        ));
    }
    let prompt = match get("prompt") {
        None => None,
        Some(value) => {
            let values: Vec<&str> = value.split(' ').filter(|v| !v.is_empty()).collect();
            let known = values
                .iter()
                .all(|v| matches!(*v, "none" | "login" | "consent"));
            // none forbids every page, so it cannot go with login or consent, which ask for one.
            if !known || (values.contains(&"none") && values.len() > 1) {
                return Err(fail(
                    "invalid_request",
                    "prompt must be none alone, or login, consent or both",
                ));
            }
            Some(values.join(" "))
        }
    };
    Ok(AuthorizationRequest {
        client,
        redirect_uri,
        redirect_uri_given,
        scopes,
        state,
        code_challenge,
        nonce,
        prompt,
    })
}

/// Checks that `text` has the shape of an S256 challenge: 43 base64url characters.
fn is_s256_challenge(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks that `text` is a valid PKCE verifier: 43 to 128 unreserved characters (RFC 7636 §4.1).
fn is_verifier(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The approved parts of an authorization request, which a code carries.
#[derive(Clone, Copy, Debug)]
pub struct Approval<'a> {
    /// The client.
    pub client_id: &'a str,
    /// The redirect URI the response goes to.
    pub redirect_uri: &'a str,
    /// Whether the request named the redirect URI.
    pub redirect_uri_given: bool,
    /// Approved scopes.
    pub scopes: &'a [String],
    /// The client's `state`.
    pub state: Option<&'a str>,
    /// The PKCE challenge.
    pub code_challenge: Option<&'a str>,
    /// The OpenID Connect nonce.
    pub nonce: Option<&'a str>,
}

/// Names a parameter in an `error_description`, which RFC 6749 §4.1.2.1 limits to printable
/// ASCII. A name with other characters than letters, digits, `_`, `-` and `.` is left out.
fn parameter_label(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        format!("parameter {name}")
    } else {
        "a parameter".to_owned()
    }
}

impl AuthorizationRequest {
    /// Returns whether the request's `prompt` contains `value`.
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt
            .as_deref()
            .is_some_and(|prompt| prompt.split(' ').any(|v| v == value))
    }

    /// Returns the parts of this request a code carries.
    pub fn approval(&self) -> Approval<'_> {
        Approval {
            client_id: &self.client.id,
            redirect_uri: &self.redirect_uri,
            redirect_uri_given: self.redirect_uri_given,
            scopes: &self.scopes,
            state: self.state.as_deref(),
            code_challenge: self.code_challenge.as_deref(),
            nonce: self.nonce.as_deref(),
        }
    }
}

/// Issues a code for an approved request and returns the URI to redirect the browser to.
///
/// # Errors
///
/// [`Error::Database`] or [`Error::Crypto`].
pub async fn issue_code(
    sesame: &Sesame,
    approval: &Approval<'_>,
    user_id: i64,
    auth_time: i64,
) -> Result<String, Error> {
    let code = Secret::generate()?;
    let now = sesame.now();
    let record = NewAuthCode {
        id: uuid::Uuid::now_v7().to_string(),
        code_hash: code.stored(),
        user_id,
        client_id: approval.client_id.to_owned(),
        scopes: approval.scopes.to_vec(),
        redirect_uri: approval
            .redirect_uri_given
            .then(|| approval.redirect_uri.to_owned()),
        code_challenge: approval.code_challenge.map(str::to_owned),
        nonce: approval.nonce.map(str::to_owned),
        auth_time,
        created_at: now,
        expires_at: now + CODE_TTL_SECONDS,
    };
    sesame.store().insert_auth_code(&record).await?;
    tracing::info!(
        client_id = approval.client_id,
        user_id,
        "issued authorization code"
    );
    let issuer = sesame.config().issuer.clone();
    let mut params = vec![("code", code.expose())];
    if let Some(state) = approval.state {
        params.push(("state", state));
    }
    params.push(("iss", issuer.as_str()));
    Ok(redirect::with_params(approval.redirect_uri, &params))
}

/// Builds the redirect that carries an authorization error.
pub fn error_redirect(
    sesame: &Sesame,
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> String {
    let issuer = sesame.config().issuer.clone();
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        params.push(("state", state));
    }
    params.push(("iss", issuer.as_str()));
    redirect::with_params(redirect_uri, &params)
}

/// Redeems a code at the token endpoint.
///
/// The code is marked used by a conditional update in the same transaction that stores the
/// tokens, so exactly one redemption succeeds. A second redemption revokes the tokens the
/// first one issued. A failed check after the code was claimed (redirect URI, PKCE, user)
/// still spends it: a code gets one attempt.
///
/// # Errors
///
/// `unauthorized_client`, `invalid_request` and `invalid_grant` as RFC 6749 §4.1.3 and
/// RFC 7636 §4.6 describe.
pub async fn grant(
    sesame: &Sesame,
    client: &ClientRecord,
    params: &Params,
) -> Result<TokenResponse, GrantError> {
    if !client.allows_grant("authorization_code") {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the authorization_code grant",
        )
        .into());
    }
    let code = params.require("code")?;
    let verifier = params.get("code_verifier");
    let store = sesame.store();
    let now = sesame.now();
    let invalid = |description: &str| GrantError::OAuth(OAuthError::invalid_grant(description));

    let mut transaction = store.begin_write().await?;
    let Some(record) = store
        .auth_code_by_hash(&mut transaction, &hash_secret(code))
        .await?
    else {
        return Err(invalid("the authorization code is invalid"));
    };
    if record.client_id != client.id {
        return Err(invalid(
            "the authorization code was issued to another client",
        ));
    }
    if !store
        .use_auth_code(&mut transaction, &record.id, now)
        .await?
    {
        transaction.rollback().await?;
        revoke_code_tokens(sesame, code, now).await?;
        tracing::warn!(client_id = %client.id, "authorization code replayed; revoked its tokens");
        return Err(invalid("the authorization code was already used"));
    }
    let failure = check_redemption(&record, params.get("redirect_uri"), verifier, now);
    let failure = match failure {
        Some(description) => Some(description),
        None => match store.user_in(&mut transaction, record.user_id).await? {
            Some(user) if !user.disabled => None,
            _ => Some("the user is no longer active"),
        },
    };
    if let Some(description) = failure {
        transaction.commit().await?;
        return Err(invalid(description));
    }

    let ttl = ttl_seconds(sesame.config().access_ttl);
    let issue = Issue {
        user_id: Some(record.user_id),
        client_id: &client.id,
        scopes: &record.scopes,
        ttl_seconds: ttl,
        name: None,
    };
    let (access_token, row) = issue_access_token(sesame, &mut transaction, issue).await?;
    let family_id = uuid::Uuid::now_v7().to_string();
    let refresh_token = if client.allows_grant("refresh_token") {
        Some(issue_refresh_token(sesame, &mut transaction, &row, &family_id, &record.scopes).await?)
    } else {
        None
    };
    store
        .record_code_tokens(&mut transaction, &record.id, &row.id, &family_id)
        .await?;
    transaction.commit().await?;
    let id_token = if record.scopes.iter().any(|scope| scope == "openid") {
        let subject = IdTokenFor {
            user_id: record.user_id,
            client_id: &client.id,
            nonce: record.nonce.as_deref(),
            auth_time: record.auth_time,
            access_token: &access_token,
            ttl_seconds: ttl,
        };
        Some(sign_id_token(sesame, &subject).await?)
    } else {
        None
    };
    Ok(TokenResponse {
        token_type: "Bearer",
        expires_in: ttl,
        access_token,
        refresh_token,
        scope: record.scopes.join(" "),
        id_token,
    })
}

/// Revokes the tokens that the redemption of `code` issued.
///
/// This runs in a new transaction because the replay's own transaction may have read the code
/// before a concurrent redemption committed. PostgreSQL and MySQL then block the conditional
/// update until that commit, and the update matches no row, but the earlier read still lacks
/// the issued token ids. A new transaction reads them after that commit.
async fn revoke_code_tokens(sesame: &Sesame, code: &str, now: i64) -> Result<(), GrantError> {
    let store = sesame.store();
    let mut transaction = store.begin_write().await?;
    let Some(record) = store
        .auth_code_by_hash(&mut transaction, &hash_secret(code))
        .await?
    else {
        return Ok(());
    };
    if let Some(family_id) = &record.family_id {
        store
            .revoke_refresh_family(&mut transaction, family_id, now)
            .await?;
    }
    if let Some(access_token_id) = &record.access_token_id {
        store
            .revoke_access_token(&mut transaction, access_token_id, now)
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Checks expiry, the redirect URI and PKCE; returns why the redemption fails, if it does.
fn check_redemption(
    record: &crate::store::AuthCodeRecord,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
    now: i64,
) -> Option<&'static str> {
    if record.expires_at <= now {
        return Some("the authorization code expired");
    }
    if record.redirect_uri.as_deref() != redirect_uri {
        return Some("redirect_uri does not match the authorization request");
    }
    match (&record.code_challenge, verifier) {
        (None, None) => None,
        (None, Some(_)) => Some("code_verifier was sent for a code issued without PKCE"),
        (Some(_), None) => Some("code_verifier is missing"),
        (Some(_), Some(verifier)) if !is_verifier(verifier) => Some("code_verifier is malformed"),
        (Some(challenge), Some(verifier)) => {
            let computed = b64(digest::digest(&digest::SHA256, verifier.as_bytes()));
            if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                None
            } else {
                Some("code_verifier does not match the code_challenge")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_shape() {
        assert!(is_verifier(&"a".repeat(43)));
        assert!(is_verifier(&"a-._~".repeat(20)));
        assert!(!is_verifier(&"a".repeat(42)));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+/=", "a".repeat(43))));
    }

    #[test]
    fn challenge_shape() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = b64(digest::digest(&digest::SHA256, verifier.as_bytes()));
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_s256_challenge(&challenge));
        assert!(!is_s256_challenge(&format!("{challenge}=")));
    }
}
