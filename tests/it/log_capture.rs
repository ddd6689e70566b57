//! Sesame's debug logs and the secrets the tests handle, for the log-leak check.
//!
//! When `SESAME_TEST_LOG_DIR` is set, each test process writes Sesame's logs at trace level to
//! its own `rust-*.log` file in that directory, and appends every secret the tests send or
//! receive to `secrets.jsonl` there, one `{"kind", "value"}` object a line.
//! `scripts/check-log-secrets` then searches every log for every secret. Without the variable
//! nothing is written and the tests run as before.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

/// The name of the file secrets are appended to.
pub const SECRETS_FILE: &str = "secrets.jsonl";

/// Form and JSON field names whose values are secrets.
const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "accessToken",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
    "secret",
    "code",
    "code_verifier",
    "device_code",
    "user_code",
    "password",
    "_csrf",
];

static LOG_DIR: LazyLock<Option<PathBuf>> = LazyLock::new(start_logging);

/// Installs a trace-level subscriber writing to a new file in `SESAME_TEST_LOG_DIR`.
fn start_logging() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("SESAME_TEST_LOG_DIR")?);
    std::fs::create_dir_all(&dir).expect("create SESAME_TEST_LOG_DIR");
    // nextest runs each test in its own process, so each test gets its own file. Under
    // `cargo test` the tests of one binary share a process and so one file.
    let path = dir.join(format!("rust-{}.log", uuid::Uuid::new_v4().simple()));
    let file = std::fs::File::create_new(&path).expect("create the test log file");
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("sesame=trace"))
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    Some(dir)
}

/// Returns the log directory and starts this process's log file on first use, or `None`
/// when `SESAME_TEST_LOG_DIR` is not set.
pub fn log_dir() -> Option<&'static Path> {
    LOG_DIR.as_deref()
}

/// Appends a secret of `kind` (a field name such as `refresh_token`) to the secrets file.
pub fn record(kind: &str, value: &str) {
    let Some(dir) = log_dir() else {
        return;
    };
    if value.is_empty() {
        return;
    }
    let mut line = serde_json::json!({"kind": kind, "value": value}).to_string();
    line.push('\n');
    // One write of one line in append mode, so lines from concurrent test processes do not
    // interleave.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(SECRETS_FILE))
        .expect("open the secrets file");
    file.write_all(line.as_bytes())
        .expect("append to the secrets file");
}

/// Records the values of secret fields in a form the tests send.
pub fn record_form<V: AsRef<str>>(form: &[(&str, V)]) {
    for (name, value) in form {
        if SECRET_FIELDS.contains(name) {
            record(name, value.as_ref());
        }
    }
}

/// Records the string values of secret fields anywhere in a JSON document.
pub fn record_json(value: &Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let secret = SECRET_FIELDS.contains(&name.as_str());
                match field {
                    Value::String(text) if secret => record(name, text),
                    other => record_json(other),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(record_json),
        _ => {}
    }
}

/// Records the secrets in a response: session cookies, an authorization code in `Location`,
/// secret fields of a JSON body and hidden `_csrf` inputs of an HTML page.
pub fn record_response(headers: &HeaderMap, body: &str) {
    if log_dir().is_none() {
        return;
    }
    for cookie in headers.get_all(SET_COOKIE) {
        let text = cookie.to_str().unwrap_or_default();
        let pair = text.split(';').next().unwrap_or_default();
        if let Some((name, value)) = pair.split_once('=') {
            record(&format!("cookie {}", name.trim()), value.trim());
        }
    }
    if let Some(location) = headers.get(LOCATION).and_then(|value| value.to_str().ok())
        && let Some((_, query)) = location.split_once('?')
    {
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if SECRET_FIELDS.contains(&name.as_ref()) {
                record(&name, &value);
            }
        }
    }
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        record_json(&json);
    }
    let marker = "name=\"_csrf\" value=\"";
    for (start, _) in body.match_indices(marker) {
        let rest = &body[start + marker.len()..];
        if let Some(end) = rest.find('"') {
            record("_csrf", &rest[..end]);
        }
    }
}

/// Records the secrets the `sesame` CLI printed: secret fields of JSON output, or in text
/// output the long words on lines that mention a secret or token.
pub fn record_cli_output(stdout: &str) {
    if log_dir().is_none() {
        return;
    }
    if let Ok(json) = serde_json::from_str::<Value>(stdout) {
        record_json(&json);
        return;
    }
    for line in stdout.lines() {
        let lower = line.to_ascii_lowercase();
        if !(lower.contains("secret") || lower.contains("token")) {
            continue;
        }
        for word in line.split_whitespace() {
            let word = word.trim_end_matches(['.', ',']);
            let secret_like = word.len() >= 32
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if secret_like && uuid::Uuid::parse_str(word).is_err() {
                record("cli output", word);
            }
        }
    }
}

/// Saves the stderr of one CLI run as a log file of its own.
pub fn save_cli_log(stderr: &str) {
    let Some(dir) = log_dir() else {
        return;
    };
    let path = dir.join(format!("cli-{}.log", uuid::Uuid::new_v4().simple()));
    std::fs::write(path, stderr).expect("write the CLI log");
}
