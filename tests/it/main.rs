//! Integration tests over real HTTP on loopback, one module per area.

mod account_page;
mod authorize;
mod browser;
mod cli_clients;
mod clients_api;
mod common;
mod device;
mod guard;
mod install;
mod introspect;
mod keys;
mod log_capture;
mod metadata;
mod personal;
mod purge;
mod redaction;
mod revoke;
mod rotation;
mod token_endpoint;
