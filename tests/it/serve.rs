//! `sesame serve` as a process: graceful shutdown, header limits and request ids in the logs.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::common::{TestDatabase, data_dir, sesame_bin};

/// How long a test waits for the server to start or to exit before it fails.
const PROCESS_WAIT: Duration = Duration::from_secs(60);

/// A running `sesame serve` on a loopback port, with its stderr collected.
struct ServeProcess {
    child: Child,
    address: String,
    stderr: Option<JoinHandle<String>>,
    _dir: TempDir,
    _database: Option<TestDatabase>,
}

impl ServeProcess {
    /// Starts `sesame serve` on a free loopback port with `env`, on the database
    /// `SESAME_TEST_DATABASE` names, and waits for its listening line.
    async fn start(env: &[(&str, &str)]) -> ServeProcess {
        Self::start_with(data_dir(""), &["--bind", "127.0.0.1:0"], env).await
    }

    /// Starts `sesame serve` with `serve_args` on `dir` as [`ServeProcess::start`] does.
    async fn start_with(dir: TempDir, serve_args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        Self::launch(dir, serve_args, env, None).await
    }

    /// Starts `sesame serve` as [`ServeProcess::start`] does, but reads nothing from its stderr
    /// until the returned sender sends or is dropped, as a stopped log collector would.
    async fn start_with_stalled_stderr(env: &[(&str, &str)]) -> (ServeProcess, mpsc::Sender<()>) {
        let (resume, resumed) = mpsc::channel();
        let args = ["--bind", "127.0.0.1:0"];
        let server = Self::launch(data_dir(""), &args, env, Some(resumed)).await;
        (server, resume)
    }

    async fn launch(
        dir: TempDir,
        serve_args: &[&str],
        env: &[(&str, &str)],
        stderr_gate: Option<mpsc::Receiver<()>>,
    ) -> ServeProcess {
        let database = TestDatabase::create().await;
        let mut command = Command::new(sesame_bin());
        command
            .arg("--data-dir")
            .arg(dir.path())
            .arg("serve")
            .args(serve_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        for (name, _) in std::env::vars() {
            if name.starts_with("SESAME_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        if let Some(database) = &database {
            command
                .env("SESAME_DATABASE_URL", &database.url)
                .env("SESAME_AUTO_INSTALL", "true");
        }
        command.envs(env.iter().copied());

        let mut child = command.spawn().expect("sesame serve starts");
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            if let Some(gate) = stderr_gate {
                let _ = gate.recv();
            }
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });

        let stdout = child.stdout.take().expect("stdout");
        let Some(address) = read_listening_address(stdout) else {
            let _ = child.kill();
            let stderr = stderr.join().unwrap_or_default();
            panic!("sesame serve printed no listening line; stderr:\n{stderr}");
        };
        ServeProcess {
            child,
            address,
            stderr: Some(stderr),
            _dir: dir,
            _database: database,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(PROCESS_WAIT))
            .expect("read timeout");
        stream
    }

    /// Sends SIGTERM, as a service manager does to stop the server.
    fn terminate(&self) {
        self.send_signal("TERM");
    }

