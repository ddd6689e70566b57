//! `sesame purge`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use sesame::Config;
use sesame::purge::PurgeOptions;

use super::Output;

/// Arguments of `sesame purge`. Without `--revoked` or `--expired` it deletes both.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete revoked tokens
    #[arg(long)]
    revoked: bool,
    /// Delete expired tokens
    #[arg(long)]
    expired: bool,
    /// Keep tokens that expired or were revoked within this many hours
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    hours: u32,
}

/// Deletes revoked and expired tokens and expired sessions and codes, retires keys no live
/// token needs and prints the counts.
pub async fn run(
    config: Config,
    args: PurgeArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let sesame = super::open(config, migrate).await?;
    let both = !args.revoked && !args.expired;
    let options = PurgeOptions {
        revoked: args.revoked || both,
        expired: args.expired || both,
        keep_hours: args.hours,
    };
    let report = sesame.purge(options).await?;
    let mut text = format!(
        "Deleted {} access tokens and {} refresh tokens.",
        report.access_tokens, report.refresh_tokens
    );
    if options.expired {
        text.push_str(&format!(
            "\nDeleted {} expired sessions, {} authorization codes and {} device codes.",
            report.sessions, report.authorization_codes, report.device_codes
        ));
    }
    for kid in &report.retired_keys {
        text.push_str(&format!("\nRetired key {kid}: no live token uses it."));
    }
    output.print(
        &json!({
            "access_tokens": report.access_tokens,
            "refresh_tokens": report.refresh_tokens,
            "retired_keys": report.retired_keys,
            "sessions": report.sessions,
            "authorization_codes": report.authorization_codes,
            "device_codes": report.device_codes,
        }),
        &text,
    );
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}
