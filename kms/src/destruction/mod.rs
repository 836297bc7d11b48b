//! Destroying keys (catalogue K9, D1, D2): what a carried-out destruction leaves behind.
//!
//! A quorum schedules a destruction ([`crate::quorum`]); the key is pending destruction for the
//! waiting period, and a retention hold keeps it from being scheduled or destroyed before its
//! date. When the period ends the scheduler ([`crate::scheduler`]) destroys the material of
//! every version in one transaction and stores a signed [`record::Record`].
//!
//! - [`record`]: the signed destruction record, its verification and its text form.

pub mod record;
