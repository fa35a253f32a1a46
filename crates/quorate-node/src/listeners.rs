//! The three listeners of a running node: bound sockets, their TLS, and the tasks that keep TLS current.
//!
//! [`Listeners::bind`] binds `[public]`, `[peer]` and `[admin]` before anything starts, so a taken port is an
//! error at once. [`NodeTls`] holds each listener's acceptor and the identity this node dials its peers with;
//! [`NodeTls::reload_on_change`] re-reads every file on SIGHUP, or within [`RELOAD_POLL`] of one changing on disk,
//! for new connections only (nothing in flight is dropped). [`watch_members`] keeps the peer listener's list of
//! acceptable peer names equal to the current membership.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{LocalAddrs, NodeConfig, host_of};
use crate::error::NodeError;
use crate::raft::Raft;
use crate::tls::server::ClientAuth;
use crate::tls::{MemberNames, PeerTls, ServerTls, TlsFiles};
use crate::transport::Listener;

/// How often TLS files are checked for changes.
pub(crate) const RELOAD_POLL: Duration = Duration::from_secs(10);

/// The bound sockets of the three listeners.
#[derive(Debug)]
pub(crate) struct Listeners {
    pub(crate) public: Listener,
    pub(crate) peer: Listener,
    pub(crate) admin: Listener,
    /// Where they are bound (port 0 in the config becomes the port the OS picked).
    pub(crate) addrs: LocalAddrs,
}

impl Listeners {
    /// Binds all three.
    ///
    /// # Errors
    ///
    /// [`NodeError::Listen`] naming the address that could not be bound.
    pub(crate) async fn bind(config: &NodeConfig) -> Result<Self, NodeError> {
        let (public, public_addr) = config.transport.bind(config.public.listen).await?;
        let (peer, peer_addr) = config.transport.bind(config.peer.listen).await?;
        let (admin, admin_addr) = config.transport.bind(config.admin.listen).await?;
        Ok(Listeners {
            public,
            peer,
            admin,
            addrs: LocalAddrs { public: public_addr, peer: peer_addr, admin: admin_addr },
        })
    }
}

/// Each listener's TLS, and this node's identity towards its peers.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeTls {
    pub(crate) public: Option<Arc<ServerTls>>,
    pub(crate) peer: Option<Arc<ServerTls>>,
    pub(crate) admin: Option<Arc<ServerTls>>,
    pub(crate) peer_client: Option<Arc<PeerTls>>,
}

impl NodeTls {
    /// Reads every configured TLS file; the peer listener accepts only peers whose certificate names one of
    /// `members`.
    ///
    /// # Errors
    ///
    /// [`NodeError::Tls`] naming the listener and the file.
    pub(crate) fn new(config: &NodeConfig, members: &MemberNames) -> Result<Self, NodeError> {
        let server = |name: &'static str, files: &Option<TlsFiles>, peers: bool| -> Result<_, NodeError> {
            let Some(files) = files else { return Ok(None) };
            let clients = match (peers, files.ca.is_some()) {
                (true, _) => ClientAuth::Members(members.clone()),
                (false, true) => ClientAuth::Ca,
                (false, false) => ClientAuth::None,
            };
            let tls =
                ServerTls::new(files.clone(), clients).map_err(|e| NodeError::Tls { listener: name, source: e })?;
            Ok(Some(Arc::new(tls)))
        };
        let peer_client = match &config.peer.tls {
            Some(files) => {
                Some(Arc::new(PeerTls::new(files.clone()).map_err(|e| NodeError::Tls { listener: "peer", source: e })?))
            }
            None => None,
        };
        Ok(NodeTls {
            public: server("public", &config.public.tls, false)?,
            peer: server("peer", &config.peer.tls, true)?,
            admin: server("admin", &config.admin.tls, false)?,
            peer_client,
        })
    }

    fn files(&self) -> Vec<PathBuf> {
        let servers = [&self.public, &self.peer, &self.admin];
        let mut paths: Vec<PathBuf> =
            servers.iter().flat_map(|s| s.iter()).flat_map(|s| s.files().paths()).map(|p| p.to_path_buf()).collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// Reads every file again. A listener whose new files cannot be used keeps its old ones (and says so).
    pub(crate) fn reload(&self) {
        for (name, server) in [("public", &self.public), ("peer", &self.peer), ("admin", &self.admin)] {
            if let Some(server) = server {
                match server.reload() {
                    Ok(()) => tracing::info!(listener = name, "reloaded its TLS certificate and key"),
                    Err(error) => {
                        tracing::error!(listener = name, %error, "kept the old TLS files: the new ones are unusable")
                    }
                }
            }
        }
        if let Some(client) = &self.peer_client
            && let Err(error) = client.reload()
        {
            tracing::error!(%error, "kept the old peer TLS identity: the new files are unusable");
        }
    }

    /// Reloads on SIGHUP and whenever a file's modification time changes; returns at once without TLS.
    pub(crate) async fn reload_on_change(self) {
        let files = self.files();
        if files.is_empty() {
            return;
        }
        let stamp = |files: &[PathBuf]| -> Vec<Option<SystemTime>> {
            files.iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
        };
        let mut seen = stamp(&files);
        let mut hangups = hangups();
        let mut poll = tokio::time::interval(RELOAD_POLL);
        loop {
            tokio::select! {
                _ = poll.tick() => {
                    let now = stamp(&files);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
                Some(()) = next_hangup(&mut hangups) => {}
            }
            self.reload();
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {
    None
}

#[cfg(unix)]
async fn next_hangup(hangups: &mut Hangups) -> Option<()> {
    match hangups {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) -> Option<()> {
    std::future::pending().await
}

/// Keeps `names` equal to the hosts of the current members' peer addresses.
pub(crate) async fn watch_members(raft: Raft, names: MemberNames) {
    let mut metrics = raft.metrics();
    loop {
        let hosts: BTreeSet<String> = metrics
            .borrow_and_update()
            .membership_config
            .membership()
            .nodes()
            .map(|(_, node)| host_of(&node.peer_addr).to_owned())
            .collect();
        names.set(hosts);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
