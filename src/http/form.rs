//! Reading OAuth form bodies and client credentials strictly: one content type, a size limit,
//! valid UTF-8 and no repeated parameter (RFC 6749 §3.1, §3.2).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use crate::grant::authorization_code::QueryParams;
use crate::grant::client_auth::ClientCredentials;
use crate::grant::{OAuthError, Params};

use super::MAX_BODY_BYTES;

/// The maximum number of parameters in one form or query.
const MAX_PARAMS: usize = 64;
/// The maximum length of a parameter name, in bytes after decoding.
const MAX_NAME_BYTES: usize = 128;
/// The maximum length of a parameter value, in bytes after decoding. Far above the longest
/// value OAuth needs (tokens here are JWTs of about 1 KiB), but a bound on what is hashed,
/// compared and stored.
const MAX_VALUE_BYTES: usize = 8 * 1024;

/// A form-encoded OAuth request body.
pub(crate) struct OAuthForm(pub Params);

/// The body was rejected: an OAuth `invalid_request`, or 413 when it is too large.
pub(crate) enum FormRejection {
    Invalid(OAuthError),
    TooLarge,
}

impl IntoResponse for FormRejection {
    fn into_response(self) -> Response {
        match self {
            FormRejection::Invalid(error) => error.into_response(),
            FormRejection::TooLarge => {
                let mut error = OAuthError::invalid_request(format!(
                    "the request body is larger than {MAX_BODY_BYTES} bytes"
                ));
                error.status = StatusCode::PAYLOAD_TOO_LARGE.as_u16();
                error.into_response()
            }
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = FormRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(FormRejection::Invalid(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    FormRejection::TooLarge
                } else {
                    FormRejection::Invalid(OAuthError::invalid_request(
                        "the body could not be read",
                    ))
                }
            })?;
        parse_form(&bytes)
            .map(OAuthForm)
            .map_err(FormRejection::Invalid)
    }
}

/// Parses a form body, rejecting invalid UTF-8, malformed percent-encoding, too many or too
/// long parameters and any parameter given twice.
pub(crate) fn parse_form(bytes: &[u8]) -> Result<Params, OAuthError> {
    let mut params = HashMap::new();
    for (name, value) in parse_pairs(bytes)? {
        if params.contains_key(&name) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name:?} is repeated"
            )));
        }
        params.insert(name, value);
    }
    Ok(Params(params))
}

/// Splits a form body into decoded pairs in order, rejecting invalid UTF-8, malformed
/// percent-encoding, a NUL byte, and too many or too long parameters. Repeats are kept.
pub(crate) fn parse_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| OAuthError::invalid_request("the body is not valid UTF-8"))?;
    let mut pairs = Vec::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        if pairs.len() >= MAX_PARAMS {
            return Err(too_many_parameters());
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (decode_component(name)?, decode_component(value)?);
        check_length(&name, &value)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Parses the query string of an authorization request. Unlike [`parse_form`] it rejects no
/// parameter outright. It reports the names given more than once and those whose name or
/// value is malformed, so that the error goes to a page or to the redirect URI.
pub(crate) fn parse_authorization_query(query: &str) -> QueryParams {
    let mut parsed = QueryParams::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(name) = decode_component(name) else {
            let lossy = url::form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(name, _)| name.into_owned())
                .unwrap_or_default();
            parsed.malformed.push(lossy);
            continue;
        };
        let Ok(value) = decode_component(value) else {
            parsed.values.remove(&name);
            parsed.malformed.push(name);
            continue;
        };
        let seen = parsed.values.contains_key(&name) || parsed.malformed.contains(&name);
        if seen && !parsed.repeated.contains(&name) {
            parsed.repeated.push(name.clone());
        }
        parsed.values.insert(name, value);
    }
    parsed
}

/// Checks the parameter count and lengths of a query string before it is decoded. A NUL byte
/// is left to the decoding that follows.
///
/// # Errors
///
/// `invalid_request` for more than [`MAX_PARAMS`] parameters or a name or value too long.
pub(crate) fn check_query_size(query: &str) -> Result<(), OAuthError> {
    let pairs = url::form_urlencoded::parse(query.as_bytes());
    for (index, (name, value)) in pairs.enumerate() {
        if index >= MAX_PARAMS {
            return Err(too_many_parameters());
        }
        check_length(&name, &value)?;
    }
    Ok(())
}

/// Reads one parameter of a page's query string, such as `return_to`, decoding the whole query
/// as strictly as a form body.
///
/// # Errors
///
/// `invalid_request` when the limits are exceeded, any parameter is malformed or contains a NUL
/// byte, or the parameter is repeated.
pub(crate) fn query_param(
    query: Option<&str>,
    expected: &str,
) -> Result<Option<String>, OAuthError> {
    let query = query.unwrap_or_default();
    let mut found = None;
    for (name, value) in parse_pairs(query.as_bytes())? {
        if name == expected && found.replace(value).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {expected:?} is repeated"
            )));
        }
    }
    Ok(found)
}

fn too_many_parameters() -> OAuthError {
    OAuthError::invalid_request(format!("more than {MAX_PARAMS} parameters"))
}

