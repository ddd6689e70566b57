//! Command-line parsing and one module per subcommand.

mod client;
mod doctor;
mod hash;
mod keys;
mod log_writer;
mod purge;
mod serve;
mod token;
mod user;

use std::io::Stderr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sesame::config::{LogFormat, Overrides};
use sesame::{Config, OpenOptions, Sesame};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use self::log_writer::LogGuard;

/// Sesame: an OAuth 2.1 authorization server and personal access token service.
#[derive(Debug, Parser)]
#[command(name = "sesame", version, about)]
pub struct Cli {
    /// Data directory holding the SQLite database, keys and sesame.toml [env: SESAME_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Database URL (sqlite:, postgres: or mysql:) [env: SESAME_DATABASE_URL]
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,

    /// Print the result as one JSON object
    #[arg(long, global = true)]
    json: bool,

    /// Do not run pending migrations; fail if any are pending
    #[arg(long, global = true)]
    no_migrate: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server, installing first where installing is automatic
    Serve(serve::ServeArgs),
    /// Make keys, run migrations and create the personal access and password clients
    Install(keys::InstallArgs),
    /// Make the signing key pair
    Keys(keys::KeysArgs),
    /// Create, list, revoke clients or replace a client's secret
    Client(client::ClientArgs),
    /// Add and list built-in users
    User(user::UserArgs),
    /// Issue a personal access token, or list or revoke a user's tokens
    Token(token::TokenArgs),
    /// Delete revoked and expired tokens and retire keys no live token uses
    Purge(purge::PurgeArgs),
    /// Replace plain client secrets left by a moved Passport database with hashes
    Hash,
    /// Check keys, schema and clients and name the fix for each problem
    Doctor,
    /// Run pending migrations only
    Migrate,
}

/// Starts logging to stderr: info for `serve`, warnings for other commands, unless
/// `RUST_LOG` sets another filter. For `serve`, PostgreSQL notices are logged from warning
/// level up, because sqlx 0.8 logs the notice "relation \"_sqlx_migrations\" already
/// exists, skipping" at info on every start.
///
/// `serve` logs a line per request, so its lines gather in memory and a thread of their own
/// writes them out (see [`log_writer`]). The returned guard writes what is left when dropped,
/// so it must live until the command ends, and gives up after a second when stderr takes
/// nothing. A killed process loses what is still buffered, usually the last 10 ms of lines.
/// When stderr falls 256 KiB behind, new lines are dropped and their number is logged later.
/// Other commands write each line at once, in order with what they print.
fn init_logging(cli: &Cli, format: LogFormat) -> anyhow::Result<Option<LogGuard<Stderr>>> {
    let default = match cli.command {
        Command::Serve(_) => "info,sqlx::postgres::notice=warn",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let (writer, guard) = match cli.command {
        Command::Serve(_) => {
            let report = |dropped| {
                tracing::warn!(
                    lines = dropped,
                    "dropped log lines because stderr did not keep up"
                );
            };
            let (writer, guard) = log_writer::gathered(std::io::stderr(), report)
                .context("starting the log thread")?;
            (BoxMakeWriter::new(writer), Some(guard))
        }
        _ => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(guard)
}

/// Parses a name given on the command line, rejecting blank text as a usage error.
pub(crate) fn non_blank(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("must not be blank".to_owned());
    }
    Ok(text.to_owned())
}

/// Arguments that parse but do not make sense together, found after clap has parsed them. The
/// binary exits 2 for it, as for clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub &'static str);

/// Renders an error and its causes on one line.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message.replace('\n', " ")
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        bind: match &cli.command {
            Command::Serve(args) => args.bind.clone(),
            _ => None,
        },
    };
    let config = Config::load(&overrides)?;
    let _log_writer = init_logging(&cli, config.log_format)?;
    let output = Output { json: cli.json };
    match cli.command {
        Command::Serve(_) => serve::run(config, &overrides, !cli.no_migrate).await,
        Command::Install(args) => keys::install(config, args, !cli.no_migrate, &output).await,
        Command::Keys(args) => keys::keys(config, args, !cli.no_migrate, &output).await,
        Command::Client(args) => client::run(config, args, !cli.no_migrate, &output).await,
        Command::User(args) => user::run(config, args, !cli.no_migrate, &output).await,
        Command::Token(args) => token::run(config, args, !cli.no_migrate, &output).await,
        Command::Purge(args) => purge::run(config, args, !cli.no_migrate, &output).await,
        Command::Hash => hash::run(config, !cli.no_migrate, &output).await,
        Command::Doctor => doctor::run(config, &output).await,
        Command::Migrate => migrate(config, &output).await,
    }
}

/// How results are printed.
pub(crate) struct Output {
    json: bool,
}

impl Output {
    /// Prints `value` as JSON, or `text` otherwise.
    pub(crate) fn print(&self, value: &serde_json::Value, text: &str) {
        if self.json {
            println!("{value}");
        } else {
            println!("{text}");
        }
    }
}

/// Opens the installation, generating the signing key first (with progress on stderr) when
/// it is missing and installing is automatic.
pub(crate) async fn open(config: Config, migrate: bool) -> anyhow::Result<Sesame> {
    if config.auto_install && sesame::keys::load(&config)?.is_none() {
        keys::generate_with_progress(&config, sesame::keys::KeyAlgorithm::Rs256, 2048, false)
            .await?;
    }
    let options = OpenOptions::default().migrate(migrate);
    Ok(Sesame::open_with(config, options).await?)
}

async fn migrate(config: Config, output: &Output) -> anyhow::Result<ExitCode> {
    let store = sesame::store::Store::connect(&config.database_url).await?;
    // A newer schema, or a status that cannot be read, makes migrate() below fail on its own.
    let pending = match store.schema_status().await {
        Ok(sesame::store::SchemaStatus::Pending(count)) => count,
        _ => 0,
    };
    store.migrate().await.context("migrating the database")?;
    store.close().await;
    let text = match pending {
        0 => "The database schema was already current.".to_owned(),
        1 => "Applied 1 migration; the database schema is current.".to_owned(),
        count => format!("Applied {count} migrations; the database schema is current."),
    };
    output.print(
        &serde_json::json!({"migrated": true, "applied": pending}),
        &text,
    );
    Ok(ExitCode::SUCCESS)
}

/// Splits a `--scopes a,b` value.
pub(crate) fn split_scopes(scopes: Option<&str>) -> Vec<String> {
    scopes
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect()
}
