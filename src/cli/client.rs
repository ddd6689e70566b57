//! `sesame client`.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;
use sesame::Config;
use sesame::install::ClientSpec;
use sesame::store::{ClientKind, ClientRecord, PERSONAL_ACCESS_CLIENT};

use super::{Output, UsageError, split_scopes};

/// Arguments of `sesame client`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    group(ArgGroup::new("kind").args([
        "personal",
        "password",
        "client",
        "public",
        "device",
        "resource_server"
    ]))
)]
pub struct ClientArgs {
    #[command(subcommand)]
    action: Option<ClientAction>,
    /// Create a personal access client and make it the current one
    #[arg(long)]
    personal: bool,
    /// Create a password grant client (first-party, confidential)
    #[arg(long)]
    password: bool,
    /// Create a client credentials client (confidential)
    #[arg(long)]
    client: bool,
    /// Create a public authorization code client (no secret, PKCE required)
    #[arg(long)]
    public: bool,
    /// Create a public device authorization client (RFC 8628)
    #[arg(long)]
    device: bool,
    /// Redirect URI, exact; repeat for several. Without a kind flag, creates a confidential
    /// authorization code client
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// Skip the consent page for this (confidential) client
    #[arg(long)]
    first_party: bool,
    /// Do not require PKCE (confidential legacy clients only)
    #[arg(long)]
    no_pkce: bool,
    /// Create a resource server: a confidential client without grants that may introspect
    /// access tokens issued for its audience
    #[arg(long)]
    resource_server: bool,
    /// Audience of a resource server, an absolute URI (default: SESAME_AUDIENCE, which
    /// defaults to the issuer)
    #[arg(
        long,
        value_name = "URI",
        requires = "resource_server",
        conflicts_with_all = ["personal", "password", "client", "public", "device"]
    )]
    audience: Option<String>,
    /// Display name of the new client
    #[arg(long, value_name = "NAME", value_parser = super::non_blank)]
    name: Option<String>,
    /// Scopes the client may request, comma-separated (default: every declared scope)
    #[arg(long, value_name = "A,B")]
    scopes: Option<String>,
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// List clients (secrets are never shown)
    List,
    /// Revoke a client: it can no longer authenticate and its tokens stop working
    Revoke {
        /// The client id
        id: String,
    },
    /// Replace a confidential client's secret; the new one is shown once
    Secret {
        /// The client id
        id: String,
    },
}

/// Runs `sesame client`.
pub async fn run(
    config: Config,
    mut args: ClientArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    // Arguments are checked before the database or the keys are touched.
    let job = match args.action.take() {
        Some(action) => Job::Action(action),
        None => Job::Create(kind_to_create(&args)?),
    };
    let sesame = super::open(config, migrate).await?;
    let code = match job {
        Job::Action(ClientAction::List) => {
            let clients = sesame.store().clients().await?;
            let current = CurrentPersonalClient::read(&sesame).await?;
            let value = json!({
                "clients": clients
                    .iter()
                    .map(|client| client_json(client, current.is(client)))
                    .collect::<Vec<_>>(),
            });
            let mut text = String::new();
            for client in &clients {
                text.push_str(&format!(
                    "{}  {}  [{}]{}",
                    client.id,
                    client.name,
                    client.grant_types.join(", "),
                    if client.revoked { "  revoked" } else { "" }
                ));
                if current.is(client) {
                    text.push_str("  current personal access client");
                }
                text.push('\n');
            }
            if clients.is_empty() {
                text.push_str("No clients.");
            }
            output.print(&value, text.trim_end());
            ExitCode::SUCCESS
        }
        Job::Action(ClientAction::Revoke { id }) => {
            if !sesame.store().revoke_client(&id, sesame.now()).await? {
                anyhow::bail!("client {id} not found; `sesame client list` shows the ids");
            }
            output.print(
                &json!({"id": id, "revoked": true}),
                &format!("Revoked client {id}."),
            );
            ExitCode::SUCCESS
        }
        Job::Action(ClientAction::Secret { id }) => {
            let secret = sesame::token::secret::Secret::generate()?;
            if !sesame
                .store()
                .set_client_secret(&id, &secret.stored(), sesame.now())
                .await?
            {
                anyhow::bail!("client {id} not found or public (public clients have no secret)");
            }
            output.print(
                &json!({"id": id, "secret": secret.expose()}),
                &format!("New secret for client {id}: {}\nThe old secret no longer works. This one is shown only now.", secret.expose()),
            );
            ExitCode::SUCCESS
        }
        Job::Create(kind) => {
            let default_name = match kind {
                ClientKind::Personal => "Personal Access Client",
                ClientKind::Password => "Password Grant Client",
                ClientKind::ClientCredentials => "Client Credentials Client",
                ClientKind::AuthorizationCode => "Web Application",
                ClientKind::Public => "Public Application",
                ClientKind::Device => "Device Application",
                ClientKind::ResourceServer => "Resource Server",
            };
            let scopes = args.scopes.as_deref().map(|s| split_scopes(Some(s)));
            let name = args.name.as_deref().unwrap_or(default_name);
            let (client, secret) = if kind == ClientKind::ResourceServer {
                let audience = args.audience.as_deref();
                sesame::install::create_resource_server(&sesame, name, audience).await?
            } else {
                let mut spec = ClientSpec::new(kind, name);
                spec.scopes = scopes;
                spec.redirect_uris = args.redirect_uris.clone();
                spec.first_party = spec.first_party || args.first_party;
                spec.require_pkce = !args.no_pkce;
                sesame::install::create_client_with(&sesame, &spec).await?
            };
            let current = CurrentPersonalClient::read(&sesame).await?.is(&client);
            let mut value = client_json(&client, current);
            value["secret"] = json!(secret.as_ref().map(|s| s.expose()));
            let mut text = format!(
                "Client created.\nClient ID: {}\nName: {}\n",
                client.id, client.name
            );
            if let Some(audience) = &client.audience {
                text.push_str(&format!("Audience: {audience}\n"));
            }
            if current {
                text.push_str("It is now the current personal access client.\n");
            }
            match &secret {
                Some(secret) => text.push_str(&format!(
                    "Client secret: {}\nThe secret is shown only now; store it safely.",
                    secret.expose()
                )),
                None => text.push_str("This client has no secret."),
            }
            output.print(&value, &text);
            ExitCode::SUCCESS
        }
    };
    sesame.close().await;
    Ok(code)
}

