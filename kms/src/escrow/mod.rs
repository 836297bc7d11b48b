//! Escrow: a tenant's key material carried out of one kagid instance so that it can be
//! recovered into another, under split knowledge and dual control.
//!
//! The material travels in a [`bundle::Bundle`]: encrypted under a fresh escrow key that is
//! split M of N among escrow custodians (each share encrypted to one custodian with age), and
//! signed with the source instance's Ed25519 key. No single person, and not the file alone, can
//! open it; any M custodians together can.
//!
//! - [`bundle`]: the bundle format, sealing, verification and opening (pure code, no I/O).
//! - [`payload`]: what the encrypted payload holds (tenant, keys, version keys).
//!
//! The engine drives export and import ([`crate::engine::escrow`]); the store keeps bundles,
//! imports and staged shares ([`crate::store::escrow`]).

pub mod bundle;
pub mod payload;
