//! Generates the protobuf types and the tonic service from `proto/` with protox, so a
//! fresh machine needs nothing but cargo (no system protoc), and writes the descriptor set
//! that reflection and the Connect JSON codec read.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files = [
        "zitadel/resources/user/v3alpha/user_service.proto",
        "zitadel/session/v2/session_service.proto",
        "factors/user/v1/user_events.proto",
        "factors/policy/v1/login_policy.proto",
        "factors/sms/v1/sms_guard.proto",
        "zitadel/message.proto",
        "google/rpc/status.proto",
    ];
    let descriptors = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("factors_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
