//! How a client proves who it is and knows whom it talks to: TLS settings ([`Tls`]) for the channels and a bearer
//! token sent as `authorization: Bearer <token>` on every call.
//!
//! With TLS, every node's certificate is checked against the given CA (a Quorate cluster has its own CA, see
//! `quorate certs init`); a client certificate and key make it mutual TLS, which a node's admin listener requires
//! by default. The token is validated once, when the client is built, and never appears in `Debug` output or in
//! errors.

use std::path::Path;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::error::ClientError;

/// TLS for the channels to the nodes: the CA that signed their certificates and, for mutual TLS, this client's
/// certificate and key (all PEM).
///
/// # Examples
///
/// ```no_run
/// use quorate_client::{Client, Tls};
///
/// let tls = Tls::from_files("certs/ca.pem", Some(("certs/client.pem", "certs/client-key.pem")))?;
/// let client = Client::builder(["quorate-1.internal:7101"]).tls(tls).token("qrt_...").build()?;
/// # Ok::<(), quorate_client::ClientError>(())
/// ```
#[derive(Clone)]
pub struct Tls {
    ca_pem: Vec<u8>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    server_name: Option<String>,
}

impl Tls {
    /// TLS that trusts the nodes whose certificates `ca_pem` signed.
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Tls {
        Tls { ca_pem: ca_pem.into(), identity: None, server_name: None }
    }

    /// Presents this certificate chain and private key to the nodes (mutual TLS).
    pub fn identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Tls {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Verifies every node's certificate against this name instead of the host in its endpoint (for nodes
    /// reached through an address their certificate does not name).
    pub fn server_name(mut self, name: impl Into<String>) -> Tls {
        self.server_name = Some(name.into());
        self
    }

    /// Reads the CA and, if given, the client certificate and key from PEM files.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidConfig`] naming the file that cannot be read.
    pub fn from_files(
        ca: impl AsRef<Path>,
        identity: Option<(impl AsRef<Path>, impl AsRef<Path>)>,
    ) -> Result<Tls, ClientError> {
        let tls = Tls::new(read("tls.ca", ca.as_ref())?);
        Ok(match identity {
            Some((cert, key)) => tls.identity(read("tls.cert", cert.as_ref())?, read("tls.key", key.as_ref())?),
            None => tls,
        })
    }

    /// Checks that the PEM files hold what they should, so that a wrong file fails when the client is built
    /// rather than on every connection.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        if !contains_pem(&self.ca_pem, "CERTIFICATE") {
            return Err(invalid("tls.ca", "holds no PEM certificate"));
        }
        if let Some((cert, key)) = &self.identity {
            if !contains_pem(cert, "CERTIFICATE") {
                return Err(invalid("tls.cert", "holds no PEM certificate"));
            }
            if !contains_pem(key, "PRIVATE KEY") {
                return Err(invalid("tls.key", "holds no PEM private key"));
            }
        }
        Ok(())
    }

    /// tonic's configuration for these settings.
    pub(crate) fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        let config = match &self.identity {
            Some((cert, key)) => config.identity(Identity::from_pem(cert, key)),
            None => config,
        };
        match &self.server_name {
            Some(name) => config.domain_name(name.clone()),
            None => config,
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("identity", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// What a client presents to the nodes: TLS settings (or plaintext) and a bearer token (or none).
///
/// [`ClientBuilder::tls`](crate::ClientBuilder::tls) and [`ClientBuilder::token`](crate::ClientBuilder::token)
/// fill these in for a [`Client`](crate::Client); the `endpoint` functions take them directly.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub(crate) tls: Option<Tls>,
    pub(crate) token: BearerToken,
}

impl Credentials {
    /// Plaintext, no token: what a `quorate dev` cluster on loopback accepts.
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Uses TLS with these settings for every node.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidConfig`] if a PEM file does not hold what it should.
    pub fn with_tls(mut self, tls: Tls) -> Result<Credentials, ClientError> {
        tls.validate()?;
        self.tls = Some(tls);
        Ok(self)
    }

    /// Sends `token` as `authorization: Bearer <token>` on every call.
    ///
    /// # Errors
    ///
    /// [`ClientError::InvalidConfig`] if the token is empty or not one line of visible ASCII (the message never
    /// repeats it).
    pub fn with_token(mut self, token: &str) -> Result<Credentials, ClientError> {
        self.token = BearerToken::new(token)?;
        Ok(self)
    }

    /// Sends the token on the first line of `path`.
    ///
    /// # Errors
    ///
    /// As [`Credentials::with_token`], and if the file cannot be read.
    pub fn with_token_file(mut self, path: impl AsRef<Path>) -> Result<Credentials, ClientError> {
        self.token = BearerToken::from_file(path.as_ref())?;
        Ok(self)
    }

    /// True if channels use TLS (endpoints are then `https://`).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// The `authorization` metadata every call carries, if the client has a token: the interceptor of a
/// [`NodeChannel`]. Made through [`Credentials`]; its `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// Validates a token: one line of visible ASCII (what `quorate token new` prints), surrounding whitespace
    /// ignored.
    pub(crate) fn new(token: &str) -> Result<BearerToken, ClientError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid("token", "is empty"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("token", "must be one line of visible ASCII characters"));
        }
        let value = format!("Bearer {token}")
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| invalid("token", "must be one line of visible ASCII characters"))?;
        Ok(BearerToken(Some(value)))
    }

    /// Reads a token from the first line of a file (as written by `quorate token new > token`).
    pub(crate) fn from_file(path: &Path) -> Result<BearerToken, ClientError> {
        let text = read("token_file", path)?;
        let text = String::from_utf8(text).map_err(|_| invalid("token_file", "is not UTF-8 text"))?;
        BearerToken::new(text.lines().next().unwrap_or_default())
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "BearerToken(<redacted>)" } else { "BearerToken(none)" })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel to one node that adds the client's token to every call; the generated service clients take it like
/// a plain channel (`RateLimiterClient::new(channel)`).
pub type NodeChannel = InterceptedService<Channel, BearerToken>;

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|error| invalid(field, &format!("cannot read {}: {error}", path.display())))
}

