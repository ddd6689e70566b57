//! `sesame doctor`: checks keys, schema, clients and their consistency without changing
//! anything, and names the fix for each problem.

use serde::Serialize;

use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::error::Error;
use crate::keys;
use crate::store::meta::{INSTALLED_AT, PASSWORD_CLIENT, PERSONAL_ACCESS_CLIENT};
use crate::store::{KeyState, SchemaStatus, Store};

/// One result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What was checked: `database`, `schema`, `install`, `keys`, `clients` or `tokens`.
    pub check: &'static str,
    /// Whether the check passed.
    pub ok: bool,
    /// What was found.
    pub message: String,
    /// The command or action that fixes a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, message: impl Into<String>) -> Finding {
        Finding {
            check,
            ok: true,
            message: message.into(),
            fix: None,
        }
    }

    fn problem(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            ok: false,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check against the installation `config` describes.
pub async fn diagnose(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    let key = check_keys(config, &mut findings);
    let store = match Store::connect(&config.database_url).await {
        Ok(store) => store,
        Err(error) => {
            findings.push(Finding::problem(
                "database",
                error.to_string(),
                "check SESAME_DATABASE_URL and that the database server is running",
            ));
            return findings;
        }
    };
    findings.push(Finding::ok("database", "the database answers"));
    if check_schema(&store, &mut findings).await {
        check_install(config, &store, &mut findings).await;
        if let Some(key) = &key {
            let rotated = keys::load_rotated(&config.keys_dir, |kid| kid == key.kid());
            let mut local: Vec<&keys::SigningKey> = vec![key];
            local.extend(rotated.iter().map(|loaded| &loaded.key));
            check_key_records(&store, &local, &mut findings).await;
        }
    }
    store.close().await;
    findings
}

fn check_keys(config: &Config, findings: &mut Vec<Finding>) -> Option<keys::SigningKey> {
    match keys::load(config) {
        Ok(Some(loaded)) => {
            for warning in loaded.warnings {
                let fix = warning
                    .split('`')
                    .nth(1)
                    .unwrap_or("chmod 600 the key file")
                    .to_owned();
                findings.push(Finding::problem("keys", warning, fix));
            }
            findings.push(Finding::ok(
                "keys",
                format!(
                    "key {} ({}) loaded from {}",
                    loaded.key.kid(),
                    loaded.key.alg().name(),
                    loaded.origin
                ),
            ));
            Some(loaded.key)
        }
        Ok(None) => {
            findings.push(Finding::problem(
                "keys",
                format!("no signing key in {}", config.keys_dir.display()),
                "sesame keys",
            ));
            None
        }
        Err(error @ Error::KeyPairMismatch { .. }) => {
            findings.push(Finding::problem(
                "keys",
                error.to_string(),
                "sesame keys --force",
            ));
            None
        }
        Err(error) => {
            findings.push(Finding::problem(
                "keys",
                error.to_string(),
                "replace the key file or run `sesame keys --force`",
            ));
            None
        }
    }
}

/// Returns whether the schema is usable for the remaining checks.
async fn check_schema(store: &Store, findings: &mut Vec<Finding>) -> bool {
    match store.schema_status().await {
        Ok(SchemaStatus::Current) => {
            findings.push(Finding::ok("schema", "every migration is applied"));
            true
        }
        Ok(SchemaStatus::Pending(count)) => {
            findings.push(Finding::problem(
                "schema",
                format!("{count} migration(s) pending"),
                "sesame migrate",
            ));
            false
        }
        Ok(SchemaStatus::TooNew { version }) => {
            findings.push(Finding::problem(
                "schema",
                format!("the schema has migration {version}, which this binary does not know"),
                "upgrade sesame; never downgrade the schema",
            ));
            false
        }
        Err(error) => {
            findings.push(Finding::problem(
                "schema",
                error.to_string(),
                "sesame migrate",
            ));
            false
        }
    }
}

async fn check_install(config: &Config, store: &Store, findings: &mut Vec<Finding>) {
    let result: Result<(), Error> = async {
        let mut connection = store.pool().acquire().await?;
        if store.meta(&mut connection, INSTALLED_AT).await?.is_none() {
            findings.push(Finding::problem(
                "install",
                "Sesame was never installed",
                "sesame install",
            ));
        }
        let personal = match store.meta(&mut connection, PERSONAL_ACCESS_CLIENT).await? {
            Some(id) => store.client_in(&mut connection, &id).await?,
            None => None,
        };
        match personal {
            Some(client) if client.personal_access_client && !client.revoked => findings.push(
                Finding::ok("clients", format!("personal access client {}", client.id)),
            ),
            _ => {
                let repair = if config.auto_install {
                    " (sesame serve and sesame token would create one automatically)"
                } else {
                    ""
                };
                findings.push(Finding::problem(
                    "clients",
                    format!("no usable personal access client{repair}"),
                    crate::install::PERSONAL_CLIENT_FIX,
                ));
            }
        }
        let password = match store.meta(&mut connection, PASSWORD_CLIENT).await? {
            Some(id) => store.client_in(&mut connection, &id).await?,
            None => None,
        };
        match password {
            Some(client) if client.revoked => findings.push(Finding::ok(
                "clients",
                format!(
                    "password client {} is revoked (left so on purpose)",
                    client.id
                ),
            )),
            Some(client) => findings.push(Finding::ok(
                "clients",
                format!("password client {}", client.id),
            )),
            None if !config.password_grant => {}
            None => findings.push(Finding::problem(
                "clients",
                "no password client",
                "sesame client --password",
            )),
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        findings.push(Finding::problem(
            "install",
            error.to_string(),
            "sesame migrate",
        ));
    }
}

/// Checks the recorded states of this node's keys: the key loaded at start and the `<kid>.pem`
/// keys made by rotations.
async fn check_key_records(
    store: &Store,
    local: &[&keys::SigningKey],
    findings: &mut Vec<Finding>,
) {
    let records = match store.keys().await {
        Ok(records) => records,
        Err(error) => {
            findings.push(Finding::problem(
                "keys",
                error.to_string(),
                "sesame migrate",
            ));
            return;
        }
    };
    for (index, key) in local.iter().enumerate() {
        match records.iter().find(|record| record.kid == key.kid()) {
            None if index == 0 => findings.push(Finding::problem(
                "keys",
                format!(
                    "signing key {} is not recorded, so other nodes cannot verify it",
                    key.kid()
                ),
                "start `sesame serve` once to record it",
            )),
            None => findings.push(Finding::problem(
                "keys",
                format!(
                    "key file {}.pem was not recorded by a rotation, so it is never used",
                    key.kid()
                ),
                "delete the file once no `sesame keys --rotate` is running",
            )),
            Some(record) if record.key_state() == KeyState::Retired => findings.push(Finding::ok(
                "keys",
                format!(
                    "key {} is retired: it neither signs nor verifies",
                    key.kid()
                ),
            )),
            Some(_) => {}
        }
    }
    let state_of = |key: &keys::SigningKey| {
        records
            .iter()
            .find(|record| record.kid == key.kid())
            .map(|record| record.key_state())
    };
    let recorded = local.iter().any(|key| state_of(key).is_some());
    let signs = local
        .iter()
        .any(|key| state_of(key) == Some(KeyState::Current));
    // An unrecorded key is reported above; it signs once `sesame serve` records it.
    if recorded && !signs {
        findings.push(Finding::problem(
            "keys",
            "no key of this node is current, so it cannot sign tokens".to_owned(),
            "copy the current key file into the key directory, or run `sesame keys --rotate` \
             and wait SESAME_JWKS_MAX_AGE",
        ));
    }
    let current: Vec<&str> = records
        .iter()
        .filter(|record| record.key_state() == KeyState::Current)
        .map(|record| record.kid.as_str())
        .collect();
    if current.len() > 1 {
        findings.push(Finding::problem(
            "keys",
            format!(
                "{} keys are current ({}); the newest signs, and the others never become \
                 previous, so `sesame purge` never retires them",
                current.len(),
                current.join(", ")
            ),
            "`sesame keys --retire KID --now` for each older one, once its tokens may stop \
             working",
        ));
    }
    let published: Vec<&crate::store::KeyRecord> = records
        .iter()
        .filter(|record| record.key_state() != KeyState::Retired)
        .collect();
    let listed: Vec<String> = published
        .iter()
        .map(|record| format!("{} ({})", record.kid, record.state))
        .collect();
    findings.push(Finding::ok(
        "keys",
        format!("published keys: {}", listed.join(", ")),
    ));
    match store.live_tokens_by_kid(SystemClock.now()).await {
        Ok(counts) => {
            for (kid, count) in counts {
                if !published.iter().any(|record| record.kid == kid) {
                    findings.push(Finding::problem(
                        "tokens",
                        format!("{count} live token(s) were signed by key {kid}, which is not published, so they are rejected"),
                        "restore that key, or revoke the tokens and issue new ones",
                    ));
                }
            }
        }
        Err(error) => findings.push(Finding::problem(
            "tokens",
            error.to_string(),
            "sesame migrate",
        )),
    }
}
