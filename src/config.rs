//! Configuration: flags, then `SESAME_*` environment variables, then `sesame.toml` in the data
//! directory, then defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Scopes that exist without being declared.
pub const BUILT_IN_SCOPES: &[(&str, &str)] = &[
    ("openid", "Sign you in with your Sesame identity"),
    ("profile", "See your name"),
    ("email", "See your email address"),
    ("offline_access", "Stay signed in when you are away"),
    (
        ACCOUNT_SCOPE,
        "Manage your personal access tokens and applications",
    ),
];

/// The reserved scope that lets a bearer token use the account-management endpoints.
pub const ACCOUNT_SCOPE: &str = "sesame:account";

/// The settings Sesame runs with, after all sources were merged.
///
/// Build one with [`Config::load`] (the binary's way) or [`Config::for_data_dir`] and adjust
/// the public fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Where the SQLite database, keys and `sesame.toml` live.
    pub data_dir: PathBuf,
    /// sqlx connection URL; SQLite in the data directory by default.
    pub database_url: String,
    /// The address `sesame serve` listens on.
    pub bind: SocketAddr,
    /// The issuer identifier, without a trailing slash; compared byte for byte.
    pub issuer: String,
    /// The default `aud` of access tokens and the audience the guard requires.
    pub audience: String,
    /// Whether missing keys, schema and clients are created automatically.
    pub auto_install: bool,
    /// Whether `grant_type=password` is accepted from password clients.
    pub password_grant: bool,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Personal access token lifetime.
    pub pat_ttl: Duration,
    /// `Cache-Control: max-age` of the JWKS response.
    pub jwks_max_age: Duration,
    /// Development mode: allows an http issuer on a non-loopback address.
    pub dev: bool,
    /// Directory holding `oauth-private.key` and `oauth-public.key`.
    pub keys_dir: PathBuf,
    /// A private key file that takes the place of the key directory.
    pub private_key_file: Option<PathBuf>,
    /// A PEM private key given as text (`SESAME_PRIVATE_KEY`).
    pub private_key_pem: Option<String>,
    /// A PEM public key given as text (`SESAME_PUBLIC_KEY`), checked against the private key.
    pub public_key_pem: Option<String>,
    /// Maximum number of password hashes computed at once.
    pub max_concurrent_hashes: usize,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Declared scopes and their descriptions.
    pub scopes: BTreeMap<String, String>,
    /// Proxies whose `X-Forwarded-For` names the client address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Whether requests, tokens and errors are counted and `GET /metrics` serves them.
    pub metrics: bool,
    /// How long `sesame serve` waits for in-flight requests after SIGTERM or SIGINT before it
    /// exits anyway.
    pub shutdown_timeout: Duration,
    /// How long `sesame serve` waits for a client to send a request's complete header
    /// section before it closes the connection.
    pub header_read_timeout: Duration,
    /// Requests per client address to each rate-limited endpoint.
    pub rate_limit_per_address: RateLimit,
    /// Token requests per authenticated client.
    pub rate_limit_per_client: RateLimit,
    /// Origins (`scheme://host[:port]`, compared exactly) that browsers may call the token,
    /// revocation, introspection, userinfo, JWKS and metadata endpoints from.
    pub cors_origins: Vec<String>,
}

/// A rate limit: a steady rate per minute and a burst. A rate of 0 turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per minute, refilled evenly over the minute.
    pub per_minute: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("auto_install", &self.auto_install)
            .field("password_grant", &self.password_grant)
            .field("keys_dir", &self.keys_dir)
            .field(
                "private_key_pem",
                &self.private_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Values given on the command line; they override every other source. `Debug` hides a
/// password in the database URL.
#[derive(Default, Clone)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--bind`.
    pub bind: Option<String>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("bind", &self.bind)
            .finish()
    }
}

/// The shape of `sesame.toml`: the environment variables' names in snake case.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    bind: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    auto_install: Option<bool>,
    password_grant: Option<bool>,
    access_ttl: Option<toml::Value>,
    refresh_ttl: Option<toml::Value>,
    pat_ttl: Option<toml::Value>,
    jwks_max_age: Option<toml::Value>,
    dev: Option<bool>,
    keys_dir: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    max_concurrent_hashes: Option<usize>,
    log_format: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    metrics: Option<bool>,
    shutdown_timeout: Option<toml::Value>,
    header_read_timeout: Option<toml::Value>,
    rate_limit_per_address: Option<u32>,
    rate_limit_per_address_burst: Option<u32>,
    rate_limit_per_client: Option<u32>,
    rate_limit_per_client_burst: Option<u32>,
    cors_origins: Option<Vec<String>>,
    #[serde(default)]
    scopes: BTreeMap<String, String>,
}

