//! The three listeners of a node — `[public]`, `[peer]` and `[admin]` — and the rules that keep them safe.
//!
//! - `[public]`: `RateLimiter`, Envoy's rate limit service, health and reflection, and `Admin/Status` (read-only:
//!   clients route by it). What API servers and Envoy reach.
//! - `[peer]`: the Raft service and calls forwarded between nodes, nothing else; with TLS, **mutual** TLS against
//!   the cluster CA, and a peer's certificate must name a current member. Only the other nodes reach it.
//! - `[admin]`: the Admin service, on 127.0.0.1 unless configured otherwise.
//!
//! A node refuses to start when a listener binds a non-loopback address without TLS, or when the admin listener
//! has no way to authenticate operators (no token with the `admin` role and no client-certificate CA), unless
//! that listener says `insecure = true`. The error names the keys to set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::address::host_port;
use crate::auth::{ListenerKind, Role, TokenRule};
use crate::error::ConfigError;
use crate::tls::TlsFiles;

/// Where the admin listener binds when `[admin]` says nothing.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:7301";

/// A `[public]`, `[peer]` or `[admin]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// Bind address, `ip:port`.
    pub listen: Option<String>,
    /// How others reach it (`host:port`); defaults to `listen`. Not for `[admin]`.
    pub advertise: Option<String>,
    /// TLS: `{ cert, key }`, and `ca` to verify the other side's certificate (required on `[peer]`).
    pub tls: Option<RawTls>,
    /// Allows plaintext on a non-loopback address, and an admin listener without authentication.
    #[serde(default)]
    pub insecure: bool,
}

/// A listener's `tls` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain, this node's certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that the other side's certificate must chain to.
    pub ca: Option<PathBuf>,
}

/// One validated listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Bind address.
    pub listen: SocketAddr,
    /// Address others reach it at; `None` means the bound address.
    pub advertise: Option<String>,
    /// TLS files, if TLS is on.
    pub tls: Option<TlsFiles>,
    /// Whether the safety rules above were waived for it.
    pub insecure: bool,
}

impl ListenerConfig {
    /// A plaintext listener on `listen` (loopback only makes sense: for `quorate dev` and tests).
    pub fn plaintext(listen: SocketAddr) -> Self {
        ListenerConfig { listen, advertise: None, tls: None, insecure: true }
    }

    /// Whether it verifies the certificates of the clients that connect to it.
    pub fn verifies_client_certs(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.ca.is_some())
    }
}

/// Validates listener `kind` from `raw` (relative paths against `base`), with `tokens` for the admin rule.
pub(super) fn listener(
    kind: ListenerKind,
    raw: Option<&RawListener>,
    base: &Path,
    tokens: &[TokenRule],
) -> Result<ListenerConfig, ConfigError> {
    let name = kind.name();
    let field = |key: &str| format!("{name}.{key}");
    let default = RawListener::default();
    let raw = match (raw, kind) {
        (Some(raw), _) => raw,
        (None, ListenerKind::Admin) => &default,
        (None, _) => {
            return Err(ConfigError::new(name, format!("is missing: every node needs a [{name}] listener")));
        }
    };
    let listen_text = match (&raw.listen, kind) {
        (Some(listen), _) => listen.as_str(),
        (None, ListenerKind::Admin) => DEFAULT_ADMIN_LISTEN,
        (None, _) => return Err(ConfigError::new(field("listen"), "is required (ip:port)")),
    };
    let listen: SocketAddr = listen_text
        .parse()
        .map_err(|e| ConfigError::new(field("listen"), format!("{listen_text:?} is not ip:port: {e}")))?;
    let advertise = match (&raw.advertise, kind) {
        (Some(_), ListenerKind::Admin) => {
            return Err(ConfigError::new(field("advertise"), "is not used: nothing is told the admin address"));
        }
        (Some(advertise), _) => {
            host_port(&field("advertise"), advertise)?;
            Some(advertise.clone())
        }
        (None, ListenerKind::Admin) => None,
        (None, _) if listen.ip().is_unspecified() => {
            return Err(ConfigError::new(
                field("advertise"),
                format!("is required when listen is {listen}: peers and clients cannot dial an unspecified address"),
            ));
        }
        (None, _) => None,
    };
    let tls = match &raw.tls {
        None => None,
        Some(tls) => {
            let files = TlsFiles {
                cert: base.join(&tls.cert),
                key: base.join(&tls.key),
                ca: tls.ca.as_ref().map(|ca| base.join(ca)),
            };
            files.check().map_err(|(key, e)| ConfigError::new(field(&format!("tls.{key}")), e))?;
            Some(files)
        }
    };
    let config = ListenerConfig { listen, advertise, tls, insecure: raw.insecure };
    if kind == ListenerKind::Peer && config.tls.as_ref().is_some_and(|tls| tls.ca.is_none()) {
        return Err(ConfigError::new(
            field("tls.ca"),
            "is required: peers prove who they are with certificates the cluster CA signed (mutual TLS)",
        ));
    }
    if raw.insecure {
        return Ok(config);
    }
    if config.tls.is_none() && !listen.ip().is_loopback() {
        return Err(ConfigError::new(
            name,
            format!(
                "binds {listen}, which is not loopback, without TLS: set {name}.tls = {{ cert, key{} }} (`quorate \
                 certs init` writes them), or {name}.insecure = true on a network you trust",
                if kind == ListenerKind::Peer { ", ca" } else { "" }
            ),
        ));
    }
    if kind == ListenerKind::Admin
        && !config.verifies_client_certs()
        && !tokens.iter().any(|token| token.roles.contains(&Role::Admin))
    {
        return Err(ConfigError::new(
            name,
            "has no way to authenticate operators: add a [[tokens]] entry with the admin role (`quorate token new \
             --role admin`), or set admin.tls.ca to require client certificates, or admin.insecure = true",
        ));
    }
    Ok(config)
}
