//! [`ServerTls`]: a listener's TLS acceptor, swapped whole when its files are reloaded.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use super::files::TlsFiles;
use super::members::{MemberNames, MemberVerifier};
use super::{TlsError, provider};

/// How a listener checks the certificates of those who connect.
#[derive(Debug, Clone)]
pub(crate) enum ClientAuth {
    /// Any client (public and admin listeners without `tls.ca`).
    None,
    /// Clients with a certificate chained to `tls.ca` (public and admin listeners with it).
    Ca,
    /// Peers: chained to the cluster CA and naming a current member.
    Members(MemberNames),
}

/// A listener's TLS: its files, how it checks clients, and the acceptor built from them.
pub(crate) struct ServerTls {
    files: TlsFiles,
    clients: ClientAuth,
    acceptor: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).field("clients", &self.clients).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the files and builds the acceptor.
    ///
    /// # Errors
    ///
    /// If a file cannot be read or rustls refuses the certificate and key.
    pub(crate) fn new(files: TlsFiles, clients: ClientAuth) -> Result<Self, TlsError> {
        let acceptor = RwLock::new(acceptor(&files, &clients)?);
        Ok(ServerTls { files, clients, acceptor })
    }

    /// The acceptor for the next connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reads the files again and uses them for new connections; open connections keep theirs.
    ///
    /// # Errors
    ///
    /// If the new files cannot be used: the old ones stay in force.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptor(&self.files, &self.clients)?;
        *self.acceptor.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The files it serves.
    pub(crate) fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn acceptor(files: &TlsFiles, clients: &ClientAuth) -> Result<TlsAcceptor, TlsError> {
    let loaded = files.load()?;
    let rustls_error = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(rustls_error)?;
    let builder = match (clients, loaded.roots) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(TlsError::Rustls("client certificates need a CA (tls.ca)".to_owned())),
        (ClientAuth::Ca, Some(roots)) => builder.with_client_cert_verifier(chain_verifier(roots)?),
        (ClientAuth::Members(names), Some(roots)) => {
            builder.with_client_cert_verifier(Arc::new(MemberVerifier::new(chain_verifier(roots)?, names.clone())))
        }
    };
    let mut config = builder.with_single_cert(loaded.chain, loaded.key).map_err(rustls_error)?;
    // gRPC is HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn chain_verifier(
    roots: rustls::RootCertStore,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Rustls(format!("the CA cannot verify clients: {e}")))
}
