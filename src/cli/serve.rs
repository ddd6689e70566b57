//! `sesame serve`.

use std::process::ExitCode;

use clap::Args;
use sesame::Config;
use sesame::config::Overrides;

/// Arguments of `sesame serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 127.0.0.1:8080 (port 0 picks a free port)
    /// [env: SESAME_BIND]
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

/// Binds, opens (installing where automatic), ensures the personal access client, starts the
/// key maintenance task and serves until SIGINT or SIGTERM, then finishes in-flight requests.
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
    tracing::info!(%address, issuer = %sesame.config().issuer, "sesame listening");
    println!("listening on http://{address}");
    let key_maintenance = sesame.spawn_key_maintenance();
    let app = sesame::router(sesame.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    key_maintenance.abort();
    served?;
    tracing::info!("sesame stopped");
    sesame.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
