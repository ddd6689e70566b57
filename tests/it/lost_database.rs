//! A `sesame serve` whose database goes away while it runs: a TCP proxy on loopback sits
//! between the node and the database. It either closes every connection (the database stopped
//! or restarted) or stalls them (packets lost on the network), then is restored. Meanwhile,
//! requests that need the database get 503 with `Retry-After`, `/readyz` is 503 and `/healthz`
//! stays 200. Once the proxy is restored the node recovers without a restart.
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

use crate::common::{Reply, TestDatabase};
use crate::multinode::network_database;
use crate::nodes::{Node, SharedKeys, admin, node_env};

/// A guard against a request that never ends. Sesame responds within its 30 s request
/// timeout, well within this.
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// How the proxy fails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// Every connection is closed and new ones are closed at once.
    Closed,
    /// Connections stay open but nothing is forwarded, and new ones get no response.
    Stalled,
}

/// Number of request loops running when the outage starts.
const IN_FLIGHT_LOOPS: usize = 4;

/// A TCP proxy on a loopback port that forwards to `upstream` until it fails.
struct Proxy {
    address: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    stalled: tokio::sync::watch::Sender<bool>,
    accept: AbortHandle,
}

struct ProxyState {
    outage: Option<Outage>,
    connections: Vec<AbortHandle>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(ProxyState {
            outage: None,
            connections: Vec::new(),
        }));
        let (stalled, _) = tokio::sync::watch::channel(false);
        let shared = state.clone();
        let stall_signal = stalled.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let mut guard = shared.lock().expect("proxy state");
                let task = match guard.outage {
                    // Dropping the socket closes it, as a stopped database would.
                    Some(Outage::Closed) => continue,
                    Some(Outage::Stalled) => tokio::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await;
                    }),
                    None => {
                        let mut stalled = stall_signal.subscribe();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            let forward =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                            let stall = async move {
                                let _ = stalled.wait_for(|stalled| *stalled).await;
                            };
                            tokio::select! {
                                _ = forward => {}
                                () = stall => {
                                    // Both sockets stay open, but nothing passes any more.
                                    std::future::pending::<()>().await;
                                }
                            }
                        })
                    }
                };
                guard.connections.push(task.abort_handle());
            }
        });
        Proxy {
            address,
            state,
            stalled,
            accept: accept.abort_handle(),
        }
    }

    fn fail(&self, outage: Outage) {
        let mut state = self.state.lock().expect("proxy state");
        state.outage = Some(outage);
        match outage {
            Outage::Closed => {
                for connection in state.connections.drain(..) {
                    connection.abort();
                }
            }
            Outage::Stalled => {
                self.stalled.send_replace(true);
            }
        }
    }

    /// Forwards again. Connections held through a stall are closed, as a peer that gave up on
    /// them would have done.
    fn restore(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.outage = None;
        self.stalled.send_replace(false);
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.fail(Outage::Closed);
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
#[derive(Clone)]
struct Probe {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    basic: Option<(String, String)>,
    bearer: Option<String>,
    form: Vec<(&'static str, String)>,
}

async fn send(http: &reqwest::Client, base: &str, probe: &Probe) -> Reply {
    let mut request = http
        .request(probe.method.clone(), format!("{base}{}", probe.path))
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
async fn closed_database_answers_503_then_recovers() {
    if let Some(database) = network_database("closed_database_answers_503_then_recovers").await {
        outage_answers_503_then_recovers(&database, Outage::Closed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_database_answers_503_then_recovers() {
    if let Some(database) = network_database("stalled_database_answers_503_then_recovers").await {
        outage_answers_503_then_recovers(&database, Outage::Stalled).await;
    }
}

/// Runs every kind of request before, during and after an outage of `outage` kind.
async fn outage_answers_503_then_recovers(database: &TestDatabase, outage: Outage) {
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
        let reply = send(&node.http, &node.base, probe).await;
        assert!(
            reply.status.is_success() || reply.status.is_client_error(),
            "{} before the cut: {} {}",
            probe.name,
            reply.status,
            reply.text
        );
    }
    assert_eq!(status_of(&node, "/readyz").await, StatusCode::OK);

    // Requests in flight when the database goes away must end too, not only the ones after.
    let mut in_flight = tokio::task::JoinSet::new();
    let (started_sender, mut started) = tokio::sync::mpsc::channel(IN_FLIGHT_LOOPS);
    for _ in 0..IN_FLIGHT_LOOPS {
        let (http, base, probe) = (node.http.clone(), node.base.clone(), probes[0].clone());
        let started_sender = started_sender.clone();
        in_flight.spawn(async move {
            let mut first = true;
            loop {
                let reply = send(&http, &base, &probe).await;
                if first {
                    let _ = started_sender.send(()).await;
                    first = false;
                }
                if reply.status != StatusCode::OK {
                    return reply;
                }
            }
        });
    }
    for _ in 0..IN_FLIGHT_LOOPS {
        started.recv().await.expect("loop started");
    }
    proxy.fail(outage);
    while let Some(result) = in_flight.join_next().await {
        let reply = result.expect("loop task");
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "in flight: {}",
            reply.text
        );
    }

    // A stalled request waits for the pool's acquire timeout, so the probes run at once.
    let mut during = tokio::task::JoinSet::new();
    for probe in probes.clone() {
        let (http, base) = (node.http.clone(), node.base.clone());
        during.spawn(async move { (send(&http, &base, &probe).await, probe.name) });
    }
    while let Some(result) = during.join_next().await {
        let (reply, name) = result.expect("probe task");
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{name}: {}\n{}",
            reply.text,
            node.log()
        );
        assert!(
            !reply.header("retry-after").is_empty(),
            "{name}: no Retry-After"
        );
        if reply.header("content-type").starts_with("application/json") {
            assert_eq!(
                reply.json()["error"],
                "temporarily_unavailable",
                "{name}: {}",
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
    let reply = send(&node.http, &node.base, &probes[0]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = send(&node.http, &node.base, &probes[1]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["active"], true, "{}", reply.text);
}
