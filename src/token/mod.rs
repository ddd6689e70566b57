//! Tokens: signed JWT access tokens and opaque secrets, and what clients may do with issued
//! tokens (revoke and introspect them).

pub mod id_token;
pub mod introspection;
pub mod jwt;
pub mod revocation;
pub mod secret;