/// Reads one setting from the environment, then the file.
struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: FileConfig,
}

impl Sources<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|value| !value.is_empty())
    }

    fn string(&self, name: &str, file: Option<String>) -> Option<String> {
        self.env(name).or(file)
    }

    fn bool(&self, name: &str, file: Option<bool>) -> Result<Option<bool>> {
        match self.env(name) {
            Some(text) => parse_bool(&text).map(Some).ok_or_else(|| {
                Error::Config(format!("{name} must be true or false, got {text:?}"))
            }),
            None => Ok(file),
        }
    }

    fn count(&self, name: &str, file: Option<u32>, default: u32) -> Result<u32> {
        match self.env(name) {
            Some(text) => text
                .trim()
                .parse()
                .map_err(|_| Error::Config(format!("{name} must be a whole number, got {text:?}"))),
            None => Ok(file.unwrap_or(default)),
        }
    }

    /// Reads a rate limit from `name` (requests per minute) and `{name}_BURST`. The burst
    /// defaults to the rate, so a client may spend a minute's requests at once.
    fn rate_limit(
        &self,
        name: &str,
        file: (Option<u32>, Option<u32>),
        default: u32,
    ) -> Result<RateLimit> {
        let per_minute = self.count(name, file.0, default)?;
        let burst = self.count(&format!("{name}_BURST"), file.1, per_minute)?;
        if per_minute > 0 && burst == 0 {
            return Err(Error::Config(format!(
                "{name}_BURST must be at least 1 while {name} is on"
            )));
        }
        Ok(RateLimit { per_minute, burst })
    }

    fn duration(&self, name: &str, file: Option<toml::Value>, default: u64) -> Result<Duration> {
        let text = match (self.env(name), file) {
            (Some(text), _) => text,
            (None, Some(toml::Value::Integer(seconds))) => seconds.to_string(),
            (None, Some(toml::Value::String(text))) => text,
            (None, Some(other)) => {
                return Err(Error::Config(format!(
                    "{} in sesame.toml must be seconds or a string like \"1h\", got {other}",
                    snake(name)
                )));
            }
            (None, None) => return Ok(Duration::from_secs(default)),
        };
        parse_duration(&text).ok_or_else(|| {
            Error::Config(format!(
                "{name} must be a positive number of seconds, or a positive number with s, m, h \
                 or d, up to 36500d; got {text:?}"
            ))
        })
    }
}

impl Config {
    /// Loads the configuration from `overrides`, the process environment and `sesame.toml`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an invalid value, naming the setting; [`Error::Io`] when
    /// `sesame.toml` exists but cannot be read.
    pub fn load(overrides: &Overrides) -> Result<Config> {
        Self::load_with_env(overrides, &|name| std::env::var(name).ok())
    }

