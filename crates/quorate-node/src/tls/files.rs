//! [`TlsFiles`]: PEM files on disk, read and checked into rustls types.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A listener's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the node's own certificate first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA certificates the other side's certificate must chain to: on the peer listener the cluster CA
    /// (required); on the public and admin listeners, setting it requires client certificates.
    pub ca: Option<PathBuf>,
}

/// A TLS file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("{0}")]
    Rustls(String),
}

impl TlsError {
    fn file(path: &Path, problem: impl std::fmt::Display) -> Self {
        TlsError::File { path: path.to_owned(), problem: problem.to_string() }
    }
}

/// A listener's files as PEM bytes.
#[derive(Debug, Clone)]
pub(crate) struct Pem {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
    pub(crate) ca: Option<Vec<u8>>,
}

/// What a listener's files hold, parsed.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) roots: Option<RootCertStore>,
}

impl TlsFiles {
    /// Reads and parses every file; the error names the config key (`cert`, `key` or `ca`) and the problem.
    ///
    /// # Errors
    ///
    /// `(key, message)` for the first file that cannot be used.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        certs(&self.cert).map_err(|e| ("cert", e.to_string()))?;
        key(&self.key).map_err(|e| ("key", e.to_string()))?;
        if let Some(ca) = &self.ca {
            roots(ca).map_err(|e| ("ca", e.to_string()))?;
        }
        Ok(())
    }

    pub(crate) fn load(&self) -> Result<Loaded, TlsError> {
        let roots = self.ca.as_deref().map(roots).transpose()?;
        Ok(Loaded { chain: certs(&self.cert)?, key: key(&self.key)?, roots })
    }

    /// The PEM bytes of the certificate, key and CA, for tonic's client TLS.
    pub(crate) fn pem(&self) -> Result<Pem, TlsError> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| TlsError::file(path, e));
        Ok(Pem { cert: read(&self.cert)?, key: read(&self.key)?, ca: self.ca.as_deref().map(read).transpose()? })
    }

    /// The files, for watching them for changes.
    pub(crate) fn paths(&self) -> Vec<&Path> {
        [Some(self.cert.as_path()), Some(self.key.as_path()), self.ca.as_deref()].into_iter().flatten().collect()
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::file(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::file(path, format!("not PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::file(path, "holds no PEM certificate"));
    }
    Ok(chain)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::file(path, format!("no usable PEM private key: {e}")))
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs(path)? {
        roots.add(cert).map_err(|e| TlsError::file(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}
