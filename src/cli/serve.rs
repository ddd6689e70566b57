//! `sesame serve`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use axum::Router;
use axum::extract::ConnectInfo;
use clap::Args;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sesame::Config;
use sesame::config::Overrides;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Maximum size of a request line plus header section, in bytes. Past it the connection
/// gets 431 Request Header Fields Too Large and is closed.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Arguments of `sesame serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 127.0.0.1:8080 (port 0 picks a free port)
    /// [env: SESAME_BIND]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

/// Binds, opens (installing where automatic), ensures the personal access client, starts the
/// key maintenance task and serves until SIGINT or SIGTERM. Then it stops accepting, lets
/// in-flight requests finish for up to `shutdown_timeout` and exits.
pub async fn run(config: Config, overrides: &Overrides, migrate: bool) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|error| anyhow::anyhow!("cannot listen on {}: {error}", config.bind))?;
    let address = listener.local_addr()?;
    // With port 0 the default issuer must name the port actually bound.
    let config = if config.bind.port() == 0 {
        let overrides = Overrides {
            bind: Some(address.to_string()),
            ..overrides.clone()
        };
        Config::load(&overrides)?
    } else {
        config
    };

    let sesame = super::open(config, migrate).await?;
    sesame.ensure_personal_access_client().await?;
    let shutdown =
        shutdown_signal().context("installing the SIGINT and SIGTERM handlers failed")?;
    tracing::info!(%address, issuer = %sesame.config().issuer, "sesame listening");
    println!("listening on http://{address}");

    let key_maintenance = sesame.spawn_key_maintenance();
    let app = sesame::router(sesame.clone());
    let drained = serve(listener, app, sesame.config(), shutdown).await;
    key_maintenance.abort();

    // Requests still running after the deadline may hold database connections, and closing
    // the pool would wait for them, so the pool is closed only after a complete drain.
    if drained {
        sesame.close().await;
    }
    tracing::info!("sesame stopped");
    Ok(ExitCode::SUCCESS)
}

/// Serves HTTP/1.1 connections from `listener` until `shutdown` completes, then waits up to
/// the configured shutdown timeout for open connections to finish their requests. Returns
/// whether every connection finished in time.
async fn serve(
    listener: TcpListener,
    app: Router,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors fails every accept at once, so wait a
                    // little instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), connection_service(app.clone(), peer));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);

    let timeout = config.shutdown_timeout;
    tokio::select! {
        () = graceful.shutdown() => {
            tracing::info!("all connections finished");
            true
        }
        () = tokio::time::sleep(timeout) => {
            tracing::warn!(
                timeout_seconds = timeout.as_secs(),
                "shutdown timeout passed; closing the remaining connections"
            );
            false
        }
    }
}

/// Wraps the router for one connection, adding the peer address that rate limits read
/// through `ConnectInfo`.
fn connection_service(
    app: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    })
}

/// Installs the SIGINT and SIGTERM handlers at once, so that a signal arriving before the
/// accept loop starts still stops the server gracefully, and returns a future that completes
/// at the first of them.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: no new connections, waiting for open ones");
    })
}

/// Returns a future that completes at Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: no new connections, waiting for open ones");
    })
}
