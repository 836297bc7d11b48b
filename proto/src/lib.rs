//! The Kagi gRPC API, package `kagi.v1`, generated from `proto/kagi/v1/*.proto`.
//!
//! - [`v1::key_management_server`] / [`v1::key_management_client`]: tenants and keys.
//! - [`v1::crypto_server`] / [`v1::crypto_client`]: encrypt, decrypt, data keys, re-encrypt.
//! - [`v1::principal_management_server`] / [`v1::principal_management_client`]: principals and
//!   their bearer tokens.
//! - [`v1::custodian_server`] / [`v1::custodian_client`]: the sealed root key's custodians and
//!   their ceremonies (init, unseal, seal, rekey).
//! - [`v1::quorum_server`] / [`v1::quorum_client`]: proposals approved by a quorum of custodians.
//! - [`v1::audit_server`] / [`v1::audit_client`]: query, verify and export the audit trail.
//!
//! [`FILE_DESCRIPTOR_SET`] serves gRPC reflection.

/// Generated messages, enums, clients and servers of `kagi.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("kagi.v1");
}

/// The encoded `FileDescriptorSet` of every Kagi proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kagi_descriptor.bin"));
