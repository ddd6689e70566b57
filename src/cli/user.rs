//! `sesame user`.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use sesame::Config;

use super::Output;

/// Arguments of `sesame user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user
    Add {
        /// Login name (no spaces)
        name: String,
        /// E-mail address
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// Read the password from standard input (one line); without it the user cannot sign
        /// in with a password
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users
    List,
}

/// Runs `sesame user`.
pub async fn run(
    config: Config,
    args: UserArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let sesame = super::open(config, migrate).await?;
    match args.action {
        UserAction::Add {
            name,
            email,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let id = sesame
                .add_user(&name, email.as_deref(), password.as_deref())
                .await?;
            output.print(
                &json!({"id": id, "name": name}),
                &format!("Added user {name} with id {id}."),
            );
        }
        UserAction::List => {
            let users = sesame.store().users().await?;
            let list: Vec<_> = users
                .iter()
                .map(|u| json!({"id": u.id, "name": u.name, "email": u.email, "disabled": u.disabled}))
                .collect();
            let mut text = String::new();
            for user in &users {
                text.push_str(&format!(
                    "{}  {}{}{}\n",
                    user.id,
                    user.name,
                    user.email
                        .as_deref()
                        .map(|e| format!("  <{e}>"))
                        .unwrap_or_default(),
                    if user.disabled { "  disabled" } else { "" }
                ));
            }
            if users.is_empty() {
                text.push_str("No users.");
            }
            output.print(&json!({"users": list}), text.trim_end());
        }
    }
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Reads one line from standard input, without its line ending.
fn read_password() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().take(4096).read_to_string(&mut input)?;
    let password = input.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(password)
}
