//! Compiles `kagi/v1/*.proto` with protox (pure Rust), so a fresh machine needs no `protoc`.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "kagi/v1/common.proto",
        "kagi/v1/key_management.proto",
        "kagi/v1/crypto.proto",
        "kagi/v1/principals.proto",
        "kagi/v1/custodian.proto",
        "kagi/v1/audit.proto",
        "kagi/v1/quorum.proto",
        "kagi/v1/escrow.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // The serialized descriptor set feeds gRPC server reflection.
    fs::write(
        out.join("kagi_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
