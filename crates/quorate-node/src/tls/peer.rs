//! [`PeerTls`]: what a node presents and trusts when it dials its peers (Raft and forwarded calls).

use std::sync::RwLock;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::TlsError;
use super::files::{Pem, TlsFiles};

/// The node's own certificate and the cluster CA, as PEM, re-read on reload.
#[derive(Debug)]
pub(crate) struct PeerTls {
    files: TlsFiles,
    pem: RwLock<Pem>,
}

impl PeerTls {
    /// Reads the peer listener's files (its `ca` is required by the config).
    ///
    /// # Errors
    ///
    /// If a file cannot be read, or there is no CA.
    pub(crate) fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let pem = RwLock::new(read(&files)?);
        Ok(PeerTls { files, pem })
    }

    /// Reads the files again; channels dialled afterwards use them.
    ///
    /// # Errors
    ///
    /// If a file cannot be read: the old ones stay in force.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.files)?;
        *self.pem.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// tonic's client TLS for dialling the peer whose certificate must name `host`.
    pub(crate) fn client_config(&self, host: &str) -> ClientTlsConfig {
        let pem = self.pem.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut config = ClientTlsConfig::new().identity(Identity::from_pem(&pem.cert, &pem.key)).domain_name(host);
        if let Some(ca) = &pem.ca {
            config = config.ca_certificate(Certificate::from_pem(ca));
        }
        config
    }
}

fn read(files: &TlsFiles) -> Result<Pem, TlsError> {
    let pem = files.pem()?;
    if pem.ca.is_none() {
        return Err(TlsError::Rustls("the peer listener needs the cluster CA (peer.tls.ca)".to_owned()));
    }
    Ok(pem)
}
