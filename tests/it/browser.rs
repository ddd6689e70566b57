//! A scripted browser for the sign-in, consent and device pages: a cookie jar, no automatic
//! redirects, and helpers that read hidden form fields.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::common::Server;

pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
}

/// A response with its status, `Location` and body.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the hidden or text input named `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let rest = &self.body[start + marker.len()..];
        unescape(&rest[..rest.find('"').expect("closing quote")])
    }
}

impl Browser {
    pub fn new(server: &Server) -> Browser {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Browser {
            http,
            base: server.base.clone(),
        }
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let location = headers
            .get(LOCATION)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body = response.text().await.expect("body");
        crate::log_capture::record_response(&headers, &body);
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(
            self.http
                .get(self.absolute(path))
                .send()
                .await
                .expect("get"),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        crate::log_capture::record_form(form);
        Self::page(
            self.http
                .post(self.absolute(path))
                .form(form)
                .send()
                .await
                .expect("post"),
        )
        .await
    }

    /// Posts `body` as a form body exactly as given, for forms a browser would not send.
    pub async fn post_raw(&self, path: &str, body: &str) -> Page {
        Self::page(
            self.http
                .post(self.absolute(path))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.to_owned())
                .send()
                .await
                .expect("post"),
        )
        .await
    }

    /// Signs in through the login page and returns the page the sign-in redirected to.
    pub async fn sign_in(&self, username: &str, password: &str, return_to: &str) -> Page {
        let login = self
            .get(&format!("/login?return_to={}", urlencode(return_to)))
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let form = [
            ("_csrf", login.field("_csrf")),
            ("return_to", login.field("return_to")),
            ("username", username.to_owned()),
            ("password", password.to_owned()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post("/login", &form).await
    }

    /// Follows an authorization request through sign-in to the consent page or the client.
    pub async fn authorize(&self, query: &str, username: &str, password: &str) -> Page {
        let first = self.get(&format!("/oauth/authorize?{query}")).await;
        let Some(location) = first.location.clone() else {
            return first;
        };
        if !location.starts_with("/login") {
            return first;
        }
        let after_login = self
            .sign_in(username, password, &format!("/oauth/authorize?{query}"))
            .await;
        assert_eq!(
            after_login.status,
            StatusCode::SEE_OTHER,
            "{}",
            after_login.body
        );
        self.get(after_login.location.as_deref().expect("location"))
            .await
    }

    /// Approves (or denies) the consent page `page` shows.
    pub async fn decide(&self, page: &Page, approve: bool) -> Page {
        let csrf = page.field("_csrf");
        let request = page.field("auth_request");
        let decision = if approve { "approve" } else { "deny" };
        let mut form = vec![
            ("_csrf", csrf.as_str()),
            ("auth_request", request.as_str()),
            ("decision", decision),
        ];
        if !approve {
            form.push(("_method", "DELETE"));
        }
        self.post("/oauth/authorize", &form).await
    }
}

/// Asserts the security headers that every page carries, `Cache-Control: no-store`
/// included.
pub fn check_page_headers(page: &Page) {
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
}

/// Decodes the HTML entities the template engine writes, as a browser would.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Reads one query parameter of a redirect location.
pub fn query_param(location: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(location).expect("absolute location");
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
