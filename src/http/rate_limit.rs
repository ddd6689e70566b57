//! Request rate limits on the endpoints that check secrets or start flows: `/oauth/token`,
//! `POST /login`, `/oauth/device/code` and `POST /oauth/device`.
//!
//! Limits are kept in memory on each node (generic cell rate algorithm, `governor` crate), so a
//! cluster of N nodes allows up to N times the configured rate. The per-user sign-in back-off
//! that protects passwords is separate and lives in the database, shared by all nodes.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{FromRef, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::pages::{ClientAddress, message_page};
use crate::app::Sesame;
use crate::config::RateLimit;
use crate::grant::OAuthError;

/// Checks between two sweeps that forget keys whose bucket has refilled, which bounds memory
/// to the keys seen within about one refill period.
const SWEEP_EVERY: u64 = 1024;

/// The rate-limited endpoints; each has its own bucket per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Token,
    Login,
    DeviceCode,
    DeviceEntry,
}

impl Endpoint {
    /// Returns the endpoint a request goes to, or `None` for requests that are not limited.
    fn of(request: &Request) -> Option<Endpoint> {
        if request.method() != axum::http::Method::POST {
            return None;
        }
        match request.uri().path() {
            "/oauth/token" => Some(Endpoint::Token),
            "/login" => Some(Endpoint::Login),
            "/oauth/device/code" => Some(Endpoint::DeviceCode),
            "/oauth/device" => Some(Endpoint::DeviceEntry),
            _ => None,
        }
    }

    /// Whether the endpoint is a browser page, which responds with HTML rather than OAuth JSON.
    fn is_page(self) -> bool {
        matches!(self, Endpoint::Login | Endpoint::DeviceEntry)
    }
}

/// The part of a client address a bucket is keyed by: the whole IPv4 address, or the /64
/// prefix of an IPv6 address, because one host usually owns a whole /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AddressKey {
    V4(u32),
    V6Prefix(u64),
    Unknown,
}

impl From<Option<IpAddr>> for AddressKey {
    fn from(address: Option<IpAddr>) -> Self {
        match address.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(ip)) => AddressKey::V4(ip.to_bits()),
            Some(IpAddr::V6(ip)) => AddressKey::V6Prefix((ip.to_bits() >> 64) as u64),
            None => AddressKey::Unknown,
        }
    }
}

/// The in-memory rate limiters of one router.
pub(crate) struct RateLimits {
    per_address: Option<DefaultKeyedRateLimiter<(Endpoint, AddressKey)>>,
    per_client: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
    warned_unknown_address: AtomicBool,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_address", &self.per_address.is_some())
            .field("per_client", &self.per_client.is_some())
            .finish()
    }
}

/// Builds the quota of a limit, or `None` when the limit is off.
fn quota(limit: RateLimit) -> Option<Quota> {
    let per_minute = NonZeroU32::new(limit.per_minute)?;
    let burst = NonZeroU32::new(limit.burst).unwrap_or(per_minute);
    Some(Quota::per_minute(per_minute).allow_burst(burst))
}

impl RateLimits {
    /// Builds the limiters the configuration turns on.
    pub(crate) fn new(per_address: RateLimit, per_client: RateLimit) -> RateLimits {
        RateLimits {
            per_address: quota(per_address).map(DefaultKeyedRateLimiter::keyed),
            per_client: quota(per_client).map(DefaultKeyedRateLimiter::keyed),
            checks: AtomicU64::new(0),
            warned_unknown_address: AtomicBool::new(false),
        }
    }

    /// Counts one request from `address` to `endpoint`. Returns the wait before the next
    /// request is allowed when this one is over the limit.
    fn check_address(&self, endpoint: Endpoint, address: Option<IpAddr>) -> Result<(), Duration> {
        let Some(limiter) = &self.per_address else {
            return Ok(());
        };
        // Without the peer address (a router served without `ConnectInfo`) every client would
        // share one bucket, and one noisy client would lock out all others.
        let Some(address) = address else {
            if !self.warned_unknown_address.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "the client address is unknown, so per-address rate limits are off; serve \
                     the router with into_make_service_with_connect_info::<SocketAddr>()"
                );
            }
            return Ok(());
        };
        self.sweep_now_and_then();
        limiter
            .check_key(&(endpoint, AddressKey::from(Some(address))))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Counts one token request from an authenticated client.
    ///
    /// # Errors
    ///
    /// A 429 `temporarily_unavailable` with `Retry-After` when the client is over its limit.
    pub(crate) fn check_client(&self, client_id: &str) -> Result<(), OAuthError> {
        let Some(limiter) = &self.per_client else {
            return Ok(());
        };
        self.sweep_now_and_then();
        limiter
            .check_key(&client_id.to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                tracing::info!(client_id, "token request rate limit exceeded for client");
                too_many_requests_error("this client", wait)
            })
    }

    /// Forgets keys whose bucket is full again, once every [`SWEEP_EVERY`] checks.
    fn sweep_now_and_then(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        for limiter in self.per_address.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in self.per_client.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Rounds a wait up to whole seconds, at least 1, for `Retry-After`.
fn retry_after_seconds(wait: Duration) -> i64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    i64::try_from(seconds.max(1)).unwrap_or(i64::MAX)
}

