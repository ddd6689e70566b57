//! Sesame: an OAuth 2.1 authorization server and personal access token service.
//!
//! Open an installation with [`Sesame::open`], mount [`router`] in an axum app, protect routes
//! with the [`Bearer`], [`AllScopes`] and [`AnyScope`] extractors (or [`VerifiedToken`], which
//! skips the revocation lookup), and issue personal access tokens with [`Sesame::create_token`].
//! The personal access client, signing keys and schema are ensured automatically where
//! installing is automatic (the SQLite default).
//!
//! ```no_run
//! # async fn run() -> Result<(), sesame::Error> {
//! let config = sesame::Config::for_data_dir("./sesame")?;
//! let sesame = sesame::Sesame::open(config).await?;
//! let token = sesame.create_token(1, "deploy script", &["read"]).await?;
//! println!("{}", token.access_token);
//! let app = axum::Router::new().merge(sesame::router(sesame.clone()));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

pub mod app;
pub mod clients;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod grant;
pub mod guard;
pub mod http;
pub mod install;
pub mod keys;
pub mod metrics;
mod names;
mod password;
pub mod purge;
pub mod redirect;
pub mod rotation;
pub mod scopes;
pub mod store;
pub mod token;
pub mod users;

pub use crate::metrics::Metrics;
pub use app::{OpenOptions, Sesame};
pub use config::Config;
pub use error::{Error, Result};
pub use grant::OAuthError;
pub use grant::personal_access::PersonalAccessToken;
pub use guard::{AllScopes, AnyScope, Bearer, BearerError, Principal, ScopeList, VerifiedToken};
pub use http::router;