/// Whether `pem` holds a block whose label ends with `label` ("PRIVATE KEY" also matches "EC PRIVATE KEY").
fn contains_pem(pem: &[u8], label: &str) -> bool {
    let end = format!("{label}-----");
    String::from_utf8_lossy(pem).lines().any(|line| line.starts_with("-----BEGIN ") && line.trim_end().ends_with(&end))
}

fn invalid(field: &'static str, reason: &str) -> ClientError {
    ClientError::InvalidConfig { field, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_goes_out_as_bearer_metadata_and_never_in_debug_output() {
        let mut token = BearerToken::new("  qrt_abc123\n").unwrap();
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
        let request = token.call(tonic::Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer qrt_abc123");
    }

    #[test]
    fn no_token_adds_no_metadata() {
        let request = BearerToken::default().call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        for bad in ["", "   ", "two words", "line\nbreak", "caf\u{e9}"] {
            let error = BearerToken::new(bad).unwrap_err();
            assert!(matches!(&error, ClientError::InvalidConfig { field: "token", .. }), "{bad:?}");
            if bad.trim().len() > 3 {
                assert!(!error.to_string().contains(bad.trim()), "{error} echoes the token");
            }
        }
    }

    #[test]
    fn tls_files_must_hold_what_they_claim() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        assert!(Tls::new(cert).validate().is_ok());
        assert!(Tls::new(cert).identity(cert, key).validate().is_ok());
        let field = |tls: Tls| match tls.validate() {
            Err(ClientError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Tls::new("not pem")), "tls.ca");
        assert_eq!(field(Tls::new(cert).identity(key, key)), "tls.cert");
        assert_eq!(field(Tls::new(cert).identity(cert, cert)), "tls.key");
        assert!(!format!("{:?}", Tls::new(cert).identity(cert, key)).contains("MIIE"));
    }

    #[test]
    fn unreadable_files_are_named() {
        let error = Tls::from_files("/nonexistent/ca.pem", None::<(&str, &str)>).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
