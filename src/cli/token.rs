//! `sesame token`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use sesame::Config;

use super::{Output, split_scopes};

/// Arguments of `sesame token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user, by numeric id or name
    #[arg(long, value_name = "ID_OR_NAME")]
    user: String,
    /// Token name
    #[arg(long, value_name = "NAME", default_value = "CLI token")]
    name: String,
    /// Scopes, comma-separated (declared or built-in, including sesame:account)
    #[arg(long, value_name = "A,B")]
    scopes: Option<String>,
}

/// Issues a personal access token. The token alone goes to stdout (one JSON object with
/// `--json`), the details to stderr.
pub async fn run(
    config: Config,
    args: TokenArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let sesame = super::open(config, migrate).await?;
    let user = sesame.find_user(&args.user).await?;
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
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}
