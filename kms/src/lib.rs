//! kagid, the Kagi key management service, as a library.
//!
//! A request comes in through [`server`] (gRPC, TLS 1.3 via [`tls`]), reaches a handler in
//! [`service`], which authenticates and authorises it with [`auth`], then calls the
//! [`engine`]. The engine reads and writes records through [`store`] (SQLite or PostgreSQL)
//! and asks the [`keyring`] for every operation that needs a key. Only the keyring holds
//! unwrapped keys; it uses the pure functions of [`crypto`].
//!
//! ```text
//! server → service → auth
//!                  → engine → keyring → crypto
//!                           → store
//! ```
//!
//! - [`audit`]: the hash-chained, signed audit trail and its sinks.
//! - [`config`]: flags, environment and TOML into one validated [`config::Config`].
//! - [`custody`]: the sealed root and the custodian ceremonies (init, unseal, seal, rekey).
//! - [`bootstrap`]: the first admin token on a fresh store outside dev mode.
//! - [`hygiene`]: no core dumps in processes that hold keys.
//! - [`dev`]: dev mode's local root key and admin token.
//! - [`quorum`]: dual control: proposals approved by a quorum of custodians.
//! - [`escrow`]: escrow bundles that carry a tenant's keys to another instance.
//! - [`destruction`]: signed records of destroyed keys.
//! - [`scheduler`]: each node's background jobs (due destructions and rotations, usage counts).
//! - [`model`]: tenants, keys, versions, principals.
//! - [`clock`]: injectable time.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod config;
pub mod custody;
pub use kagi_crypto as crypto;
pub mod destruction;
pub mod dev;
pub mod engine;
pub mod escrow;
pub mod hygiene;
pub mod keyring;
pub mod model;
pub mod quorum;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
