//! Shared helpers: a real Sesame server on a loopback port with its own data directory.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use sesame::clock::OffsetClock;
use sesame::store::ClientKind;
use sesame::{Config, OpenOptions, Sesame};
use tempfile::TempDir;

use crate::log_capture;

/// Scopes every test server declares.
pub const SCOPES_TOML: &str = "[scopes]\nread = \"Read things\"\nwrite = \"Write things\"\n";

/// A running server and handles into its state.
pub struct Server {
    pub sesame: Sesame,
    pub base: String,
    pub clock: Arc<OffsetClock>,
    pub http: reqwest::Client,
    _dir: TempDir,
    _database: Option<TestDatabase>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A uniquely named database on the PostgreSQL or MariaDB server this machine runs, made
/// when `SESAME_TEST_DATABASE` is `postgres` or `mysql` and dropped with the server.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates a database for the backend `SESAME_TEST_DATABASE` names, if any.
    pub async fn create() -> Option<TestDatabase> {
        let backend = std::env::var("SESAME_TEST_DATABASE").ok()?;
        let name = format!("sesame_test_{}", uuid::Uuid::new_v4().simple());
        let (admin_url, url) = match backend.as_str() {
            "postgres" => (
                "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
                format!("postgres://postgres@127.0.0.1:5432/{name}"),
            ),
            "mysql" => (
                "mysql://root@127.0.0.1:3306/test".to_owned(),
                format!("mysql://root@127.0.0.1:3306/{name}"),
            ),
            other => panic!("SESAME_TEST_DATABASE must be postgres or mysql, not {other:?}"),
        };
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .expect("test database server reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, so the cleanup gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .expect("admin");
                let force = if admin_url.starts_with("postgres") {
                    " WITH (FORCE)"
                } else {
                    // MySQL waits for every open transaction on the database before dropping
                    // it, so end the sessions a test left behind.
                    let sessions: Vec<i64> = sqlx::query_scalar(&format!(
                        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = '{name}'"
                    ))
                    .fetch_all(&mut admin)
                    .await
                    .unwrap_or_default();
                    for session in sessions {
                        let _ = sqlx::query(&format!("KILL {session}")).execute(&mut admin).await;
                    }
                    ""
                };
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                    .execute(&mut admin)
                    .await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Makes a data directory whose sesame.toml holds `extra` settings and the test scopes.
pub fn data_dir(extra: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("sesame.toml"),
        format!("{extra}{SCOPES_TOML}"),
    )
    .expect("write sesame.toml");
    dir
}

/// Loads the configuration of `dir` with an issuer naming `base`.
pub fn config_for(dir: &Path, base: &str) -> Config {
    let mut config = Config::for_data_dir(dir).expect("config loads");
    config.issuer = base.to_owned();
    config.audience = base.to_owned();
    config
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub async fn start() -> Server {
        Self::start_with(data_dir(""), |_| {}).await
    }

    /// Starts a server on `dir`, letting `adjust` change the configuration first.
    pub async fn start_with(dir: TempDir, adjust: impl FnOnce(&mut Config)) -> Server {
        log_capture::log_dir();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let base = format!("http://{address}");
        let mut config = config_for(dir.path(), &base);
        config.bind = address;
        let database = TestDatabase::create().await;
        if let Some(database) = &database {
            config.database_url = database.url.clone();
            config.auto_install = true;
        }
        adjust(&mut config);
        let clock = Arc::new(OffsetClock::default());
        let options = OpenOptions::default().clock(clock.clone());
        let sesame = Sesame::open_with(config, options)
            .await
            .expect("sesame opens");
        let app = sesame::router(sesame.clone());
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, service).await;
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Server {
            sesame,
            base,
            clock,
            http,
            _dir: dir,
            _database: database,
            task,
        }
    }

    /// Returns the server's data directory, which contains its database and keys.
    /// The configuration a second node of this server opens: the same data directory,
    /// issuer and database.
    pub fn node_config(&self) -> Config {
        let mut config = config_for(self.data_path(), &self.base);
        config.database_url = self.sesame.config().database_url.clone();
        config
    }

    pub fn data_path(&self) -> &Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates a client of `kind` and returns its id and secret.
    pub async fn client(&self, kind: ClientKind, scopes: Option<&[&str]>) -> (String, String) {
        let scopes = scopes.map(|s| s.iter().map(|x| (*x).to_owned()).collect());
        let (client, secret) = sesame::install::create_client(&self.sesame, kind, "test", scopes)
            .await
            .expect("client created");
        let secret = secret.map(|s| s.expose().to_owned()).unwrap_or_default();
        log_capture::record("client_secret", &secret);
        (client.id, secret)
    }

    /// Adds a user with a password and returns its id.
    pub async fn user(&self, name: &str, password: &str) -> i64 {
        log_capture::record("password", password);
        self.sesame
            .add_user(name, Some(&format!("{name}@example.com")), Some(password))
            .await
            .expect("user added")
    }

    /// Posts a form to the token endpoint with HTTP Basic credentials.
    pub async fn token(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        log_capture::record("client_secret", secret);
        log_capture::record_form(form);
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        log_capture::record_json(&body);
        (status, body)
    }

    /// Gets a client credentials access token.
    pub async fn client_token(&self, id: &str, secret: &str, scope: &str) -> String {
        let (status, body) = self
            .token(
                id,
                secret,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Issues a personal access token for `user_id`.
    pub async fn pat(&self, user_id: i64, scopes: &[&str]) -> String {
        let token = self
            .sesame
            .create_token(user_id, "test token", scopes)
            .await
            .expect("pat")
            .access_token;
        log_capture::record("access_token", &token);
        token
    }

    /// Calls a path with a bearer token and returns the status, `WWW-Authenticate` and body.
    pub async fn get_with(&self, path: &str, token: &str) -> (StatusCode, String, Value) {
        log_capture::record("access_token", token);
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let body = response.json().await.unwrap_or(Value::Null);
        log_capture::record_json(&body);
        (status, challenge, body)
    }

    /// Posts a form to `path`, with HTTP Basic credentials when given.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Reply {
        log_capture::record_form(form);
        let mut request = self.http.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            log_capture::record("client_secret", secret);
            request = request.basic_auth(id, Some(secret));
        }
        Reply::read(request.send().await.expect("request")).await
    }

    /// Sends a request with a bearer token and an optional JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            log_capture::record("access_token", token);
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            log_capture::record_json(body);
            request = request.json(body);
        }
        Reply::read(request.send().await.expect("request")).await
    }

    /// Gets an access and a refresh token with the password grant.
    pub async fn password_tokens(
        &self,
        id: &str,
        secret: &str,
        user: &str,
        password: &str,
        scope: &str,
    ) -> (String, String) {
        let (status, body) = self
            .token(
                id,
                secret,
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", password),
                    ("scope", scope),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let access = body["access_token"].as_str().expect("access_token");
        let refresh = body["refresh_token"].as_str().expect("refresh_token");
        (access.to_owned(), refresh.to_owned())
    }

    /// Reads one flag column of one row, as 0 or 1.
    pub async fn flag(&self, table: &str, id: &str, column: &str) -> i64 {
        let query =
            format!("SELECT CASE WHEN {column} THEN 1 ELSE 0 END FROM {table} WHERE id = ?");
        sqlx::query_scalar::<_, i64>(&self.sesame.store().sql(&query))
            .bind(id)
            .fetch_one(self.sesame.store().pool())
            .await
            .expect("flag query")
    }

    /// Row counts of every table, and of revoked clients and tokens, to show a request
    /// changed nothing.
    pub async fn counts(&self) -> Vec<(String, i64)> {
        let mut counts = Vec::new();
        for table in [
            "users",
            "oauth_clients",
            "oauth_access_tokens",
            "oauth_refresh_tokens",
            "sesame_keys",
            "sesame_meta",
        ] {
            counts.push((
                table.to_owned(),
                self.count(&format!("SELECT COUNT(*) FROM {table}")).await,
            ));
        }
        for table in [
            "oauth_clients",
            "oauth_access_tokens",
            "oauth_refresh_tokens",
        ] {
            let query = format!("SELECT COUNT(*) FROM {table} WHERE revoked = TRUE");
            counts.push((format!("{table} revoked"), self.count(&query).await));
        }
        counts
    }

    /// Runs a `SELECT COUNT(*)` query.
    pub async fn count(&self, query: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(query)
            .fetch_one(self.sesame.store().pool())
            .await
            .expect("count query")
    }

    /// Runs a statement directly, as an operator or a test refresh would.
    pub async fn execute(&self, statement: &str) {
        sqlx::query(statement)
            .execute(self.sesame.store().pool())
            .await
            .expect("statement runs");
    }
}

