//! Tokens: signed JWT access tokens and opaque secrets.

pub mod id_token;
pub mod jwt;
pub mod secret;
