//! Quorate's wire types and gRPC stubs, generated at build time from `proto/`.
//!
//! - [`v1::rate_limiter_client`] / [`v1::rate_limiter_server`]: `Check` and `Refund`, for API servers.
//! - [`v1::admin_client`] / [`v1::admin_server`]: status, membership and policies, for operators.
//! - [`v1::raft_client`] / [`v1::raft_server`]: node-to-node Raft RPCs (opaque payloads), not for clients.
//! - [`envoy`]: the subset of Envoy's rate limit service v3 that nodes serve, under upstream's package names
//!   and field numbers ([`envoy::service::ratelimit::v3::rate_limit_service_server`]).
//! - [`FILE_DESCRIPTOR_SET`]: all of the above as an encoded `FileDescriptorSet`, for gRPC server reflection.
//!
//! ```
//! use prost::Message;
//!
//! let set = prost_types::FileDescriptorSet::decode(quorate_proto::FILE_DESCRIPTOR_SET).unwrap();
//! assert!(set.file.iter().any(|f| f.package() == "envoy.service.ratelimit.v3"));
//! ```

/// `quorate.v1`: the public API and the Raft service.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("quorate.v1");
}

/// Envoy's rate limit service v3 and the messages it uses, in modules that follow upstream's package names.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations, clippy::all)]
pub mod envoy {
    /// `envoy.service.*`
    pub mod service {
        /// `envoy.service.ratelimit.*`
        pub mod ratelimit {
            /// `envoy.service.ratelimit.v3`: `RateLimitService/ShouldRateLimit`.
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
    }

    /// `envoy.extensions.*`
    pub mod extensions {
        /// `envoy.extensions.common.*`
        pub mod common {
            /// `envoy.extensions.common.ratelimit.*`
            pub mod ratelimit {
                /// `envoy.extensions.common.ratelimit.v3`: `RateLimitDescriptor`.
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }

    /// `envoy.config.*`
    pub mod config {
        /// `envoy.config.core.*`
        pub mod core {
            /// `envoy.config.core.v3`: `HeaderValue`.
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }

    /// `envoy.type.*`
    pub mod r#type {
        /// `envoy.type.v3`: `RateLimitUnit`.
        pub mod v3 {
            tonic::include_proto!("envoy.r#type.v3");
        }
    }
}

/// The encoded `google.protobuf.FileDescriptorSet` of every proto file above and the well-known types they
/// import, for gRPC server reflection (`tonic_reflection::server::Builder::register_encoded_file_descriptor_set`).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
