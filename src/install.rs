//! Installing: the personal access client and the password client, made idempotently and
//! race-free, and repaired when a database refresh loses them.

use crate::app::Sesame;
use crate::error::{Error, Result};
use crate::store::meta::{INSTALLED_AT, PASSWORD_CLIENT, PERSONAL_ACCESS_CLIENT};
use crate::store::{ClientKind, ClientRecord, NewClient, Store, is_read_only};
use crate::token::secret::Secret;

/// The command that creates a personal access client by hand.
pub const PERSONAL_CLIENT_FIX: &str = "sesame client --personal";

/// What an install or repair did.
#[derive(Debug, Default)]
pub struct InstallReport {
    /// The current personal access client's id.
    pub personal_client_id: String,
    /// Whether the personal access client was created by this call.
    pub personal_client_created: bool,
    /// The password client's id, if one is recorded.
    pub password_client_id: Option<String>,
    /// The secret of a password client created by this call, shown once.
    pub password_client_secret: Option<Secret>,
}

impl InstallReport {
    /// Logs what was created, at info.
    pub fn log(&self) {
        if self.personal_client_created {
            tracing::info!(client_id = %self.personal_client_id, "created personal access client");
        }
        if let (Some(id), Some(_)) = (&self.password_client_id, &self.password_client_secret) {
            tracing::info!(
                client_id = %id,
                "created password client; run `sesame client secret {id}` to get a secret"
            );
        }
    }
}

/// Whether the database records a finished installation. A database without Sesame's
/// tables reads as not installed.
pub(crate) async fn is_installed(store: &Store) -> bool {
    let Ok(mut connection) = store.pool().acquire().await else {
        return false;
    };
    matches!(store.meta(&mut connection, INSTALLED_AT).await, Ok(Some(_)))
}

/// Makes sure the personal access client and the password client exist and records the
/// installation. Running it again changes nothing; a revoked password client stays revoked.
///
/// # Errors
///
/// [`Error::Database`] on a query failure.
pub async fn install_clients(sesame: &Sesame) -> Result<InstallReport> {
    let (personal_client_id, personal_client_created) = ensure_personal_client(sesame).await?;
    let (password_client_id, password_client_secret) = ensure_password_client(sesame).await?;
    let store = sesame.store();
    let mut connection = store.pool().acquire().await?;
    let now = sesame.now();
    store
        .insert_meta(&mut connection, INSTALLED_AT, &now.to_string(), now)
        .await?;
    Ok(InstallReport {
        personal_client_id,
        personal_client_created,
        password_client_id: Some(password_client_id),
        password_client_secret,
    })
}

impl Sesame {
    /// Returns the id of the current personal access client, creating one when it is
    /// missing or revoked and installing is automatic. Safe to call from many tasks and
    /// nodes at once: exactly one client becomes current.
    ///
    /// # Errors
    ///
    /// [`Error::PersonalAccessClientMissing`] when no usable client exists and Sesame may not
    /// create one (auto-install off, or a read-only database).
    pub async fn ensure_personal_access_client(&self) -> Result<String> {
        if let Some(id) = current_personal_client(self).await? {
            return Ok(id);
        }
        if !self.config().auto_install {
            return Err(Error::PersonalAccessClientMissing {
                fix: PERSONAL_CLIENT_FIX,
            });
        }
        match ensure_personal_client(self).await {
            Ok((id, created)) => {
                if created {
                    tracing::info!(client_id = %id, "repaired missing personal access client");
                }
                Ok(id)
            }
            Err(error) if is_read_only(&error) => Err(Error::PersonalAccessClientMissing {
                fix: PERSONAL_CLIENT_FIX,
            }),
            Err(error) => Err(error),
        }
    }
}

fn usable_personal_client(client: Option<ClientRecord>) -> Option<String> {
    client
        .filter(|c| c.personal_access_client && !c.revoked)
        .map(|c| c.id)
}

async fn current_personal_client(sesame: &Sesame) -> Result<Option<String>> {
    let store = sesame.store();
    let mut connection = store.pool().acquire().await?;
    let Some(id) = store.meta(&mut connection, PERSONAL_ACCESS_CLIENT).await? else {
        return Ok(None);
    };
    Ok(usable_personal_client(
        store.client_in(&mut connection, &id).await?,
    ))
}

