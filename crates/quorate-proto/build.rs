//! Generates the gRPC code from `proto/` with protox, a pure-Rust protobuf compiler: no system `protoc` needed.
//!
//! Also writes the compiled file descriptor set (with the imported well-known types) to `OUT_DIR`, for gRPC
//! server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = [
        "quorate/v1/rate_limiter.proto",
        "quorate/v1/admin.proto",
        "quorate/v1/raft.proto",
        "envoy/service/ratelimit/v3/rls.proto",
    ];
    let descriptors = protox::compile(files, [root])?;
    let out_dir = std::env::var("OUT_DIR")?;
    std::fs::write(format!("{out_dir}/file_descriptor_set.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={root}");
    Ok(())
}
