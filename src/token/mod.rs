//! Tokens: signed JWT access tokens and opaque secrets.

pub mod jwt;
pub mod secret;