/// Ensures a usable personal access client is recorded as current. Returns its id and
/// whether this call created it.
///
/// The new client and the meta row commit together, and the meta row changes only by a
/// conditional insert or update, so of two racing callers one commits and the other rolls
/// back and uses the winner's client.
async fn ensure_personal_client(sesame: &Sesame) -> Result<(String, bool)> {
    let store = sesame.store();
    loop {
        let mut transaction = store.begin_write().await?;
        let recorded = store.meta(&mut transaction, PERSONAL_ACCESS_CLIENT).await?;
        if let Some(id) = &recorded {
            let client = store.client_in(&mut transaction, id).await?;
            if let Some(id) = usable_personal_client(client) {
                transaction.commit().await?;
                return Ok((id, false));
            }
        }
        let now = sesame.now();
        let client = new_client(ClientKind::Personal, "Sesame Personal Access Client", None)?;
        store
            .insert_client(&mut transaction, &client.0, now)
            .await?;
        let won = match &recorded {
            None => {
                store
                    .insert_meta(&mut transaction, PERSONAL_ACCESS_CLIENT, &client.0.id, now)
                    .await?
            }
            Some(old) => {
                store
                    .replace_meta(
                        &mut transaction,
                        PERSONAL_ACCESS_CLIENT,
                        old,
                        &client.0.id,
                        now,
                    )
                    .await?
            }
        };
        if won {
            transaction.commit().await?;
            return Ok((client.0.id, true));
        }
        transaction.rollback().await?;
    }
}

/// Ensures a password client was made once. Returns its id and, when this call created it,
/// its secret.
async fn ensure_password_client(sesame: &Sesame) -> Result<(String, Option<Secret>)> {
    let store = sesame.store();
    loop {
        let mut transaction = store.begin_write().await?;
        if let Some(id) = store.meta(&mut transaction, PASSWORD_CLIENT).await? {
            transaction.commit().await?;
            return Ok((id, None));
        }
        let now = sesame.now();
        let (client, secret) =
            new_client(ClientKind::Password, "Sesame Password Grant Client", None)?;
        store.insert_client(&mut transaction, &client, now).await?;
        if store
            .insert_meta(&mut transaction, PASSWORD_CLIENT, &client.id, now)
            .await?
        {
            transaction.commit().await?;
            return Ok((client.id, secret));
        }
        transaction.rollback().await?;
    }
}

/// Builds a client of `kind` with a fresh id and, for confidential kinds, a fresh secret.
pub(crate) fn new_client(
    kind: ClientKind,
    name: &str,
    scopes: Option<Vec<String>>,
) -> Result<(NewClient, Option<Secret>)> {
    let secret = if kind.confidential() {
        Some(Secret::generate()?)
    } else {
        None
    };
    let client = NewClient {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        secret_hash: secret.as_ref().map(Secret::stored),
        redirect_uris: Vec::new(),
        grant_types: kind.grant_types(),
        scopes,
        personal_access_client: kind == ClientKind::Personal,
        password_client: kind == ClientKind::Password,
        first_party: matches!(kind, ClientKind::Personal | ClientKind::Password),
        require_pkce: true,
        user_id: None,
        audience: None,
    };
    Ok((client, secret))
}

/// What to create with [`create_client_with`].
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// The kind, which decides grant types and whether there is a secret.
    pub kind: ClientKind,
    /// Display name, 1 to 255 characters.
    pub name: String,
    /// Scopes it may request; `None` allows every declared scope.
    pub scopes: Option<Vec<String>>,
    /// Exact redirect URIs; required for authorization code clients.
    pub redirect_uris: Vec<String>,
    /// Skip the consent page (confidential clients only).
    pub first_party: bool,
    /// Require PKCE; only a confidential client may turn it off.
    pub require_pkce: bool,
    /// The audience a resource server introspects for; the default audience when `None`.
    pub audience: Option<String>,
}

impl ClientSpec {
    /// A spec with the defaults: no redirect URIs, third-party, PKCE required.
    pub fn new(kind: ClientKind, name: &str) -> ClientSpec {
        ClientSpec {
            kind,
            name: name.to_owned(),
            scopes: None,
            redirect_uris: Vec::new(),
            first_party: matches!(kind, ClientKind::Personal | ClientKind::Password),
            require_pkce: true,
            audience: None,
        }
    }
}

/// Creates a client of `kind` with default options. See [`create_client_with`].
///
/// # Errors
///
/// As [`create_client_with`].
pub async fn create_client(
    sesame: &Sesame,
    kind: ClientKind,
    name: &str,
    scopes: Option<Vec<String>>,
) -> Result<(ClientRecord, Option<Secret>)> {
    let spec = ClientSpec {
        scopes,
        ..ClientSpec::new(kind, name)
    };
    create_client_with(sesame, &spec).await
}

