//! Generates the gRPC code from `proto/` with protox, a pure-Rust protobuf compiler: no system `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let files = ["quorate/v1/rate_limiter.proto", "quorate/v1/admin.proto", "quorate/v1/raft.proto"];
    let descriptors = protox::compile(files, [root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed={root}");
    Ok(())
}