    /// Sends the signal `name` (such as `INT` or `TERM`) to the server.
    fn send_signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits until the listener is closed, which the server does first on SIGINT or SIGTERM.
    fn wait_listener_closed(&self) {
        let started = Instant::now();
        while TcpStream::connect(&self.address).is_ok() {
            assert!(
                started.elapsed() < PROCESS_WAIT,
                "still accepting after the stop signal"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit and returns its status and stderr.
    fn wait_exit(mut self) -> (ExitStatus, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if started.elapsed() > PROCESS_WAIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
                panic!("sesame serve did not exit; stderr:\n{stderr:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self
            .stderr
            .take()
            .map(|handle| handle.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `sesame serve`'s stdout up to its `listening on` line and returns the address.
fn read_listening_address(stdout: std::process::ChildStdout) -> Option<String> {
    for line in BufReader::new(stdout).lines() {
        let line = line.ok()?;
        if let Some(address) = line.strip_prefix("listening on http://") {
            return Some(address.trim().to_owned());
        }
    }
    None
}

/// Reads one HTTP/1.1 response head from `stream`, up to and including the blank line.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(error) => panic!("reading a response failed: {error}"),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn in_flight_request_finishes_after_sigterm() {
    let server = ServeProcess::start(&[]).await;
    let mut stream = server.connect();
    let body = "grant_type=made_up";
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: sesame\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send head");
    // hyper sends 100 Continue once the handler starts reading the body, so the request is
    // in flight from here on.
    let interim = read_head(&mut stream);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    server.terminate();
    server.wait_listener_closed();
    stream.write_all(body.as_bytes()).expect("send body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");

    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("unsupported_grant_type"), "{response}");
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("all connections finished"), "{stderr}");
}

#[tokio::test]
async fn held_connection_ends_at_deadline() {
    let server = ServeProcess::start(&[
        ("SESAME_SHUTDOWN_TIMEOUT", "1"),
        ("SESAME_HEADER_READ_TIMEOUT", "1h"),
    ])
    .await;
    let mut stream = server.connect();
    let head = "POST /oauth/token HTTP/1.1\r\nHost: sesame\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 100\r\nExpect: 100-continue\r\n\r\n";
    stream.write_all(head.as_bytes()).expect("send head");
    let interim = read_head(&mut stream);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");

    // The body never comes, so only the shutdown deadline can end the process.
    server.terminate();
    let (status, stderr) = server.wait_exit();

    assert!(status.success(), "{status}\n{stderr}");
    assert!(stderr.contains("shutdown timeout passed"), "{stderr}");
    drop(stream);
}

#[tokio::test]
async fn header_read_timeout_closes_connection() {
    let server = ServeProcess::start(&[("SESAME_HEADER_READ_TIMEOUT", "1")]).await;
    let mut stream = server.connect();

    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sesame\r\n")
        .expect("send part of a head");
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest);

    assert!(read.is_ok(), "{read:?}");
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains(" 200 "), "{text}");
    assert!(!text.contains(" 500 "), "{text}");
}

#[tokio::test]
async fn oversized_header_rejected_without_500() {
    let server = ServeProcess::start(&[]).await;
    let mut stream = server.connect();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: sesame\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );

    // The server may close the connection before it has read everything, so a failed write
    // or a reset is an accepted way of rejecting it.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);

    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 431"),
        "{response}"
    );
    let mut healthy = server.connect();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: sesame\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    healthy.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    healthy.read_to_string(&mut answer).expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "16 KiB of headers: {answer}"
    );
    let mut ready = server.connect();
    ready
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: sesame\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    ready.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn log_lines_carry_request_id() {
    let server =
        ServeProcess::start(&[("SESAME_LOG_FORMAT", "json"), ("RUST_LOG", "sesame=debug")]).await;
    let keys_dir = server._dir.path().to_owned();
    let hostile_long = "L".repeat(1024);
    let hostile_markup = "id<script>alert(1)</script>";
    let mut ids = Vec::new();
    for sent in ["edge-1234.a_b", hostile_long.as_str(), hostile_markup] {
        let mut stream = server.connect();
        let body = "grant_type=made_up";
        let request = format!(
            "POST /oauth/token HTTP/1.1\r\nHost: sesame\r\nX-Request-Id: {sent}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let id = response
            .lines()
            .find_map(|line| line.strip_prefix("x-request-id: "))
            .expect("x-request-id header")
            .to_owned();
        ids.push(id);
    }
    server.terminate();
    let (_, stderr) = server.wait_exit();

    assert_eq!(ids[0], "edge-1234.a_b");
    assert_ne!(ids[1], hostile_long);
    assert_ne!(ids[2], hostile_markup);
    assert!(!stderr.contains(&hostile_long), "the 1 KB id was logged");
    assert!(!stderr.contains("<script>"), "the markup id was logged");
    // Every line is a JSON object, the key generation at first start included.
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON log line"))
        .collect();
    let generated = lines.iter().find(|line| {
        line["fields"]["message"] == "generated a signing key"
            && line["fields"]["key"] == "RSA-2048"
    });
    assert!(generated.is_some(), "{stderr}");
    let announced = lines.iter().find(|line| {
        line["fields"]["message"] == "generating a signing key"
            && line["fields"]["dir"] == keys_dir.display().to_string().as_str()
    });
    assert!(announced.is_some(), "{stderr}");
    for id in &ids {
        let of_request: Vec<&Value> = lines
            .iter()
            .filter(|line| line["span"]["request_id"] == id.as_str())
            .collect();
        let messages: Vec<&str> = of_request
            .iter()
            .filter_map(|line| line["fields"]["message"].as_str())
            .collect();
        assert!(messages.contains(&"request"), "{id}: {messages:?}");
        assert!(
            messages.contains(&"token request rejected"),
            "{id}: {messages:?}"
        );
    }
}

#[tokio::test]
async fn stalled_stderr_keeps_serving() {
    let (server, resume) = ServeProcess::start_with_stalled_stderr(&[]).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let url = format!("http://{}/healthz", server.address);
    // Each request logs a line of about 180 bytes, so 4,000 lines pass both the pipe's buffer
    // (64 KiB on Linux) and the log writer's (256 KiB).
    for number in 0..4_000 {
        let response = client.get(&url).send().await;
        let status = response.map(|response| response.status().as_u16());
        assert!(
            matches!(status, Ok(200)),
            "request {number} while stderr was not read: {status:?}"
        );
    }
    drop(resume);
    server.terminate();
    let (status, stderr) = server.wait_exit();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("dropped log lines because stderr did not keep up"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigint_stops_cleanly() {
    let server = ServeProcess::start(&[]).await;
    let mut stream = server.connect();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sesame\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    server.send_signal("INT");
    server.wait_listener_closed();
    let (status, stderr) = server.wait_exit();

    assert_eq!(status.code(), Some(0), "{status}\n{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    assert!(stderr.contains("sesame stopped"), "{stderr}");
}

/// Binds a free loopback port and keeps it, so that a server configured to listen on it
/// fails to start.
fn occupied_port() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind")
}

/// Returns the port of `sesame serve`'s listening address.
fn listening_port(server: &ServeProcess) -> u16 {
    server
        .address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .expect("port")
}

#[tokio::test]
async fn bind_flag_beats_environment_beats_file() {
    // Every layer that must lose names a port this test holds, so the server starts only if
    // the winning layer's free port 0 is the one it listens on.
    let file_port = occupied_port();
    let env_port = occupied_port();
    let file_bind = file_port.local_addr().expect("address").to_string();
    let env_bind = env_port.local_addr().expect("address").to_string();
    let busy = [
        file_port.local_addr().expect("address").port(),
        env_port.local_addr().expect("address").port(),
    ];
    let in_file = |bind: &str| data_dir(&format!("bind = \"{bind}\"\n"));

    let flag = ServeProcess::start_with(
        in_file(&file_bind),
        &["--bind", "127.0.0.1:0"],
        &[("SESAME_BIND", &env_bind)],
    )
    .await;
    assert!(!busy.contains(&listening_port(&flag)), "flag ignored");

    let env =
        ServeProcess::start_with(in_file(&file_bind), &[], &[("SESAME_BIND", "127.0.0.1:0")]).await;
    assert!(!busy.contains(&listening_port(&env)), "environment ignored");

    // The default, 127.0.0.1:8080, would listen on port 8080.
    let file = ServeProcess::start_with(in_file("127.0.0.1:0"), &[], &[]).await;
    assert_ne!(listening_port(&file), 8080, "sesame.toml ignored");
    assert!(!busy.contains(&listening_port(&file)));
}
