//! Server-rendered pages: templates, security headers, browser sessions and CSRF tokens.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    RETRY_AFTER, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use subtle::ConstantTimeEq as _;

use crate::app::Sesame;
use crate::error::Error;
use crate::store::SessionRecord;
use crate::token::secret::{Secret, hash_secret};

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "sesame_session";
/// Absolute lifetime of a browser session, in seconds.
const SESSION_TTL_SECONDS: i64 = 12 * 3600;
/// Lifetime of a session that has not signed in yet (it only carries the login form's CSRF
/// token), in seconds.
const ANONYMOUS_SESSION_TTL_SECONDS: i64 = 3600;

/// `Content-Security-Policy` of every page: only this origin's stylesheet and script, no
/// framing, no plugins. There is no `form-action` directive because Chromium applies it to
/// the redirect that follows a consent form, whose target is the client's redirect URI.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
                        base-uri 'none'; frame-ancestors 'none'";

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut environment = Environment::new();
        let templates = [
            ("base.html", include_str!("../pages/base.html")),
            ("message.html", include_str!("../pages/message.html")),
            ("login.html", include_str!("../pages/login.html")),
            ("consent.html", include_str!("../pages/consent.html")),
            ("device.html", include_str!("../pages/device.html")),
            ("tokens.html", include_str!("../pages/tokens.html")),
        ];
        for (name, source) in templates {
            if let Err(error) = environment.add_template(name, source) {
                tracing::error!(template = name, %error, "built-in template does not parse");
            }
        }
        environment
    })
}

/// Renders a template with HTML escaping, adding the page security headers.
pub(crate) fn render(status: StatusCode, template: &str, context: minijinja::Value) -> Response {
    let rendered = environment()
        .get_template(template)
        .and_then(|t| t.render(context));
    match rendered {
        Ok(html) => {
            let mut response = (status, html).into_response();
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            with_page_headers(response)
        }
        Err(error) => {
            tracing::error!(template, %error, "rendering a page failed");
            with_page_headers((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response())
        }
    }
}

/// Renders a page with a title and one message, such as an authorization error.
pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let context = minijinja::context! { title, message, kind => "error" };
    render(status, "message.html", context)
}

/// Adds the headers every page carries: CSP, no framing, no referrer, no caching, nosniff.
pub(crate) fn with_page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Redirects with `303 See Other`, so a browser follows a form post with a GET and never
/// re-posts credentials (RFC 9700 §4.12).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    with_page_headers(response)
}

/// Renders a 429 page with `Retry-After`.
pub(crate) fn too_many_attempts(retry_after: i64, title: &str) -> Response {
    let message = format!("Too many failed attempts. Try again in {retry_after} seconds.");
    let mut response = message_page(StatusCode::TOO_MANY_REQUESTS, title, &message);
    if let Ok(value) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// Renders a generic error page for an internal failure and logs the detail under an id. A
/// database that cannot be reached gets a 503 page with `Retry-After` instead.
pub(crate) fn internal_page(error: &Error) -> Response {
    if error.is_unavailable() {
        tracing::warn!(%error, "database unavailable");
        let mut response = message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Temporarily unavailable",
            "The server cannot reach its database. Try again in a moment.",
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let error_id = uuid::Uuid::new_v4().simple().to_string();
    let error_id = &error_id[..12];
    tracing::error!(error_id, %error, "internal error");
    message_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &format!("The server could not complete the request (error {error_id})."),
    )
}

/// A browser session read from the request, with its cookie value's hash.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub record: SessionRecord,
}

impl Session {
    /// Returns the signed-in user, if any.
    pub(crate) fn user_id(&self) -> Option<i64> {
        self.record.user_id
    }