    /// Builds the default configuration for a data directory, reading `sesame.toml` there if
    /// it exists but not the environment. Useful for embedding and tests.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Result<Config> {
        let overrides = Overrides {
            data_dir: Some(data_dir.into()),
            ..Overrides::default()
        };
        Self::load_with_env(&overrides, &|_| None)
    }

    /// Loads the configuration with `env` standing in for the process environment.
    ///
    /// # Errors
    ///
    /// As [`Config::load`].
    pub fn load_with_env(
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| {
                env("SESAME_DATA_DIR")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from("./sesame"));
        let file = read_file_config(&data_dir)?;
        let file_scopes = file.scopes.clone();
        let sources = Sources { env, file };
        let f = &sources.file;

        let database_url = match overrides.database_url.clone() {
            Some(url) => url,
            None => match sources.string("SESAME_DATABASE_URL", f.database_url.clone()) {
                Some(url) => url,
                None => sqlite_url(&data_dir.join("sesame.db"))?,
            },
        };
        let bind_text = overrides
            .bind
            .clone()
            .or_else(|| sources.string("SESAME_BIND", f.bind.clone()))
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            Error::Config(format!(
                "bind address {bind_text:?} is not an IP address and port"
            ))
        })?;
        let dev = sources.bool("SESAME_DEV", f.dev)?.unwrap_or(false);
        let issuer = match sources.string("SESAME_ISSUER", f.issuer.clone()) {
            Some(issuer) => normalize_issuer(&issuer, dev)?,
            None if bind.ip().is_loopback() => format!("http://{bind}"),
            None => {
                return Err(Error::Config(format!(
                    "SESAME_ISSUER is required when binding to the non-loopback address {bind}"
                )));
            }
        };
        let audience = sources
            .string("SESAME_AUDIENCE", f.audience.clone())
            .unwrap_or_else(|| issuer.clone());
        let is_sqlite = database_url.starts_with("sqlite:");
        let auto_install = sources
            .bool("SESAME_AUTO_INSTALL", f.auto_install)?
            .unwrap_or(is_sqlite);
        let password_grant = sources.bool("SESAME_PASSWORD_GRANT", f.password_grant)?;
        let keys_dir = sources
            .string("SESAME_KEYS_DIR", None)
            .map(PathBuf::from)
            .or_else(|| f.keys_dir.clone())
            .unwrap_or_else(|| data_dir.clone());
        let private_key_file = sources
            .string("SESAME_PRIVATE_KEY_FILE", None)
            .map(PathBuf::from)
            .or_else(|| f.private_key_file.clone());
        let max_concurrent_hashes = match sources.env("SESAME_MAX_CONCURRENT_HASHES") {
            Some(text) => text.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::Config(format!(
                    "SESAME_MAX_CONCURRENT_HASHES must be a positive integer, got {text:?}"
                ))
            })?,
            None => f
                .max_concurrent_hashes
                .unwrap_or_else(default_hash_concurrency),
        };
        let log_format = match sources.string("SESAME_LOG_FORMAT", f.log_format.clone()) {
            None => LogFormat::Text,
            Some(text) => match text.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(Error::Config(format!(
                        "SESAME_LOG_FORMAT must be text or json, got {text:?}"
                    )));
                }
            },
        };
        let trusted_proxies = match sources.env("SESAME_TRUSTED_PROXIES") {
            Some(text) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => f.trusted_proxies.clone().unwrap_or_default(),
        };
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|text| {
                text.parse().map_err(|_| {
                    Error::Config(format!(
                        "SESAME_TRUSTED_PROXIES entry {text:?} is not an IP address"
                    ))
                })
            })
            .collect::<Result<Vec<std::net::IpAddr>>>()?;
        for name in file_scopes.keys() {
            validate_scope_name(name)?;
        }
        let rate_limit_per_address = sources.rate_limit(
            "SESAME_RATE_LIMIT_PER_ADDRESS",
            (f.rate_limit_per_address, f.rate_limit_per_address_burst),
            DEFAULT_RATE_PER_ADDRESS,
        )?;
        let rate_limit_per_client = sources.rate_limit(
            "SESAME_RATE_LIMIT_PER_CLIENT",
            (f.rate_limit_per_client, f.rate_limit_per_client_burst),
            DEFAULT_RATE_PER_CLIENT,
        )?;
        let cors_origins = match sources.env("SESAME_CORS_ORIGINS") {
            Some(text) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => f.cors_origins.clone().unwrap_or_default(),
        };
        for origin in &cors_origins {
            validate_origin(origin)?;
        }

        Ok(Config {
            database_url,
            bind,
            issuer,
            audience,
            auto_install,
            password_grant: password_grant.unwrap_or(true),
            access_ttl: sources.duration("SESAME_ACCESS_TTL", f.access_ttl.clone(), 3600)?,
            refresh_ttl: sources.duration("SESAME_REFRESH_TTL", f.refresh_ttl.clone(), 30 * DAY)?,
            pat_ttl: sources.duration("SESAME_PAT_TTL", f.pat_ttl.clone(), 365 * DAY)?,
            jwks_max_age: sources.duration("SESAME_JWKS_MAX_AGE", f.jwks_max_age.clone(), 900)?,
            dev,
            keys_dir,
            private_key_file,
            private_key_pem: sources.env("SESAME_PRIVATE_KEY"),
            public_key_pem: sources.env("SESAME_PUBLIC_KEY"),
            max_concurrent_hashes,
            log_format,
            scopes: file_scopes,
            trusted_proxies,
            metrics: sources.bool("SESAME_METRICS", f.metrics)?.unwrap_or(true),
            shutdown_timeout: sources.duration(
                "SESAME_SHUTDOWN_TIMEOUT",
                f.shutdown_timeout.clone(),
                30,
            )?,
            header_read_timeout: sources.duration(
                "SESAME_HEADER_READ_TIMEOUT",
                f.header_read_timeout.clone(),
                30,
            )?,
            rate_limit_per_address,
            rate_limit_per_client,
            cors_origins,
            data_dir,
        })
    }

    /// Whether the database is SQLite (embedded) rather than a network server.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Returns the description of a declared or built-in scope, or `None` if it is unknown.
    pub fn scope_description(&self, scope: &str) -> Option<&str> {
        if let Some(description) = self.scopes.get(scope) {
            return Some(description);
        }
        BUILT_IN_SCOPES
            .iter()
            .find(|(name, _)| *name == scope)
            .map(|(_, description)| *description)
    }
}