/// Creates a client; a new personal access client becomes the current one. Returns the
/// stored record and, once, the plain secret.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an empty name, a missing or invalid redirect URI, a public
/// first-party client or a public client without PKCE; [`Error::UnknownScope`] for an
/// undeclared scope; [`Error::Database`] on a query failure.
pub async fn create_client_with(
    sesame: &Sesame,
    spec: &ClientSpec,
) -> Result<(ClientRecord, Option<Secret>)> {
    let kind = spec.kind;
    let name = validate_client_name(&spec.name)?;
    if let Some(scopes) = &spec.scopes {
        for scope in scopes {
            if sesame.config().scope_description(scope).is_none() {
                return Err(Error::UnknownScope(scope.clone()));
            }
        }
    }
    if kind.needs_redirect_uri() && spec.redirect_uris.is_empty() {
        return Err(Error::InvalidInput(
            "an authorization code client needs at least one --redirect-uri".into(),
        ));
    }
    let redirect_uris = if spec.redirect_uris.is_empty() {
        Vec::new()
    } else {
        crate::clients::validate_redirect_uris(&spec.redirect_uris).map_err(
            |error| match error {
                Error::InvalidRedirectUri(message) => Error::InvalidInput(message),
                other => other,
            },
        )?
    };
    let public = matches!(kind, ClientKind::Public | ClientKind::Device);
    if public && spec.first_party {
        return Err(Error::InvalidInput(
            "a public client cannot be first-party: anyone can start a flow with its id".into(),
        ));
    }
    if public && !spec.require_pkce {
        return Err(Error::InvalidInput(
            "public clients always require PKCE".into(),
        ));
    }
    let store = sesame.store();
    let (mut client, secret) = new_client(kind, name, spec.scopes.clone())?;
    client.redirect_uris = redirect_uris;
    client.first_party = spec.first_party;
    client.require_pkce = spec.require_pkce;
    if kind == ClientKind::ResourceServer {
        let audience = spec.audience.clone();
        client.audience = Some(audience.unwrap_or_else(|| sesame.config().audience.clone()));
    }
    let now = sesame.now();
    let mut transaction = store.begin_write().await?;
    store.insert_client(&mut transaction, &client, now).await?;
    if kind == ClientKind::Personal {
        match store.meta(&mut transaction, PERSONAL_ACCESS_CLIENT).await? {
            Some(old) => {
                store
                    .replace_meta(
                        &mut transaction,
                        PERSONAL_ACCESS_CLIENT,
                        &old,
                        &client.id,
                        now,
                    )
                    .await?;
            }
            None => {
                store
                    .insert_meta(&mut transaction, PERSONAL_ACCESS_CLIENT, &client.id, now)
                    .await?;
            }
        }
    }
    let record = store.client_in(&mut transaction, &client.id).await?;
    transaction.commit().await?;
    let record = record.ok_or_else(|| Error::NotFound {
        kind: "client",
        id: client.id,
    })?;
    Ok((record, secret))
}

/// Creates a resource server: a confidential client without grants that may introspect the
/// access tokens whose `aud` names `audience` (the default audience when `None`). Returns the
/// stored record and, once, the plain secret.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an empty name or an audience that is not an absolute URI
/// without a fragment, [`Error::Database`] on a query failure.
pub async fn create_resource_server(
    sesame: &Sesame,
    name: &str,
    audience: Option<&str>,
) -> Result<(ClientRecord, Option<Secret>)> {
    let audience = match audience {
        Some(audience) => {
            validate_audience(audience)?;
            audience.to_owned()
        }
        None => sesame.config().audience.clone(),
    };
    let spec = ClientSpec {
        audience: Some(audience),
        ..ClientSpec::new(ClientKind::ResourceServer, name)
    };
    create_client_with(sesame, &spec).await
}

/// Trims a client name and checks that it is 1 to 255 characters, none of them a control or
/// invisible formatting character (see [`crate::names`]).
pub(crate) fn validate_client_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > 255
        || name.chars().any(crate::names::is_forbidden_in_name)
    {
        return Err(Error::InvalidInput(
            "a client name must be 1 to 255 characters without control or invisible formatting \
             characters"
                .into(),
        ));
    }
    Ok(name)
}

/// Checks that an audience is an absolute URI without a fragment, as RFC 8707 requires of a
/// resource indicator.
fn validate_audience(audience: &str) -> Result<()> {
    let invalid = |reason: &str| {
        Error::InvalidInput(format!(
            "audience {audience:?} {reason}; use an absolute URI such as https://api.example.com"
        ))
    };
    if audience
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("contains whitespace or control characters"));
    }
    let parsed = url::Url::parse(audience).map_err(|_| invalid("is not an absolute URI"))?;
    if parsed.fragment().is_some() {
        return Err(invalid("has a fragment"));
    }
    Ok(())
}