/// A response's status, headers and body text.
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        log_capture::record_response(&headers, &text);
        Reply {
            status,
            headers,
            text,
        }
    }

    /// Parses the body as JSON, returning `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Returns a header's value, or "" when it is absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

/// Splits a JWT and decodes its header and claims without verifying.
pub fn decode_parts(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = engine
        .decode(parts.next().expect("header"))
        .expect("base64");
    let claims = engine
        .decode(parts.next().expect("claims"))
        .expect("base64");
    (
        serde_json::from_slice(&header).expect("header json"),
        serde_json::from_slice(&claims).expect("claims json"),
    )
}

/// Path of the `sesame` binary Cargo built for these tests.
pub fn sesame_bin() -> &'static str {
    env!("CARGO_BIN_EXE_sesame")
}

/// Builds a `sesame` command on `dir` with extra environment and no other `SESAME_*`
/// variables.
fn cli_command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(sesame_bin());
    command.arg("--data-dir").arg(dir).args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("SESAME_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        if *name == "SESAME_PRIVATE_KEY" {
            log_capture::record("private key", value);
        }
        command.env(name, value);
    }
    command
}

/// Records a finished command's output and returns exit code, stdout and stderr.
fn cli_result(output: std::process::Output) -> (i32, String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // The CLI keeps its default log level, because tests check its exact stderr.
    log_capture::record_cli_output(&stdout);
    log_capture::save_cli_log(&stderr);
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs the `sesame` binary on `dir` with extra environment and returns exit code, stdout
/// and stderr.
pub fn run_cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = cli_command(dir, args, env).output().expect("sesame runs");
    cli_result(output)
}

/// Runs the `sesame` binary as [`run_cli`] does, for a command such as `serve` that may not
/// exit by itself. Panics after `timeout`, killing the process, if it is still running.
pub fn run_cli_expecting_exit(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (i32, String, String) {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = cli_command(dir, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sesame runs");
    // Readers on their own threads keep a full pipe from blocking the process.
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read_all(Box::new(child.stderr.take().expect("stderr")));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("sesame {args:?} still ran after {timeout:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    cli_result(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Returns the `jti` of a JWT, which is its row id.
pub fn jti(token: &str) -> String {
    let (_, claims) = decode_parts(token);
    claims["jti"].as_str().expect("jti").to_owned()
}