    /// Checks a form's CSRF token against the session's, in constant time.
    pub(crate) fn csrf_matches(&self, presented: Option<&str>) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        bool::from(
            presented
                .as_bytes()
                .ct_eq(self.record.csrf_token.as_bytes()),
        )
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Loads the session the request's cookie names. A session whose user was disabled or
/// removed reads as no session.
pub(crate) async fn current_session(
    sesame: &Sesame,
    headers: &HeaderMap,
) -> Result<Option<Session>, Error> {
    let Some(value) = cookie_value(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    if value.is_empty() || value.len() > 100 {
        return Ok(None);
    }
    let Some(record) = sesame
        .store()
        .session(&hash_secret(value), sesame.now())
        .await?
    else {
        return Ok(None);
    };
    if let Some(user_id) = record.user_id {
        match sesame.store().user(user_id).await? {
            Some(user) if !user.disabled => {}
            _ => return Ok(None),
        }
    }
    Ok(Some(Session { record }))
}

/// Creates a session and returns it with the `Set-Cookie` value. A new session id is made at
/// every sign-in, so an id planted before sign-in is worthless afterwards.
pub(crate) async fn start_session(
    sesame: &Sesame,
    user_id: Option<i64>,
) -> Result<(Session, HeaderValue), Error> {
    let id = Secret::generate()?;
    let csrf = Secret::generate()?;
    let now = sesame.now();
    let ttl = if user_id.is_some() {
        SESSION_TTL_SECONDS
    } else {
        ANONYMOUS_SESSION_TTL_SECONDS
    };
    let record = SessionRecord {
        id_hash: id.stored(),
        user_id,
        csrf_token: csrf.expose().to_owned(),
        auth_time: user_id.map(|_| now),
        expires_at: now + ttl,
    };
    sesame.store().insert_session(&record, now).await?;
    let cookie = session_cookie(sesame, id.expose(), ttl);
    Ok((Session { record }, cookie))
}

/// Builds the session `Set-Cookie` header: HttpOnly, SameSite=Lax, Secure when the issuer
/// is https. An empty value with max-age 0 clears it.
pub(crate) fn session_cookie(sesame: &Sesame, value: &str, max_age: i64) -> HeaderValue {
    let secure = if sesame.config().issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds a `Set-Cookie` header to a response.
pub(crate) fn set_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// Returns `return_to` when it is a path on this server, else the default page. Rejects
/// scheme-relative (`//host`) and backslash tricks (`/\host`) that browsers treat as other
/// hosts.
pub(crate) fn safe_return_to(return_to: Option<&str>) -> String {
    const DEFAULT: &str = "/account/tokens";
    let Some(path) = return_to else {
        return DEFAULT.to_owned();
    };
    let safe = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 16 * 1024
        && !path.chars().any(|c| c.is_control() || c == '\\');
    if safe {
        path.to_owned()
    } else {
        DEFAULT.to_owned()
    }
}

/// The address of the client: the peer, or for requests from a trusted proxy the last
/// address in `X-Forwarded-For` that the proxy appended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress
where
    Sesame: axum::extract::FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let sesame = <Sesame as axum::extract::FromRef<S>>::from_ref(state);
        let trusted = &sesame.config().trusted_proxies;
        let forwarded = || {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .next_back()
                .and_then(|last| last.trim().parse::<IpAddr>().ok())
        };
        let address = match peer {
            Some(ip) if trusted.contains(&ip) => forwarded().or(Some(ip)),
            other => other,
        };
        Ok(ClientAddress(address))
    }
}

impl ClientAddress {
    /// Returns the key under which failures from this address are counted, or `None` when
    /// the address is unknown (a router served without `ConnectInfo`): one shared key would
    /// let anyone's failures block every visitor.
    ///
    /// An IPv6 address counts by its /64 prefix, as the rate limits do, because one host
    /// usually owns a whole /64 and could otherwise start afresh from each of its addresses.
    pub(crate) fn key(&self, purpose: &str) -> Option<String> {
        self.0.map(|ip| match ip {
            IpAddr::V4(ip) => format!("{purpose}:addr:{ip}"),
            IpAddr::V6(ip) => {
                let prefix = std::net::Ipv6Addr::from_bits(ip.to_bits() >> 64 << 64);
                format!("{purpose}:addr:{prefix}/64")
            }
        })
    }
}

/// Serves the stylesheet and the copy-button script.
pub(crate) async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "sesame.css" => (
            include_str!("../pages/sesame.css"),
            "text/css; charset=utf-8",
        ),
        "sesame.js" => (
            include_str!("../pages/sesame.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_key_groups_ipv6_by_prefix() {
        let first = ClientAddress(Some("2001:db8:1:2::1".parse().expect("ip")));
        let second = ClientAddress(Some("2001:db8:1:2:ffff::9".parse().expect("ip")));
        let other = ClientAddress(Some("2001:db8:1:3::1".parse().expect("ip")));
        assert_eq!(first.key("login"), second.key("login"));
        assert_ne!(first.key("login"), other.key("login"));
        assert_eq!(
            first.key("login").as_deref(),
            Some("login:addr:2001:db8:1:2::/64")
        );
    }

    #[test]
    fn address_key_keeps_whole_ipv4() {
        let address = ClientAddress(Some("192.0.2.7".parse().expect("ip")));
        assert_eq!(
            address.key("device").as_deref(),
            Some("device:addr:192.0.2.7")
        );
        assert_eq!(ClientAddress(None).key("device"), None);
    }

    #[test]
    fn return_to_only_local_paths() {
        assert_eq!(
            safe_return_to(Some("/oauth/authorize?x=1")),
            "/oauth/authorize?x=1"
        );
        for bad in [
            "//evil.com",
            "https://evil.com",
            "/\\evil.com",
            "evil.com",
            "/a\nb",
            "/a\\b",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/account/tokens", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/account/tokens");
    }

    #[test]
    fn templates_parse() {
        for name in [
            "message.html",
            "login.html",
            "consent.html",
            "device.html",
            "tokens.html",
        ] {
            assert!(environment().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn templates_escape_html() {
        let context = minijinja::context! { title => "t", message => "<script>x</script>" };
        let html = environment()
            .get_template("message.html")
            .and_then(|t| t.render(context))
            .expect("renders");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
