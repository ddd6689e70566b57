//! Integration tests over real HTTP on loopback, one module per area.

mod account_page;
mod authorize;
mod browser;
mod common;
mod device;
mod guard;
mod install;
mod keys;
mod personal;
mod token_endpoint;
