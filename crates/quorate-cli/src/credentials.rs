//! The options every client command shares to reach a secured cluster: a bearer token and TLS files.
//!
//! A token on the command line is visible to other users in `ps`: prefer `--token-file` or `QUORATE_TOKEN`.

use std::path::PathBuf;

use quorate_client::{Credentials, Tls};

/// How a client command authenticates: `--token`/`--token-file` (or `QUORATE_TOKEN`) and `--ca` with optional
/// `--cert`/`--key` for mutual TLS (or `QUORATE_CA`, `QUORATE_CERT`, `QUORATE_KEY`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CredentialArgs {
    /// Bearer token sent with every call (from `quorate token new`).
    #[arg(long, global = true, env = "QUORATE_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// File whose first line is the bearer token.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the nodes' certificates; turns TLS on (endpoints become https://).
    #[arg(long, global = true, env = "QUORATE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, e.g. certs/client.pem from `quorate certs init`.
    #[arg(long, global = true, env = "QUORATE_CERT", value_name = "FILE", requires = "key", requires = "ca")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, env = "QUORATE_KEY", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
}

impl CredentialArgs {
    /// Reads the files and validates the token.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or is not PEM, or a token that is not one line of visible ASCII; the message
    /// names the option and never repeats the token.
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        let mut credentials = Credentials::none();
        if let Some(ca) = &self.ca {
            let identity = self.cert.as_ref().zip(self.key.as_ref());
            credentials = credentials.with_tls(Tls::from_files(ca, identity)?)?;
        }
        if let Some(token) = &self.token {
            credentials = credentials.with_token(token)?;
        } else if let Some(file) = &self.token_file {
            credentials = credentials.with_token_file(file)?;
        }
        Ok(credentials)
    }
}
