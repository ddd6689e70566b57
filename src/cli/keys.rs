//! `sesame keys` and `sesame install`.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args};
use serde_json::json;
use sesame::config::LogFormat;
use sesame::keys::{KeyAlgorithm, LoadedKey};
use sesame::{Config, OpenOptions, Sesame};

use super::{Output, UsageError};

/// RSA key length in bits when `--length` is not given and no RSA key is being replaced.
const DEFAULT_RSA_BITS: u32 = 2048;

/// Arguments of `sesame keys`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").args(["force", "rotate", "retire"])))]
pub struct KeysArgs {
    /// Replace existing key files
    #[arg(long)]
    force: bool,
    /// RSA key length in bits: 2048, 3072 or 4096 (default: 2048, or with --rotate the length
    /// of the RSA key it replaces)
    #[arg(long, value_name = "BITS", value_parser = parse_rsa_bits)]
    length: Option<u32>,
    /// Signing algorithm: rs256, es256 or eddsa (default: rs256, or with --rotate the
    /// algorithm of the key it replaces)
    #[arg(long, value_name = "ALG", value_parser = parse_alg)]
    alg: Option<KeyAlgorithm>,
    /// Make a new key <kid>.pem that is published at once and becomes the signing key after
    /// SESAME_JWKS_MAX_AGE
    #[arg(long)]
    rotate: bool,
    /// Retire the key with this kid at once, as for a compromised key (requires --now)
    // A kid is base64url text, which may start with '-'.
    #[arg(long, value_name = "KID", requires = "now", allow_hyphen_values = true)]
    retire: Option<String>,
    /// Confirm that --retire takes effect at once: tokens the key signed stop working
    #[arg(long, requires = "retire")]
    now: bool,
}

/// Arguments of `sesame install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Replace existing key files
    #[arg(long)]
    force: bool,
    /// RSA key length in bits: 2048, 3072 or 4096
    #[arg(long, value_name = "BITS", default_value_t = 2048, value_parser = parse_rsa_bits)]
    length: u32,
}

fn parse_rsa_bits(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(bits @ (2048 | 3072 | 4096)) => Ok(bits),
        _ => Err(format!(
            "unsupported RSA key length {text:?}; use 2048, 3072 or 4096"
        )),
    }
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
    // Refused before the progress line, which would otherwise end in "failed" as if the
    // generation had broken.
    if !force
        && config
            .keys_dir
            .join(sesame::keys::PRIVATE_KEY_FILE)
            .exists()
    {
        let dir = config.keys_dir.clone();
        return Err(sesame::Error::KeysExist { dir }.into());
    }
    // With JSON logs every line on stderr must be a JSON object, so the progress goes through
    // the log instead, where the log shows info lines (as under `serve`).
    if config.log_format == LogFormat::Json && tracing::enabled!(tracing::Level::INFO) {
        let dir = config.keys_dir.display().to_string();
        tracing::info!(key = %label, %dir, "generating a signing key");
        let loaded = sesame::app::generate_key_files(config, alg, bits, force).await?;
        tracing::info!(key = %label, kid = %loaded.key.kid(), "generated a signing key");
        return Ok(loaded);
    }
    eprint!(
        "Generating an {label} signing key in {}",
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
    // The error itself follows on its own line, from the caller.
    eprintln!("{}", if result.is_ok() { " done" } else { " failed" });
    Ok(result?)
}