/// The personal access client that `sesame_meta` records as current, when it exists and is not
/// revoked. `client list` marks it, because an earlier one replaced by `client --personal` stays
/// in the list, unrevoked, for the tokens it issued.
struct CurrentPersonalClient(Option<String>);

impl CurrentPersonalClient {
    async fn read(sesame: &sesame::Sesame) -> anyhow::Result<CurrentPersonalClient> {
        let store = sesame.store();
        let mut connection = store.pool().acquire().await?;
        Ok(CurrentPersonalClient(
            store.meta(&mut connection, PERSONAL_ACCESS_CLIENT).await?,
        ))
    }

    /// Returns whether `client` is the current, usable personal access client. A revoked one
    /// is not: the next token request replaces it.
    fn is(&self, client: &ClientRecord) -> bool {
        // Compared here, byte for byte, because MySQL's collations ignore trailing spaces.
        client.personal_access_client
            && !client.revoked
            && self.0.as_deref() == Some(client.id.as_str())
    }
}

fn client_json(client: &ClientRecord, current: bool) -> serde_json::Value {
    json!({
        "id": client.id,
        "name": client.name,
        "grant_types": client.grant_types,
        "scopes": client.scopes,
        "confidential": client.is_confidential(),
        "personal_access_client": client.personal_access_client,
        "password_client": client.password_client,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uris,
        "require_pkce": client.require_pkce,
        "revoked": client.revoked,
        "audience": client.audience,
        "created_at": client.created_at,
        "current_personal_access_client": current,
    })
}

/// The work of one `sesame client` command: a subcommand, or a client to create.
enum Job {
    Action(ClientAction),
    Create(ClientKind),
}

/// Works out from its flags the kind of client that `sesame client` without a subcommand
/// creates.
fn kind_to_create(args: &ClientArgs) -> Result<ClientKind, UsageError> {
    let kind = if args.personal {
        ClientKind::Personal
    } else if args.password {
        ClientKind::Password
    } else if args.client {
        ClientKind::ClientCredentials
    } else if args.public {
        ClientKind::Public
    } else if args.device {
        ClientKind::Device
    } else if args.resource_server {
        ClientKind::ResourceServer
    } else if !args.redirect_uris.is_empty() {
        ClientKind::AuthorizationCode
    } else {
        return Err(UsageError(
            "say which client to create: --redirect-uri URI for a web application, or --public, \
             --device, --client, --password, --personal or --resource-server",
        ));
    };
    if kind == ClientKind::Public && args.redirect_uris.is_empty() {
        return Err(UsageError(
            "a public client signs users in through a redirect; add --redirect-uri URI",
        ));
    }
    if kind == ClientKind::ResourceServer && args.scopes.is_some() {
        return Err(UsageError(
            "a resource server requests no scopes; drop --scopes",
        ));
    }
    Ok(kind)
}