const DAY: u64 = 24 * 3600;

/// Default requests per minute from one address to each rate-limited endpoint. Many users
/// can share an address behind NAT, so the default only stops floods.
const DEFAULT_RATE_PER_ADDRESS: u32 = 600;
/// Default token requests per minute from one client, which may run on many machines.
const DEFAULT_RATE_PER_CLIENT: u32 = 3000;

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
}

fn read_file_config(data_dir: &Path) -> Result<FileConfig> {
    let path = data_dir.join("sesame.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(source) => {
            return Err(Error::Io {
                action: "cannot read",
                path,
                source,
            });
        }
    };
    toml::from_str(&text)
        .map_err(|error| Error::Config(format!("{}: {}", path.display(), error.message())))
}

fn snake(env_name: &str) -> String {
    env_name.trim_start_matches("SESAME_").to_ascii_lowercase()
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses `3600`, `90s`, `15m`, `1h` or `30d`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => text.split_at(index),
        None => (text, "s"),
    };
    let value: u64 = digits.parse().ok()?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => DAY,
        _ => return None,
    };
    let seconds = value.checked_mul(factor)?;
    // Keeps `iat + ttl` far inside i64 and inside every database's integer range.
    (seconds > 0 && seconds <= 100 * 365 * DAY).then(|| Duration::from_secs(seconds))
}

/// Builds the sqlx URL of a SQLite file, percent-encoding the path.
fn sqlite_url(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path).map_err(|source| Error::Io {
        action: "cannot resolve",
        path: path.to_owned(),
        source,
    })?;
    let file_url = url::Url::from_file_path(&absolute)
        .map_err(|()| Error::Config(format!("cannot use {} as a path", absolute.display())))?;
    Ok(format!("sqlite://{}?mode=rwc", file_url.path()))
}

fn normalize_issuer(issuer: &str, dev: bool) -> Result<String> {
    let parsed = url::Url::parse(issuer).map_err(|error| {
        Error::Config(format!("SESAME_ISSUER {issuer:?} is not a URL: {error}"))
    })?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "SESAME_ISSUER {issuer:?} must not have a query or fragment"
        )));
    }
    let loopback = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => {}
        "http" if loopback || dev => {}
        "http" => {
            return Err(Error::Config(format!(
                "SESAME_ISSUER {issuer:?} must use https (set SESAME_DEV=true to allow http)"
            )));
        }
        other => {
            return Err(Error::Config(format!(
                "SESAME_ISSUER must be an https URL, got scheme {other:?}"
            )));
        }
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// Checks a scope name against RFC 6749 §3.3: printable ASCII without space, `"` or `\`.
pub(crate) fn validate_scope_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "scope name {name:?} is not a valid RFC 6749 scope token"
        )))
    }
}

/// Checks that a CORS origin is `scheme://host[:port]` as browsers send it in `Origin`:
/// http or https, no path, query, fragment or trailing slash.
fn validate_origin(origin: &str) -> Result<()> {
    let invalid = || {
        Error::Config(format!(
            "SESAME_CORS_ORIGINS entry {origin:?} is not an origin such as https://app.example.com"
        ))
    };
    if origin == "*" {
        return Err(Error::Config(
            "SESAME_CORS_ORIGINS must list exact origins; \"*\" is not accepted".into(),
        ));
    }
    let parsed = url::Url::parse(origin).map_err(|_| invalid())?;
    let scheme_ok = matches!(parsed.scheme(), "http" | "https");
    if !scheme_ok || parsed.host().is_none() || parsed.origin().ascii_serialization() != origin {
        return Err(invalid());
    }
    Ok(())
}