fn check_length(name: &str, value: &str) -> Result<(), OAuthError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(OAuthError::invalid_request(format!(
            "a parameter name is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(OAuthError::invalid_request(format!(
            "parameter {name:?} is longer than {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Decodes one `application/x-www-form-urlencoded` component, where `+` is a space and `%XX`
/// a byte. A stray `%`, bytes that are not UTF-8 after decoding, and a NUL byte are errors.
/// A NUL is rejected because no stored value contains one and PostgreSQL rejects one in a
/// query parameter.
pub(crate) fn decode_component(text: &str) -> Result<String, OAuthError> {
    let malformed = || OAuthError::invalid_request("malformed percent-encoding");
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let high = input.next().and_then(hex_value).ok_or_else(malformed)?;
                let low = input.next().and_then(hex_value).ok_or_else(malformed)?;
                bytes.push(high << 4 | low);
            }
            other => bytes.push(other),
        }
    }
    if bytes.contains(&0) {
        return Err(OAuthError::invalid_request(
            "a parameter contains a NUL byte",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| OAuthError::invalid_request("a parameter is not valid UTF-8"))
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Returns the 401 `invalid_client` for a request without client credentials, with the Basic
/// challenge that every 401 must carry (RFC 7235 §3.1).
pub(crate) fn missing_client_credentials() -> OAuthError {
    let mut error = OAuthError::invalid_client("client authentication is required");
    error.basic_challenge = true;
    error
}

/// Reads client credentials from HTTP Basic or the body, never both (RFC 6749 §2.3).
///
/// Basic credentials are form-decoded after base64 (RFC 6749 §2.3.1). A body `client_id`
/// beside Basic is tolerated only when it names the same client. Returns `Ok(None)` when the
/// request carries no client identification at all.
pub(crate) fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    match basic {
        Some((client_id, secret)) => {
            if body_secret.is_some() || body_id.is_some_and(|id| id != client_id) {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not Basic and the body together",
                ));
            }
            Ok(Some(ClientCredentials {
                client_id,
                secret: Some(secret),
                via_basic: true,
            }))
        }
        None => match body_id {
            Some(client_id) => Ok(Some(ClientCredentials {
                client_id: client_id.to_owned(),
                secret: body_secret.map(str::to_owned),
                via_basic: false,
            })),
            None if body_secret.is_some() => Err(OAuthError::invalid_request(
                "client_secret was sent without client_id",
            )),
            None => Ok(None),
        },
    }
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let malformed = || {
        let mut error = OAuthError::invalid_client("malformed Basic credentials");
        error.basic_challenge = true;
        error
    };
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        // Another scheme is a failed client authentication (RFC 6749 §5.2), so the response is
        // 401 with the Basic challenge that names the expected scheme.
        let mut error =
            OAuthError::invalid_client("clients authenticate only with HTTP Basic or in the body");
        error.basic_challenge = true;
        return Err(error);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let id = decode_component(id).map_err(|_| malformed())?;
    let secret = decode_component(secret).map_err(|_| malformed())?;
    if id.is_empty() {
        return Err(malformed());
    }
    Ok(Some((id, secret)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn repeated_parameter_rejected() {
        let error = parse_form(b"grant_type=a&grant_type=b")
            .err()
            .expect("rejected");
        assert_eq!(error.code, "invalid_request");
    }

    #[test]
    fn plus_and_percent_decode() {
        let params = parse_form(b"scope=read+write&x=%41%3a").expect("parses");
        assert_eq!(params.get("scope"), Some("read write"));
        assert_eq!(params.get("x"), Some("A:"));
    }

    #[test]
    fn bad_encodings_rejected() {
        for body in [
            &b"a=%zz"[..],
            b"a=%4",
            b"a=%ff",
            b"\xff=1",
            b"a=b%00",
            b"a%00=b",
        ] {
            assert!(parse_form(body).is_err(), "{body:?} accepted");
        }
    }

    #[test]
    fn too_many_or_too_long_parameters_rejected() {
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        let many = many.join("&");
        let long_value = format!("a={}", "x".repeat(MAX_VALUE_BYTES + 1));
        let long_name = format!("{}=1", "n".repeat(MAX_NAME_BYTES + 1));
        for input in [&many, &long_value, &long_name] {
            let error = parse_form(input.as_bytes()).err().expect("form rejected");
            assert_eq!(error.code, "invalid_request");
            let error = check_query_size(input).expect_err("query rejected");
            assert_eq!(error.code, "invalid_request");
        }
        let longest = format!("a={}", "x".repeat(MAX_VALUE_BYTES));
        assert!(parse_form(longest.as_bytes()).is_ok());
        assert!(check_query_size(&longest).is_ok());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("a%3Ab:s%2Bc+d");
        let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("valid");
        headers.insert(AUTHORIZATION, value);
        let (id, secret) = basic_credentials(&headers)
            .expect("parses")
            .expect("present");
        assert_eq!(id, "a:b");
        assert_eq!(secret, "s+c d");
    }

    #[test]
    fn basic_and_body_secret_conflict() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("id:secret");
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("valid"),
        );
        let params = parse_form(b"client_secret=secret").expect("parses");
        let error = client_credentials(&headers, &params).expect_err("rejected");
        assert_eq!(error.code, "invalid_request");
    }
}
