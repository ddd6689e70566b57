//! `sesame user`.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;
use sesame::Config;
use sesame::store::EndedAccess;

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
        #[arg(value_parser = super::non_blank)]
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
    /// Disable a user: revoke their tokens, end their sessions and reject their sign-ins
    Disable {
        /// User name or numeric id
        name: String,
    },
    /// Enable a disabled user (revoked tokens stay revoked)
    Enable {
        /// User name or numeric id
        name: String,
    },
    /// Set a user's password, revoking their tokens and ending their sessions
    Password {
        /// User name or numeric id
        name: String,
        /// Read the new password from standard input (one line); required
        #[arg(long, required = true)]
        password_stdin: bool,
    },
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
        UserAction::Disable { name } => {
            let (user, ended) = sesame.disable_user(&name).await?;
            let text = format!(
                "Disabled user {} (id {}): {}.",
                user.name,
                user.id,
                describe_ended(&ended)
            );
            output.print(
                &json!({"id": user.id, "name": user.name, "ended": ended}),
                &text,
            );
        }
        UserAction::Enable { name } => {
            let user = sesame.enable_user(&name).await?;
            output.print(
                &json!({"id": user.id, "name": user.name}),
                &format!("Enabled user {} (id {}).", user.name, user.id),
            );
        }
        UserAction::Password { name, .. } => {
            let password = read_password()?;
            let (user, ended) = sesame.set_user_password(&name, &password).await?;
            let text = format!(
                "Changed the password of {} (id {}): {}.",
                user.name,
                user.id,
                describe_ended(&ended)
            );
            output.print(
                &json!({"id": user.id, "name": user.name, "ended": ended}),
                &text,
            );
        }
    }
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Describes what ending a user's access revoked and deleted. Device codes are named only
/// when some were denied: disabling leaves them approved, and their polls fail while the user
/// stays disabled.
fn describe_ended(ended: &EndedAccess) -> String {
    let revoked = format!(
        "revoked {}, {} and {}",
        count(ended.access_tokens, "access token"),
        count(ended.refresh_tokens, "refresh token"),
        count(ended.authorization_codes, "authorization code")
    );
    let mut parts = vec![revoked];
    if ended.device_codes > 0 {
        parts.push(format!(
            "denied {}",
            count(ended.device_codes, "device code")
        ));
    }
    parts.push(format!("ended {}", count(ended.sessions, "session")));
    parts.join("; ")
}

/// Writes `n` and `noun`, with an `s` unless `n` is 1.
fn count(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
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