/// Removes the password from a database URL for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config> {
        let dir = std::env::temp_dir().join(format!("sesame-config-{}", uuid::Uuid::new_v4()));
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let overrides = Overrides {
            data_dir: Some(dir),
            ..Overrides::default()
        };
        Config::load_with_env(&overrides, &move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_use_loopback_issuer() {
        let config = load(&[]).expect("defaults load");
        assert_eq!(config.issuer, "http://127.0.0.1:8080");
        assert_eq!(config.audience, config.issuer);
        assert!(config.auto_install);
        assert_eq!(config.access_ttl, Duration::from_secs(3600));
        assert!(config.metrics);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    }

    #[test]
    fn metrics_and_shutdown_settings_load() {
        let config = load(&[
            ("SESAME_METRICS", "false"),
            ("SESAME_SHUTDOWN_TIMEOUT", "5"),
            ("SESAME_HEADER_READ_TIMEOUT", "2m"),
        ])
        .expect("loads");
        assert!(!config.metrics);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(config.header_read_timeout, Duration::from_secs(120));
    }

    #[test]
    fn public_bind_requires_issuer() {
        let error = load(&[("SESAME_BIND", "0.0.0.0:80")]).expect_err("issuer required");
        assert!(
            error.to_string().contains("SESAME_ISSUER is required"),
            "{error}"
        );
    }

    #[test]
    fn http_issuer_rejected_outside_dev() {
        let issuer = ("SESAME_ISSUER", "http://auth.example.com");
        assert!(load(&[issuer]).is_err());
        let config = load(&[issuer, ("SESAME_DEV", "true")]).expect("dev allows http");
        assert_eq!(config.issuer, "http://auth.example.com");
    }

    #[test]
    fn issuer_trailing_slash_removed() {
        let config = load(&[("SESAME_ISSUER", "https://auth.example.com/")]).expect("loads");
        assert_eq!(config.issuer, "https://auth.example.com");
    }

    #[test]
    fn network_database_disables_auto_install() {
        let config = load(&[("SESAME_DATABASE_URL", "postgres://localhost/x")]).expect("loads");
        assert!(!config.auto_install);
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(2 * DAY)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("-5"), None);
    }

    #[test]
    fn zero_duration_error_says_positive() {
        let error = load(&[("SESAME_SHUTDOWN_TIMEOUT", "0")]).expect_err("rejected");
        let message = error.to_string();
        assert!(message.contains("SESAME_SHUTDOWN_TIMEOUT"), "{message}");
        assert!(message.contains("positive"), "{message}");
        assert!(message.contains("got \"0\""), "{message}");
    }

    #[test]
    fn invalid_bool_names_variable() {
        let error = load(&[("SESAME_AUTO_INSTALL", "maybe")]).expect_err("rejected");
        assert!(error.to_string().contains("SESAME_AUTO_INSTALL"), "{error}");
    }

    #[test]
    fn rate_limits_default_and_parse() {
        let config = load(&[]).expect("defaults load");
        assert_eq!(
            config.rate_limit_per_address.per_minute,
            DEFAULT_RATE_PER_ADDRESS
        );
        assert_eq!(
            config.rate_limit_per_address.burst,
            DEFAULT_RATE_PER_ADDRESS
        );
        let config = load(&[
            ("SESAME_RATE_LIMIT_PER_ADDRESS", "30"),
            ("SESAME_RATE_LIMIT_PER_ADDRESS_BURST", "5"),
            ("SESAME_RATE_LIMIT_PER_CLIENT", "0"),
        ])
        .expect("loads");
        assert_eq!(config.rate_limit_per_address.per_minute, 30);
        assert_eq!(config.rate_limit_per_address.burst, 5);
        assert_eq!(config.rate_limit_per_client.per_minute, 0);
        let error = load(&[("SESAME_RATE_LIMIT_PER_CLIENT", "-1")]).expect_err("rejected");
        assert!(
            error.to_string().contains("SESAME_RATE_LIMIT_PER_CLIENT"),
            "{error}"
        );
    }

    #[test]
    fn cors_origins_must_be_exact() {
        let config = load(&[(
            "SESAME_CORS_ORIGINS",
            "https://app.example.com, http://localhost:3000",
        )])
        .expect("loads");
        assert_eq!(
            config.cors_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        for bad in [
            "*",
            "https://app.example.com/",
            "app.example.com",
            "ftp://x.example",
        ] {
            assert!(
                load(&[("SESAME_CORS_ORIGINS", bad)]).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn redact_url_hides_password() {
        let redacted = redact_url("postgres://user:hunter2@db/sesame");
        assert!(!redacted.contains("hunter2"));
    }
}
