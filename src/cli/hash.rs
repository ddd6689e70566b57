//! `sesame hash`.

use std::process::ExitCode;

use serde_json::json;
use sesame::Config;

use super::Output;

/// Replaces plain client secrets with `sha256:` hashes and prints how many it changed.
pub async fn run(config: Config, migrate: bool, output: &Output) -> anyhow::Result<ExitCode> {
    let sesame = super::open(config, migrate).await?;
    let hashed = sesame.hash_plain_client_secrets().await?;
    let text = match hashed {
        0 => "No plain client secrets found; nothing changed.".to_owned(),
        1 => "Hashed 1 plain client secret.".to_owned(),
        count => format!("Hashed {count} plain client secrets."),
    };
    output.print(&json!({"hashed": hashed}), &text);
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}
