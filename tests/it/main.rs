//! Integration tests over real HTTP on loopback, one module per area.

mod common;
mod guard;
mod install;
mod keys;
mod personal;
mod token_endpoint;