/// Builds the OAuth error of a request over a rate limit: 429 `temporarily_unavailable` with
/// `Retry-After`. RFC 6749 defines no code for rate limits, and `temporarily_unavailable`
/// already means "retry later" to clients.
fn too_many_requests_error(who: &str, wait: Duration) -> OAuthError {
    let seconds = retry_after_seconds(wait);
    let mut error = OAuthError::temporarily_unavailable(format!(
        "too many requests from {who}; retry in {seconds} seconds"
    ));
    error.status = StatusCode::TOO_MANY_REQUESTS.as_u16();
    error.retry_after = Some(seconds);
    error
}

/// The state of the rate limit middleware.
#[derive(Clone)]
pub(crate) struct LimitState {
    pub sesame: Sesame,
    pub limits: Arc<RateLimits>,
}

impl FromRef<LimitState> for Sesame {
    fn from_ref(state: &LimitState) -> Sesame {
        state.sesame.clone()
    }
}

/// Rejects requests over the per-address limit of their endpoint with 429 and
/// `Retry-After`: an OAuth JSON error on the OAuth endpoints, a page on the browser pages.
pub(crate) async fn limit_by_address(
    State(state): State<LimitState>,
    address: ClientAddress,
    request: Request,
    next: Next,
) -> Response {
    let Some(endpoint) = Endpoint::of(&request) else {
        return next.run(request).await;
    };
    let Err(wait) = state.limits.check_address(endpoint, address.0) else {
        return next.run(request).await;
    };
    tracing::info!(?endpoint, address = ?address.0, "rate limit exceeded for address");
    if endpoint.is_page() {
        let seconds = retry_after_seconds(wait);
        let title = match endpoint {
            Endpoint::Login => "Sign in",
            _ => "Connect a device",
        };
        let message = format!("Too many requests. Try again in {seconds} seconds.");
        let mut response = message_page(StatusCode::TOO_MANY_REQUESTS, title, &message);
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        return response;
    }
    too_many_requests_error("this address", wait).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_keyed_by_prefix() {
        let first: IpAddr = "2001:db8:1:2::1".parse().expect("valid");
        let second: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("valid");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("valid");
        assert_eq!(
            AddressKey::from(Some(first)),
            AddressKey::from(Some(second))
        );
        assert_ne!(AddressKey::from(Some(first)), AddressKey::from(Some(other)));
    }

    #[test]
    fn mapped_ipv4_keyed_as_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("valid");
        let plain: IpAddr = "192.0.2.7".parse().expect("valid");
        assert_eq!(
            AddressKey::from(Some(mapped)),
            AddressKey::from(Some(plain))
        );
    }

    #[test]
    fn burst_then_rejected() {
        let limit = RateLimit {
            per_minute: 2,
            burst: 2,
        };
        let limits = RateLimits::new(limit, limit);
        let address = Some(IpAddr::from([192, 0, 2, 1]));
        assert!(limits.check_address(Endpoint::Token, address).is_ok());
        assert!(limits.check_address(Endpoint::Token, address).is_ok());
        let wait = limits
            .check_address(Endpoint::Token, address)
            .expect_err("third request over the burst");
        assert!(retry_after_seconds(wait) <= 30, "{wait:?}");
        assert!(limits.check_address(Endpoint::Login, address).is_ok());
        assert!(limits.check_client("a").is_ok());
        assert!(limits.check_client("a").is_ok());
        let error = limits.check_client("a").expect_err("over the limit");
        assert_eq!(error.status, 429);
        assert_eq!(error.code, "temporarily_unavailable");
        assert!(limits.check_client("b").is_ok());
    }

    #[test]
    fn unknown_address_not_limited() {
        let limit = RateLimit {
            per_minute: 1,
            burst: 1,
        };
        let limits = RateLimits::new(limit, limit);
        for _ in 0..10 {
            assert!(limits.check_address(Endpoint::Token, None).is_ok());
        }
    }

    #[test]
    fn zero_turns_limit_off() {
        let off = RateLimit {
            per_minute: 0,
            burst: 0,
        };
        let limits = RateLimits::new(off, off);
        for _ in 0..100 {
            assert!(limits.check_address(Endpoint::Token, None).is_ok());
            assert!(limits.check_client("a").is_ok());
        }
    }
}