/// Retires the key that `keys --force` replaced, so it stops verifying at once: whoever has
/// the old private key must not be able to sign tokens or ID tokens any longer. Opening the
/// installation records the new key first.
async fn retire_replaced_key(config: Config, old_kid: &str, migrate: bool) -> anyhow::Result<()> {
    let sesame = Sesame::open_with(config, OpenOptions::default().migrate(migrate)).await?;
    match sesame.retire_key(old_kid).await {
        Ok(_) => eprintln!(
            "Retired the replaced key {old_kid}; restart running `sesame serve` processes so \
             they sign with the new key."
        ),
        Err(sesame::Error::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    sesame.close().await;
    Ok(())
}

/// `sesame keys`: writes a new key pair, refusing to replace one without `--force`; or
/// rotates (`--rotate`) or retires (`--retire KID --now`) a key.
pub async fn keys(
    config: Config,
    args: KeysArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let rsa = args.alg.is_none_or(|alg| alg == KeyAlgorithm::Rs256);
    if args.length.is_some() && !rsa {
        return Err(
            UsageError("--length applies to RSA keys only; drop it or use --alg rs256").into(),
        );
    }
    if args.rotate {
        return rotate(config, &args, migrate, output).await;
    }
    if let Some(kid) = &args.retire {
        return retire(config, kid, migrate, output).await;
    }
    if config.private_key_pem.is_some() || config.private_key_file.is_some() {
        anyhow::bail!(
            "the signing key comes from SESAME_PRIVATE_KEY or SESAME_PRIVATE_KEY_FILE; \
             unset them to manage keys in {}",
            config.keys_dir.display()
        );
    }
    let alg = args.alg.unwrap_or(KeyAlgorithm::Rs256);
    let replaced = match args.force {
        true => sesame::keys::load(&config)
            .ok()
            .flatten()
            .map(|old| old.key.kid().to_owned()),
        false => None,
    };
    let loaded = generate_with_progress(
        &config,
        alg,
        args.length.unwrap_or(DEFAULT_RSA_BITS),
        args.force,
    )
    .await?;
    if let Some(old_kid) = replaced.filter(|old| old != loaded.key.kid()) {
        retire_replaced_key(config.clone(), &old_kid, migrate).await?;
    }
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

/// `sesame keys --rotate`.
async fn rotate(
    config: Config,
    args: &KeysArgs,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let max_age = config.jwks_max_age.as_secs();
    let sesame = super::open(config, migrate).await?;
    // A rotation keeps the replaced RSA key's length unless --length is given, so a 4096-bit
    // installation does not drop to 2048 bits by accident.
    let current = sesame.signing_key();
    let alg = args.alg.unwrap_or(current.alg());
    let length = args
        .length
        .or(current.rsa_bits().filter(|_| alg == KeyAlgorithm::Rs256))
        .unwrap_or(DEFAULT_RSA_BITS);
    let rotated = sesame.rotate_key(args.alg, length).await?;
    let value = json!({
        "kid": rotated.kid,
        "alg": rotated.alg.name(),
        "private_key": rotated.path,
        "state": "next",
        "replaces": rotated.replaces,
        "current_at": rotated.current_at,
    });
    let mut text = format!(
        "Wrote {} (kid {}, {}). The key is published now and signs from {} (Unix time), \
         {max_age} s from now",
        rotated.path.display(),
        rotated.kid,
        rotated.alg.name(),
        rotated.current_at,
    );
    match &rotated.replaces {
        Some(replaced) => text.push_str(&format!(", when key {replaced} stops signing.")),
        None => text.push('.'),
    }
    text.push_str("\nCopy the file to every node that does not share this key directory.");
    output.print(&value, &text);
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `sesame keys --retire KID --now`.
async fn retire(
    config: Config,
    kid: &str,
    migrate: bool,
    output: &Output,
) -> anyhow::Result<ExitCode> {
    let sesame = super::open(config, migrate).await?;
    let retired = sesame.retire_key(kid).await?;
    let value = json!({
        "kid": retired.kid,
        "previous_state": retired.previous_state.as_str(),
        "promoted": retired.promoted,
    });
    let mut text = format!(
        "Retired key {} (it was {}). It left the JWKS and tokens it signed are rejected.",
        retired.kid,
        retired.previous_state.as_str()
    );
    for promoted in &retired.promoted {
        text.push_str(&format!(
            "\nKey {promoted} became current at once; verifiers that cached the JWKS may reject \
             its tokens until they fetch it again."
        ));
    }
    output.print(&value, &text);
    sesame.close().await;
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
