//! Integration tests over real HTTP on loopback, one module per area.

mod account_page;
mod authorize;
mod browser;
mod cli_clients;
mod clients_api;
mod common;
mod concurrent_install;
mod crash;
mod device;
mod doctor;
mod embedded;
mod guard;
mod install;
mod introspect;
mod keys;
mod lost_database;
mod metadata;
mod metrics;
mod multinode;
mod nodes;
mod personal;
mod purge;
mod revoke;
mod rotation;
mod serve;
mod token_endpoint;
