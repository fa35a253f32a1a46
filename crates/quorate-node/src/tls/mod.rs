//! TLS for every listener, with rustls (ring provider), and mutual TLS between peers.
//!
//! - [`TlsFiles`]: a listener's certificate, key and optional CA, as the config names them; checked at load.
//! - [`ServerTls`]: the acceptor a listener hands each new connection to; [`ServerTls::reload`] swaps in freshly
//!   read files (on SIGHUP, or when a file changes) for new connections only, so nothing in flight is dropped.
//! - [`members`]: the peer listener's client-certificate verifier: chained to the cluster CA **and** naming a
//!   current member's peer host, checked during the handshake, before any Raft payload is read.
//! - [`PeerTls`]: what this node presents and trusts when it dials its peers.

mod files;
pub(crate) mod members;
mod peer;
pub(crate) mod server;
#[cfg(test)]
pub(crate) mod test_pki;

pub use files::{TlsError, TlsFiles};
pub(crate) use members::MemberNames;
pub(crate) use peer::PeerTls;
pub(crate) use server::ServerTls;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The one crypto provider: ring (see the workspace Cargo.toml for why). rustls 0.23.48 marks it deprecated because
/// ring offers no post-quantum key exchange; aws-lc-rs does, at the price of building AWS-LC from C.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
