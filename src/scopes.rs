//! Scope requests: parsing the RFC 6749 §3.3 `scope` parameter and checking it against the
//! declared scopes and what a client may ask for.

use crate::config::{ACCOUNT_SCOPE, Config};
use crate::store::ClientRecord;

/// Why a scope request was rejected; the message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError(pub String);

/// Splits a `scope` parameter on single spaces. Scope tokens are case-sensitive; empty
/// tokens (from doubled, leading or trailing spaces) and characters outside RFC 6749's
/// scope-token set are errors. Duplicates are dropped, keeping first-seen order.
pub fn parse(scope: &str) -> Result<Vec<String>, ScopeError> {
    if scope.is_empty() {
        return Ok(Vec::new());
    }
    let mut scopes: Vec<String> = Vec::new();
    for token in scope.split(' ') {
        if crate::config::validate_scope_name(token).is_err() {
            return Err(ScopeError(format!("malformed scope list {scope:?}")));
        }
        if !scopes.iter().any(|existing| existing == token) {
            scopes.push(token.to_owned());
        }
    }
    Ok(scopes)
}

/// Checks that every scope is declared or built in, and that `client` may request it.
/// `sesame:account` is granted only to first-party confidential clients.
pub fn check_for_client(
    config: &Config,
    client: &ClientRecord,
    scopes: &[String],
) -> Result<(), ScopeError> {
    for scope in scopes {
        if config.scope_description(scope).is_none() {
            return Err(ScopeError(format!("unknown scope {scope:?}")));
        }
        if scope == ACCOUNT_SCOPE && !(client.first_party && client.is_confidential()) {
            return Err(ScopeError(format!(
                "this client may not request {ACCOUNT_SCOPE}"
            )));
        }
        if let Some(allowed) = &client.scopes
            && !allowed.iter().any(|a| a == scope)
        {
            return Err(ScopeError(format!(
                "this client may not request scope {scope:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_single_spaces() {
        assert_eq!(parse("read write").expect("valid"), ["read", "write"]);
        assert_eq!(parse("read read").expect("valid"), ["read"]);
        assert_eq!(parse("").expect("valid"), Vec::<String>::new());
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in [
            "read  write",
            " read",
            "read ",
            "read\twrite",
            "read,write\"",
            "r\u{430}d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn comma_is_part_of_a_token() {
        // RFC 6749 allows ',' inside a scope token, so "read,admin" is one (unknown) scope.
        assert_eq!(parse("read,admin").expect("valid"), ["read,admin"]);
    }
}
