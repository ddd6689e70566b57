//! `sesame keys` and `sesame install`.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use sesame::keys::{KeyAlgorithm, LoadedKey};
use sesame::{Config, OpenOptions, Sesame};

use super::Output;

/// Arguments of `sesame keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Replace existing key files
    #[arg(long)]
    force: bool,
    /// RSA key length in bits: 2048, 3072 or 4096
    #[arg(long, value_name = "BITS", default_value_t = 2048)]
    length: u32,
    /// Signing algorithm: rs256, es256 or eddsa
    #[arg(long, value_name = "ALG", default_value = "rs256", value_parser = parse_alg)]
    alg: KeyAlgorithm,
}

/// Arguments of `sesame install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Replace existing key files
    #[arg(long)]
    force: bool,
    /// RSA key length in bits: 2048, 3072 or 4096
    #[arg(long, value_name = "BITS", default_value_t = 2048)]
    length: u32,
}

fn parse_alg(text: &str) -> Result<KeyAlgorithm, String> {
    KeyAlgorithm::parse(text)
        .ok_or_else(|| format!("unknown algorithm {text:?}; use rs256, es256 or eddsa"))
}

/// Generates a key into the key directory, showing progress on stderr while it works.
pub(crate) async fn generate_with_progress(
    config: &Config,
    alg: KeyAlgorithm,
    bits: u32,
    force: bool,
) -> anyhow::Result<LoadedKey> {
    let label = match alg {
        KeyAlgorithm::Rs256 => format!("RSA-{bits}"),
        other => other.name().to_owned(),
    };
    eprint!(
        "Generating a {label} signing key in {}",
        config.keys_dir.display()
    );
    let _ = std::io::stderr().flush();
    let ticker = tokio::spawn(async {
        let interactive = std::io::stderr().is_terminal();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if interactive {
                eprint!(".");
                let _ = std::io::stderr().flush();
            }
        }
    });
    let result = sesame::app::generate_key_files(config, alg, bits, force).await;
    ticker.abort();
    eprintln!(" done");
    Ok(result?)
}

/// `sesame keys`: writes a new key pair; refuses to replace one without `--force`.
pub async fn keys(config: Config, args: KeysArgs, output: &Output) -> anyhow::Result<ExitCode> {
    if config.private_key_pem.is_some() || config.private_key_file.is_some() {
        anyhow::bail!(
            "the signing key comes from SESAME_PRIVATE_KEY or SESAME_PRIVATE_KEY_FILE; \
             unset them to manage keys in {}",
            config.keys_dir.display()
        );
    }
    let loaded = generate_with_progress(&config, args.alg, args.length, args.force).await?;
    let value = json!({
        "kid": loaded.key.kid(),
        "alg": loaded.key.alg().name(),
        "private_key": config.keys_dir.join(sesame::keys::PRIVATE_KEY_FILE),
        "public_key": config.keys_dir.join(sesame::keys::PUBLIC_KEY_FILE),
    });
    let text = format!(
        "Wrote {} and {} (kid {}).",
        config
            .keys_dir
            .join(sesame::keys::PRIVATE_KEY_FILE)
            .display(),
        config
            .keys_dir
            .join(sesame::keys::PUBLIC_KEY_FILE)
            .display(),
        loaded.key.kid()
    );
    output.print(&value, &text);
    Ok(ExitCode::SUCCESS)
}

/// `sesame install`: keys, migrations, personal access client and password client. Running it
/// again changes nothing unless `--force` replaces the keys.
pub async fn install(
    config: Config,
    args: InstallArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let key_source_external = config.private_key_pem.is_some() || config.private_key_file.is_some();
    let keys_created = if key_source_external {
        false
    } else if args.force || sesame::keys::load(&config)?.is_none() {
        generate_with_progress(&config, KeyAlgorithm::Rs256, args.length, args.force).await?;
        true
    } else {
        false
    };
    let mut config = config;
    // `install` is the explicit way to install, whatever SESAME_AUTO_INSTALL says.
    config.auto_install = true;
    let options = OpenOptions::default().migrate(migrate).install(false);
    let sesame = Sesame::open_with(config, options).await?;
    let report = sesame::install::install_clients(&sesame).await?;
    let secret = report
        .password_client_secret
        .as_ref()
        .map(|s| s.expose().to_owned());
    let value = json!({
        "keys_created": keys_created,
        "kid": sesame.signing_key().kid(),
        "personal_access_client": report.personal_client_id,
        "personal_access_client_created": report.personal_client_created,
        "password_client": report.password_client_id,
        "password_client_secret": secret,
    });
    let mut text = String::new();
    text.push_str(&format!(
        "Signing key: {}{}\n",
        sesame.signing_key().kid(),
        if keys_created { " (new)" } else { "" }
    ));
    text.push_str(&format!(
        "Personal access client: {}{}\n",
        report.personal_client_id,
        if report.personal_client_created {
            " (new)"
        } else {
            ""
        }
    ));
    if let Some(id) = &report.password_client_id {
        text.push_str(&format!("Password grant client: {id}"));
        if let Some(secret) = &secret {
            text.push_str(&format!(
                " (new)\nPassword grant client secret: {secret}\n\
                 The secret is shown only now; store it safely."
            ));
        }
    }
    if !keys_created && !report.personal_client_created && secret.is_none() {
        text.push_str("\nNothing changed: Sesame was already installed.");
    }
    output.print(&value, &text);
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}
