//! A `sesame serve` whose database goes away while it runs: a TCP proxy on loopback sits
//! between the node and the database and is cut and restored. While it is cut, requests that
//! need the database get 503 with `Retry-After`, `/readyz` is 503 and `/healthz` stays 200.
//! Once it is restored the node recovers without a restart.
//!
//! These tests need a network database, so they run in the PostgreSQL and MariaDB passes
//! (`SESAME_TEST_DATABASE=postgres` or `mysql`) and return early in the SQLite pass.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use sesame::store::ClientKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::common::Reply;
use crate::multinode::network_database;
use crate::nodes::{Node, SharedKeys, admin, node_env};

/// A guard against a request that never ends; Sesame's pool gives up after its acquire
/// timeout, well within this.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// A TCP proxy on a loopback port that forwards to `upstream` until it is cut.
struct Proxy {
    address: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: AbortHandle,
}

struct ProxyState {
    open: bool,
    connections: Vec<AbortHandle>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(ProxyState {
            open: true,
            connections: Vec::new(),
        }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut guard = shared.lock().expect("proxy state");
                if !guard.open {
                    // Dropping the socket closes it, as a database that went away would.
                    continue;
                }
                let task = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                guard.connections.push(task.abort_handle());
            }
        });
        Proxy {
            address,
            state,
            accept: accept.abort_handle(),
        }
    }

    /// Closes every forwarded connection and every new one until [`Proxy::restore`].
    fn cut(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.open = false;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.state.lock().expect("proxy state").open = true;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Splits a test database URL into its server address and the URL through `proxy`.
fn through_proxy(url: &str, proxy: SocketAddr) -> (SocketAddr, String) {
    let parsed = url::Url::parse(url).expect("database URL");
    let host = parsed.host_str().expect("host");
    let port = parsed.port().expect("port");
    let upstream: SocketAddr = format!("{host}:{port}").parse().expect("loopback address");
    let proxied = url.replacen(&format!("{host}:{port}"), &proxy.to_string(), 1);
    (upstream, proxied)
}

/// A request a node receives while its database may be gone.
struct Probe {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    basic: Option<(String, String)>,
    bearer: Option<String>,
    form: Vec<(&'static str, String)>,
}

async fn send(node: &Node, probe: &Probe) -> Reply {
    let mut request = node
        .http
        .request(probe.method.clone(), node.url(&probe.path))
        .timeout(REQUEST_LIMIT);
    if let Some((id, secret)) = &probe.basic {
        request = request.basic_auth(id, Some(secret));
    }
    if let Some(token) = &probe.bearer {
        request = request.bearer_auth(token);
    }
    if !probe.form.is_empty() {
        request = request.form(&probe.form);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{}: no response: {error}", probe.name));
    Reply::read(response).await
}

async fn status_of(node: &Node, path: &str) -> StatusCode {
    node.http
        .get(node.url(path))
        .timeout(REQUEST_LIMIT)
        .send()
        .await
        .expect("request")
        .status()
}

// The proxy runs on the worker threads while `Node::start` blocks the test's own thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_database_answers_503_then_recovers() {
    let Some(database) = network_database("lost_database_answers_503_then_recovers").await else {
        return;
    };
    let keys = SharedKeys::generate();
    let (sesame, _admin_dir) = {
        // The schema and clients come from a node that talks to the database directly.
        let installer = Node::start(&node_env(&database.url, &keys));
        drop(installer);
        admin(&database.url, &keys).await
    };
    let (service_id, service_secret) =
        sesame::install::create_client(&sesame, ClientKind::ClientCredentials, "service", None)
            .await
            .map(|(client, secret)| (client.id, secret.expect("secret").expose().to_owned()))
            .expect("client");
    let resource_server = sesame::install::create_resource_server(&sesame, "api", None)
        .await
        .map(|(client, secret)| (client.id, secret.expect("secret").expose().to_owned()))
        .expect("resource server");
    let user_id = sesame
        .add_user("alice", Some("alice@example.com"), Some("pw"))
        .await
        .expect("user added");
    let pat = sesame
        .create_token(user_id, "outage", &["sesame:account", "read"])
        .await
        .expect("pat")
        .access_token;

    let placeholder: SocketAddr = "127.0.0.1:1".parse().expect("address");
    let (upstream, _) = through_proxy(&database.url, placeholder);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied_url) = through_proxy(&database.url, proxy.address);
    let node = Node::start(&node_env(&proxied_url, &keys));

    let basic = Some((service_id.clone(), service_secret.clone()));
    let probes = vec![
        Probe {
            name: "token",
            method: reqwest::Method::POST,
            path: "/oauth/token".into(),
            basic: basic.clone(),
            bearer: None,
            form: vec![("grant_type", "client_credentials".into())],
        },
        Probe {
            name: "introspect",
            method: reqwest::Method::POST,
            path: "/oauth/introspect".into(),
            basic: Some(resource_server.clone()),
            bearer: None,
            form: vec![("token", pat.clone())],
        },
        Probe {
            name: "revoke",
            method: reqwest::Method::POST,
            path: "/oauth/revoke".into(),
            basic: basic.clone(),
            bearer: None,
            form: vec![("token", "not-a-token".into())],
        },
        Probe {
            name: "userinfo",
            method: reqwest::Method::GET,
            path: "/oauth/userinfo".into(),
            basic: None,
            bearer: Some(pat.clone()),
            form: Vec::new(),
        },
        Probe {
            name: "personal tokens",
            method: reqwest::Method::GET,
            path: "/oauth/personal-access-tokens".into(),
            basic: None,
            bearer: Some(pat.clone()),
            form: Vec::new(),
        },
        Probe {
            name: "authorize page",
            method: reqwest::Method::GET,
            path: format!(
                "/oauth/authorize?response_type=code&client_id={service_id}&state=x\
                 &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
                 &code_challenge_method=S256"
            ),
            basic: None,
            bearer: None,
            form: Vec::new(),
        },
    ];

    for probe in &probes {
        let reply = send(&node, probe).await;
        assert!(
            reply.status.is_success() || reply.status.is_client_error(),
            "{} before the cut: {} {}",
            probe.name,
            reply.status,
            reply.text
        );
    }
    assert_eq!(status_of(&node, "/readyz").await, StatusCode::OK);

    proxy.cut();
    for probe in &probes {
        let reply = send(&node, probe).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}: {}\n{}",
            probe.name,
            reply.text,
            node.log()
        );
        assert!(
            !reply.header("retry-after").is_empty(),
            "{}: no Retry-After",
            probe.name
        );
        if reply.header("content-type").starts_with("application/json") {
            assert_eq!(
                reply.json()["error"],
                "temporarily_unavailable",
                "{}: {}",
                probe.name,
                reply.text
            );
        }
    }
    assert_eq!(
        status_of(&node, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(status_of(&node, "/healthz").await, StatusCode::OK);

    proxy.restore();
    let mut ready = false;
    for _ in 0..100 {
        if status_of(&node, "/readyz").await == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "the node did not recover:\n{}", node.log());
    let reply = send(&node, &probes[0]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = send(&node, &probes[1]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["active"], true, "{}", reply.text);
}
