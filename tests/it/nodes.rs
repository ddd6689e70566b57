//! `sesame serve` child processes: the nodes of the multi-node, install, crash and outage
//! tests. Every node listens on a loopback port of its own and writes its log to
//! `serve.log` in its data directory. A node that exits before it listens fails the test with
//! that log.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sesame::keys::{KeyAlgorithm, SigningKey};
use sesame::{Config, OpenOptions, Sesame};
use tempfile::TempDir;

use crate::common::{data_dir, sesame_bin};

/// The issuer every node of a deployment shares, as a load balancer's address would be.
pub const ISSUER: &str = "http://localhost:8080";

/// How long a node may take to print its listening line before the test gives up. A guard
/// against a hang, not a speed check: a node that fails to start exits and is seen at once.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A signing key pair as PEM text, for `SESAME_PRIVATE_KEY` and `SESAME_PUBLIC_KEY`.
pub struct SharedKeys {
    pub private_pem: String,
    pub public_pem: String,
}

impl SharedKeys {
    /// Generates an RS256 key pair.
    pub fn generate() -> SharedKeys {
        let (key, private_pem) =
            SigningKey::generate(KeyAlgorithm::Rs256, 2048).expect("key generated");
        SharedKeys {
            private_pem,
            public_pem: key.public_pem(),
        }
    }
}

/// Builds the environment of one node of a deployment on `database_url`.
pub fn node_env(database_url: &str, keys: &SharedKeys) -> Vec<(String, String)> {
    vec![
        ("SESAME_DATABASE_URL".into(), database_url.into()),
        ("SESAME_PRIVATE_KEY".into(), keys.private_pem.clone()),
        ("SESAME_PUBLIC_KEY".into(), keys.public_pem.clone()),
        ("SESAME_ISSUER".into(), ISSUER.into()),
        ("SESAME_AUTO_INSTALL".into(), "true".into()),
    ]
}

/// A running `sesame serve` process, killed with SIGKILL when dropped.
pub struct Node {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    dir: TempDir,
}

/// What became of a `sesame serve` that was started.
pub enum Started {
    /// It printed its listening line.
    Listening(Node),
    /// It exited first, with this code and log.
    Exited { code: i32, log: String },
}

impl Node {
    /// Starts `sesame serve` on a fresh data directory with `env` and waits until it listens.
    pub fn start(env: &[(String, String)]) -> Node {
        Self::start_in(data_dir(""), env)
    }

    /// Starts `sesame serve` on `dir` and waits until it listens.
    pub fn start_in(dir: TempDir, env: &[(String, String)]) -> Node {
        match Self::try_start(dir, env) {
            Started::Listening(node) => node,
            Started::Exited { code, log } => panic!("sesame serve exited with {code}:\n{log}"),
        }
    }

    /// Starts `sesame serve` on `dir` and returns once it listens or exits.
    pub fn try_start(dir: TempDir, env: &[(String, String)]) -> Started {
        Self::try_start_with_args(dir, &[], env)
    }

    /// Starts `sesame serve` with extra command-line arguments on `dir` and returns once it
    /// listens or exits.
    pub fn try_start_with_args(dir: TempDir, args: &[&str], env: &[(String, String)]) -> Started {
        let log_path = dir.path().join("serve.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(sesame_bin());
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);

        for (name, _) in std::env::vars() {
            if name.starts_with("SESAME_") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }

        let mut child = command.spawn().expect("sesame serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(base) = line.strip_prefix("listening on ") {
                    let _ = sender.send(base.to_owned());
                }
            }
        });

        let Ok(base) = receiver.recv_timeout(START_LIMIT) else {
            let _ = child.kill();
            let status = child.wait().expect("wait");
            return Started::Exited {
                code: status.code().unwrap_or(-1),
                log: std::fs::read_to_string(&log_path).unwrap_or_default(),
            };
        };

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Started::Listening(Node {
            child,
            base,
            http,
            dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Kills the process with SIGKILL, as a crash or an out-of-memory kill would, and returns
    /// its data directory for a restart.
    pub fn kill(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let empty = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, empty)
    }

    /// Returns the node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens the deployment's database in the test process, as an operator's CLI would, to
/// create users and clients and to query tables directly. It never migrates or installs.
pub async fn admin(database_url: &str, keys: &SharedKeys) -> (Sesame, TempDir) {
    let dir = data_dir("");
    let mut config = Config::for_data_dir(dir.path()).expect("config loads");
    config.database_url = database_url.to_owned();
    config.private_key_pem = Some(keys.private_pem.clone());
    config.public_key_pem = Some(keys.public_pem.clone());
    config.issuer = ISSUER.to_owned();
    config.audience = ISSUER.to_owned();
    config.auto_install = false;
    let options = OpenOptions::default().migrate(false).install(false);
    let sesame = Sesame::open_with(config, options)
        .await
        .expect("admin opens");
    (sesame, dir)
}

/// Returns the URL of the SQLite database in a data directory.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("sesame.db").display())
}
