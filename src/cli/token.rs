//! `sesame token`.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;
use sesame::Config;

use super::{Output, split_scopes};

/// Arguments of `sesame token`: issue a token, or list or revoke a user's tokens.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    action: Option<TokenAction>,
    /// The user, by numeric id or name
    #[arg(long, value_name = "ID_OR_NAME", required = true)]
    user: Option<String>,
    /// Token name
    #[arg(
        long,
        value_name = "NAME",
        default_value = "CLI token",
        value_parser = super::non_blank
    )]
    name: String,
    /// Scopes, comma-separated (declared or built-in, including sesame:account)
    #[arg(long, value_name = "A,B")]
    scopes: Option<String>,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// List a user's personal access tokens that are neither revoked nor expired
    List {
        /// The user, by numeric id or name
        #[arg(long, value_name = "ID_OR_NAME")]
        user: String,
    },
    /// Revoke a personal access token by its id
    Revoke {
        /// The token's id (its `jti`), as `sesame token list` shows it
        id: String,
    },
}

/// Runs `sesame token`. Issuing prints the token alone to stdout (one JSON object with
/// `--json`) and the details to stderr.
pub async fn run(
    config: Config,
    args: TokenArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let sesame = super::open(config, migrate).await?;
    let result = match args.action {
        Some(TokenAction::List { user }) => list(&sesame, &user, output).await,
        Some(TokenAction::Revoke { id }) => revoke(&sesame, &id, output).await,
        None => issue(&sesame, &args, output).await,
    };
    sesame.close().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn issue(sesame: &sesame::Sesame, args: &TokenArgs, output: &Output) -> anyhow::Result<()> {
    let Some(user) = args.user.as_deref() else {
        bail!("--user is required to issue a token");
    };
    let user = sesame.find_user(user).await?;
    let scopes = split_scopes(args.scopes.as_deref());
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let created = sesame.create_token(user.id, &args.name, &scopes).await?;
    if !output.json {
        eprintln!(
            "Personal access token {} for user {} ({}), scopes [{}], expires at {} (Unix time).",
            created.token.id,
            user.name,
            user.id,
            created.token.scopes.join(" "),
            created.token.expires_at
        );
    }
    output.print(
        &json!({"accessToken": created.access_token, "token": created.token}),
        &created.access_token,
    );
    Ok(())
}

async fn list(sesame: &sesame::Sesame, user: &str, output: &Output) -> anyhow::Result<()> {
    let user = sesame.find_user(user).await?;
    let tokens = sesame
        .store()
        .personal_tokens(user.id, sesame.now())
        .await?;
    let mut text = String::new();
    for token in &tokens {
        text.push_str(&format!(
            "{}  {}  [{}]  expires at {}\n",
            token.id,
            token.name.as_deref().unwrap_or_default(),
            token.scopes.join(" "),
            token.expires_at
        ));
    }
    if tokens.is_empty() {
        text.push_str(&format!(
            "No personal access tokens for user {}.",
            user.name
        ));
    }
    output.print(&json!({"tokens": tokens}), text.trim_end());
    Ok(())
}

async fn revoke(sesame: &sesame::Sesame, id: &str, output: &Output) -> anyhow::Result<()> {
    let token = sesame.store().access_token(id).await?;
    let owner = token
        .filter(|row| row.is_personal())
        .and_then(|row| row.user_id);
    let revoked = match owner {
        Some(user_id) => {
            let now = sesame.now();
            let store = sesame.store();
            store.revoke_personal_token(id, user_id, now).await?
        }
        None => false,
    };
    if !revoked {
        bail!(
            "personal access token not found or already revoked: {id:?}; `sesame token list \
             --user NAME` lists a user's tokens"
        );
    }
    output.print(
        &json!({"id": id, "revoked": true}),
        &format!("Revoked personal access token {id}."),
    );
    Ok(())
}
