//! An existing axum application that mounts Sesame's router beside its own routes and
//! protects two of them with a scope: `GET /reports` with the row-checked [`AllScopes`]
//! extractor, and `GET /summary` with the verify-only [`VerifiedToken`], which accepts a
//! revoked token until it expires.
//!
//! Declare the `read` scope in `./sesame/sesame.toml`, run it with
//! `cargo run --example embedded`, then get a token from the mounted Sesame and call
//! `GET /reports` or `GET /summary` with it:
//!
//! ```text
//! mkdir -p sesame && printf '[scopes]\nread = "Read reports"\n' > sesame/sesame.toml
//! sesame --data-dir ./sesame client --client --name reports --scopes read
//! curl -u ID:SECRET -d grant_type=client_credentials -d scope=read \
//!     http://127.0.0.1:8080/oauth/token
//! curl -H "Authorization: Bearer ACCESS_TOKEN" http://127.0.0.1:8080/reports
//! ```
//!
//! It reads the `SESAME_*` environment variables and `sesame.toml` as `sesame serve` does, so
//! `SESAME_BIND` and `SESAME_ISSUER` let it run beside a `sesame serve` on the same data
//! directory and accept that server's tokens (`bench/run` does this).

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sesame::config::Overrides;
use sesame::{AllScopes, BearerError, Config, ScopeList, Sesame, VerifiedToken};

/// The application's own state, which carries the opened Sesame for the scope extractors.
#[derive(Clone)]
pub struct AppState {
    /// The installation that issues and verifies the tokens.
    pub sesame: Sesame,
    /// The title the application shows on its reports.
    pub title: String,
}

impl FromRef<AppState> for Sesame {
    fn from_ref(state: &AppState) -> Sesame {
        state.sesame.clone()
    }
}

/// The scopes `GET /reports` and `GET /summary` require.
pub struct ReadReports;

impl ScopeList for ReadReports {
    const SCOPES: &'static [&'static str] = &["read"];
}

/// Returns the report to a token that carries `read`. Without a valid token the extractor
/// responds 401, and a token without the scope gets 403 `insufficient_scope`.
async fn reports(State(state): State<AppState>, token: AllScopes<ReadReports>) -> Json<Value> {
    Json(json!({
        "title": state.title,
        "client_id": token.client_id,
        "scopes": token.scopes,
    }))
}

/// Returns the summary to a token that carries `read`, checked on its signature and claims
/// only, so no database read happens per request. In exchange, a revoked token keeps reading
/// the summary until it expires. The subject may be a user id or a client id, so the route
/// only shows it.
async fn summary(
    State(state): State<AppState>,
    token: VerifiedToken,
) -> Result<Json<Value>, BearerError> {
    token.require_all(ReadReports::SCOPES)?;
    Ok(Json(json!({
        "title": state.title,
        "subject": token.subject,
        "client_id": token.client_id,
        "scopes": token.scopes,
    })))
}

/// Returns the service name, with no token required.
async fn home() -> &'static str {
    "reports service\n"
}

/// Builds the application: its own routes on its own state, merged with Sesame's router,
/// which serves `/oauth/token` and the other endpoints at the root.
pub fn app(sesame: Sesame) -> Router {
    let state = AppState {
        sesame: sesame.clone(),
        title: "Monthly report".to_owned(),
    };
    Router::new()
        .route("/", get(home))
        .route("/reports", get(reports))
        .route("/summary", get(summary))
        .with_state(state)
        .merge(sesame::router(sesame))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Warnings and errors go to stderr, such as a failed token-row lookup behind a 503.
    // `RUST_LOG` sets another level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::load(&Overrides::default())?;
    let bind = config.bind;
    let sesame = Sesame::open(config).await?;
    // Retirements made by the CLI or another node reach this process's verification keys
    // through this task, which matters most to the verify-only route.
    let _key_maintenance = sesame.spawn_key_maintenance();
    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The peer address feeds the per-address rate limits of Sesame's router.
    let service = app(sesame).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).await?;
    Ok(())
}
