//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) over every service a node serves.
//!
//! The descriptors are compiled in: quorate-proto's (`quorate.v1`, the Envoy subset and the well-known types
//! they import), grpc.health.v1's and reflection's own, so `grpcurl -plaintext HOST:PORT list` works without
//! proto files.

use tonic_reflection::server::Builder;
use tonic_reflection::server::v1::{ServerReflection as V1, ServerReflectionServer as V1Server};
use tonic_reflection::server::v1alpha::{ServerReflection as V1Alpha, ServerReflectionServer as V1AlphaServer};

use crate::error::NodeError;

fn builder() -> Builder<'static> {
    Builder::configure()
        .register_encoded_file_descriptor_set(quorate_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// Builds the `grpc.reflection.v1.ServerReflection` service.
///
/// # Errors
///
/// [`NodeError::Reflection`] if the compiled-in descriptors cannot be indexed (a build defect).
pub(crate) fn v1() -> Result<V1Server<impl V1>, NodeError> {
    Ok(builder().build_v1()?)
}

/// Builds the `grpc.reflection.v1alpha.ServerReflection` service, for older clients.
///
/// # Errors
///
/// [`NodeError::Reflection`] if the compiled-in descriptors cannot be indexed (a build defect).
pub(crate) fn v1alpha() -> Result<V1AlphaServer<impl V1Alpha>, NodeError> {
    Ok(builder().build_v1alpha()?)
}
