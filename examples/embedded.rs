//! An existing axum application that mounts Sesame's router beside its own routes and
//! protects one of them with a scope.
//!
//! Declare the `read` scope in `./sesame/sesame.toml`, run it with
//! `cargo run --example embedded`, then get a token from the mounted Sesame and call
//! `GET /reports` with it:
//!
//! ```text
//! mkdir -p sesame && printf '[scopes]\nread = "Read reports"\n' > sesame/sesame.toml
//! sesame --data-dir ./sesame client --client --name reports --scopes read
//! curl -u ID:SECRET -d grant_type=client_credentials -d scope=read \
//!     http://127.0.0.1:8080/oauth/token
//! curl -H "Authorization: Bearer ACCESS_TOKEN" http://127.0.0.1:8080/reports
//! ```

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sesame::{AllScopes, Config, ScopeList, Sesame};

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

/// The scopes `GET /reports` requires.
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
        .with_state(state)
        .merge(sesame::router(sesame))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sesame = Sesame::open(Config::for_data_dir("./sesame")?).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("listening on http://127.0.0.1:8080");
    axum::serve(listener, app(sesame)).await?;
    Ok(())
}
