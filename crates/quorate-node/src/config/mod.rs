//! Node configuration: one TOML file per node, parsed into [`RawConfig`], validated into [`NodeConfig`].
//!
//! ```toml
//! id = 1
//! data_dir = "data/node1"
//! bootstrap = true                # initialise the cluster from `peers` if there is no state yet: only the
//!                                 # initial member with the lowest id may (an error elsewhere)
//! policies = "deploy/policies.toml"  # installed by the first leader; the built-in sample if omitted
//!
//! [public]                        # API servers and Envoy: RateLimiter, RLS, health, Admin/Status
//! listen = "0.0.0.0:7101"
//! advertise = "quorate-1.internal:7101"   # how clients reach it (default: listen)
//! tls = { cert = "certs/node1.pem", key = "certs/node1.key" }  # + ca = "...": require client certificates
//!
//! [peer]                          # other nodes only: Raft and forwarded calls, mutual TLS
//! listen = "0.0.0.0:7201"
//! advertise = "quorate-1.internal:7201"
//! tls = { cert = "certs/node1.pem", key = "certs/node1.key", ca = "certs/ca.pem" }
//!
//! [admin]                         # the Admin service (default 127.0.0.1:7301)
//! listen = "127.0.0.1:7301"
//!
//! [[tokens]]                      # bearer tokens, as salted hashes (`quorate token new --role check`)
//! name = "api-servers"
//! roles = ["check", "report_load"] # check, report_load, admin
//! hash = "sha256:..."
//!
//! [[peers]]                       # the other initial members
//! id = 2
//! peer = "quorate-2.internal:7201"   # its peer listener
//! public = "quorate-2.internal:7101" # its public listener
//!
//! [raft]                          # all optional
//! heartbeat = "50ms"
//! election_timeout_min = "150ms"   # each node draws from its own slice of the range, by id
//! election_timeout_max = "300ms"
//! snapshot_every = 20000
//!
//! [limits]                        # all optional
//! max_keys = 1000000
//! check_deadline = "2s"
//! max_batch_items = 1000          # most checks per CheckBatch call
//! max_stream_checks = 4096        # most checks in flight per CheckStream
//!
//! [load]
//! sample_system = true            # report this node's CPU and memory as cluster load signals
//! [metrics]                       # HTTP: /metrics (Prometheus), /healthz, /readyz; no listener without it
//! listen = "127.0.0.1:7401"       # the default; plain HTTP, no authentication: loopback or a monitoring network
//!
//! [envoy]                         # Envoy's rate limit service (docs/envoy.md); all optional
//! response_headers = false        # true: answer with X-RateLimit-Limit/-Remaining/-Reset for Envoy to add
//! ```
//!
//! Unknown keys are errors, and every error names the field it is about. Durations are at most a day
//! ([`MAX_DURATION`]). A node refuses plaintext on a
//! non-loopback address and an admin listener nobody can authenticate to, unless the listener says
//! `insecure = true` ([`listeners`]).

mod address;
pub mod listeners;
mod tokens;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quorate_core::policy::{PolicySet, SAMPLE_POLICIES_TOML};
use quorate_core::{DEFAULT_MAX_KEYS, TableConfig};
use serde::Deserialize;

pub(crate) use address::{host_of, host_port};
pub use listeners::{DEFAULT_ADMIN_LISTEN, ListenerConfig, RawListener, RawTls};
pub use tokens::RawToken;

use crate::auth::{ListenerKind, TokenRule};
use crate::error::ConfigError;
use crate::raft::{Node, NodeId};
use crate::transport::Transport;

/// Default heartbeat: also the AppendEntries RPC timeout in openraft 0.9, still enough for large batches on a LAN.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(50);
/// Default election timeout range. A killed leader stopped strict decisions for 2.97 s (p50) and 4.61 s (max) over
/// 20 kills with 400-800 ms, 1.82 s and 2.23 s with 250-500 ms and per-node slices, and with this range (and
/// elections held for a moment after a restart) 1.0 s and 1.42 s over 60 kills (`tests/tests/failover.rs`). The
/// cost: a follower that hears nothing from a living leader for about 340-560 ms starts an election, which on
/// nodes starved of CPU (three nodes and a load generator on two cores, writing a million new keys in 30 s)
/// happened once per fill; raise both bounds where nodes share overloaded cores.
pub const DEFAULT_ELECTION_MIN: Duration = Duration::from_millis(150);
/// Upper end of the default election timeout range.
pub const DEFAULT_ELECTION_MAX: Duration = Duration::from_millis(300);
/// Default number of log entries between snapshots: batched entries are few and large.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 20_000;
/// Default time a check may wait for a leader and a commit before the caller gets UNAVAILABLE.
pub const DEFAULT_CHECK_DEADLINE: Duration = Duration::from_secs(2);
/// Default most checks sealed into one log entry.
pub const DEFAULT_MAX_BATCH: usize = 1024;
/// Default most batches replicating at once. More overlaps round trips but makes batches smaller; on 2 cores
/// one is fastest (c64: 10.7k checks/s at 1, 9.4k at 4).
pub const DEFAULT_MAX_INFLIGHT: usize = 1;
/// Default most checks one `CheckBatch` call may carry: a batch of this size still fits one log entry.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 1_000;
/// Default most checks one `CheckStream` may have in flight before the node stops reading it (back-pressure).
pub const DEFAULT_MAX_STREAM_CHECKS: usize = 4_096;
/// Default sled page cache: enough for the log tail; limiter state lives in memory anyway.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;
/// Smallest sled page cache accepted (sled cannot run without one).
pub const MIN_CACHE_BYTES: u64 = 1 << 20;
/// Most batches the leader may replicate at once.
pub const MAX_INFLIGHT: usize = 64;
/// The longest duration a config may give (Raft timings, the check deadline): far beyond any sensible value, and
/// short enough that the node's arithmetic on it (ten heartbeats, a deadline from now) cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// The config file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This node's id: a positive integer, unique in the cluster.
    pub id: NodeId,
    /// Where sled keeps the log, the vote and snapshots.
    pub data_dir: PathBuf,
    /// Whether this node initialises a fresh cluster.
    #[serde(default)]
    pub bootstrap: bool,
    /// Path of the policies file the first leader installs; the built-in sample if omitted.
    pub policies: Option<PathBuf>,
    /// The public listener.
    pub public: Option<RawListener>,
    /// The peer listener.
    pub peer: Option<RawListener>,
    /// The admin listener.
    pub admin: Option<RawListener>,
    /// API tokens.
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    /// The other initial members.
    #[serde(default)]
    pub peers: Vec<RawPeer>,
    /// Raft timings.
    #[serde(default)]
    pub raft: RawRaft,
    /// Limiter settings.
    #[serde(default)]
    pub limits: RawLimits,
    /// Load sampling.
    #[serde(default)]
    pub load: RawLoad,
    /// Envoy rate limit service settings.
    #[serde(default)]
    pub envoy: RawEnvoy,
    /// The metrics listener (`/metrics`, `/healthz`, `/readyz`); none without this table.
    pub metrics: Option<RawMetrics>,
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Where the HTTP listener binds (default [`DEFAULT_METRICS_LISTEN`]).
    pub listen: Option<String>,
}

/// Where the metrics listener binds when `[metrics]` gives no address: loopback, like the admin listener.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:7401";

/// The `[load]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    /// Whether this node samples its own CPU and memory into the cluster load (default true).
    pub sample_system: Option<bool>,
}

/// One `[[peers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    /// The peer's id.
    pub id: NodeId,
    /// `host:port` of its peer listener.
    pub peer: String,
    /// `host:port` of its public listener (clients are routed there).
    pub public: String,
}

/// The `[raft]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaft {
    /// Leader heartbeat interval (and AppendEntries timeout).
    pub heartbeat: Option<String>,
    /// Lower bound of the randomised election timeout.
    pub election_timeout_min: Option<String>,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max: Option<String>,
    /// Log entries between snapshots.
    pub snapshot_every: Option<u64>,
}

/// The `[limits]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most keys tracked at once.
    pub max_keys: Option<usize>,
    /// How long a check may wait for a leader and a commit.
    pub check_deadline: Option<String>,
    /// Most checks per log entry.
    pub max_batch: Option<usize>,
    /// Most batches replicating at once.
    pub max_inflight: Option<usize>,
    /// sled page cache in bytes.
    pub cache_bytes: Option<u64>,
    /// Most checks per `CheckBatch` call.
    pub max_batch_items: Option<usize>,
    /// Most checks in flight per `CheckStream`.
    pub max_stream_checks: Option<usize>,
}

/// The `[envoy]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvoy {
    /// Whether ShouldRateLimit answers carry `response_headers_to_add` with the X-RateLimit-* headers.
    pub response_headers: Option<bool>,
}

/// How a node serves Envoy's rate limit service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnvoyConfig {
    /// Whether ShouldRateLimit answers ask Envoy to add `x-ratelimit-limit`, `x-ratelimit-remaining` and
    /// `x-ratelimit-reset` to the downstream response. Off by default: Envoy's own
    /// `enable_x_ratelimit_headers` computes them from the statuses too.
    pub response_headers: bool,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's id.
    pub id: NodeId,
    /// The public listener: API servers and Envoy.
    pub public: ListenerConfig,
    /// The peer listener: other nodes.
    pub peer: ListenerConfig,
    /// The admin listener: operators.
    pub admin: ListenerConfig,
    /// The API tokens accepted on the public and admin listeners.
    pub tokens: Vec<TokenRule>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Whether this node initialises a fresh cluster.
    pub bootstrap: bool,
    /// Initial members other than this node.
    pub peers: BTreeMap<NodeId, Node>,
    /// The policy set's TOML text, installed by the first leader (already validated).
    pub policies_toml: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Election timeout range.
    pub election_timeout: (Duration, Duration),
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Limiter table settings.
    pub table: TableConfig,
    /// Check deadline.
    pub check_deadline: Duration,
    /// Most checks per log entry.
    pub max_batch: usize,
    /// Most batches replicating at once.
    pub max_inflight: usize,
    /// sled cache in bytes.
    pub cache_bytes: u64,
    /// Most checks per `CheckBatch` call.
    pub max_batch_items: usize,
    /// Most checks in flight per `CheckStream`.
    pub max_stream_checks: usize,
    /// Whether this node samples its own CPU and memory into the cluster load.
    pub sample_system: bool,
    /// The network: real TCP, or turmoil's in simulation (never from the config file).
    pub transport: Transport,
    /// How fast this node's monotonic clock runs against real time, in ppm (positive: slow, so its leases last
    /// longer in real time). Always 0 in production; simulations set it to prove the lease drift margin (never
    /// from the config file).
    pub clock_drift_ppm: i64,
    /// Envoy rate limit service settings.
    pub envoy: EnvoyConfig,
    /// Where the metrics listener binds, if the node has one.
    pub metrics: Option<SocketAddr>,
}

fn error(field: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(field, message)
}

fn duration(field: &str, value: Option<&String>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => {
            let parsed = humantime::parse_duration(text).map_err(|e| error(field, format!("{text:?}: {e}")))?;
            if parsed.is_zero() {
                return Err(error(field, "must be longer than zero"));
            }
            if parsed > MAX_DURATION {
                return Err(error(field, format!("{text:?} is longer than the maximum of 1 day")));
            }
            Ok(parsed)
        }
    }
}

/// Names the line of byte `offset` in `text` for an error message: its number and its text, which shows the
/// key (toml's own message names the problem, not where it is).
fn line_at(text: &str, offset: usize) -> String {
    let number = text.get(..offset).map_or(0, |before| before.matches('\n').count()) + 1;
    let line = text.lines().nth(number - 1).unwrap_or_default().trim();
    format!("line {number} `{line}`")
}

impl NodeConfig {
    /// Reads and validates the config file at `path`; a relative `policies` path is taken from the file's folder.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file and the bad field.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("file", format!("cannot read it: {e}")).in_file(path))?;
        NodeConfig::parse(&text, path.parent().unwrap_or_else(|| Path::new("."))).map_err(|e| e.in_file(path))
    }

    /// Parses and validates config text; relative paths in it are resolved against `base`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the bad field (a syntax error or unknown key is reported with its line).
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or_else(|| "toml".to_owned(), |span| line_at(text, span.start));
            ConfigError::new(at, e.message().trim())
        })?;
        NodeConfig::from_raw(raw, base)
    }

    /// Validates a parsed config; relative paths in it are resolved against `base`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the bad field.
    pub fn from_raw(raw: RawConfig, base: &Path) -> Result<Self, ConfigError> {
        if raw.id == 0 {
            return Err(error("id", "must be a positive integer"));
        }
        let tokens = tokens::tokens(&raw.tokens)?;
        let public = listeners::listener(ListenerKind::Public, raw.public.as_ref(), base, &tokens)?;
        let peer = listeners::listener(ListenerKind::Peer, raw.peer.as_ref(), base, &tokens)?;
        let admin = listeners::listener(ListenerKind::Admin, raw.admin.as_ref(), base, &tokens)?;
        let listeners = [("public", &public), ("peer", &peer), ("admin", &admin)];
        for (i, (name, listener)) in listeners.iter().enumerate() {
            for (earlier, other) in &listeners[..i] {
                let (a, b) = (listener.listen, other.listen);
                let same_ip = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
                if a.port() == b.port() && same_ip {
                    return Err(error(
                        &format!("{name}.listen"),
                        format!("{a} overlaps {earlier}.listen ({b}): each listener needs its own port"),
                    ));
                }
            }
        }
        let mut peers = BTreeMap::new();
        for (i, entry) in raw.peers.iter().enumerate() {
            if entry.id == 0 || entry.id == raw.id {
                return Err(error(&format!("peers[{i}].id"), format!("{} is zero or this node's own id", entry.id)));
            }
            host_port(&format!("peers[{i}].peer"), &entry.peer)?;
            host_port(&format!("peers[{i}].public"), &entry.public)?;
            let node = Node { peer_addr: entry.peer.clone(), public_addr: entry.public.clone() };
            if peers.insert(entry.id, node).is_some() {
                return Err(error(&format!("peers[{i}].id"), format!("{} appears twice", entry.id)));
            }
        }
        if raw.bootstrap
            && let Some(lowest) = peers.keys().next().filter(|&&lowest| lowest < raw.id)
        {
            return Err(error(
                "bootstrap",
                format!(
                    "only the initial member with the lowest id ({lowest}) may bootstrap, so that two nodes never \
                     start two clusters; set bootstrap = false here"
                ),
            ));
        }
        let policies_toml = match &raw.policies {
            None => SAMPLE_POLICIES_TOML.to_owned(),
            Some(path) => {
                let path = base.join(path);
                std::fs::read_to_string(&path).map_err(|e| error("policies", format!("{}: {e}", path.display())))?
            }
        };
        PolicySet::from_toml(&policies_toml).map_err(|e| error("policies", e))?;
        let heartbeat = duration("raft.heartbeat", raw.raft.heartbeat.as_ref(), DEFAULT_HEARTBEAT)?;
        let min = duration("raft.election_timeout_min", raw.raft.election_timeout_min.as_ref(), DEFAULT_ELECTION_MIN)?;
        let max = duration("raft.election_timeout_max", raw.raft.election_timeout_max.as_ref(), DEFAULT_ELECTION_MAX)?;
        if min <= heartbeat * 2 {
            return Err(error("raft.election_timeout_min", "must be more than twice the heartbeat"));
        }
        if max <= min {
            return Err(error("raft.election_timeout_max", "must be above election_timeout_min"));
        }
        let max_keys = raw.limits.max_keys.unwrap_or(DEFAULT_MAX_KEYS);
        if max_keys == 0 {
            return Err(error("limits.max_keys", "must be at least 1"));
        }
        let max_batch = raw.limits.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
        if max_batch == 0 {
            return Err(error("limits.max_batch", "must be at least 1"));
        }
        let max_batch_items = raw.limits.max_batch_items.unwrap_or(DEFAULT_MAX_BATCH_ITEMS);
        if max_batch_items == 0 {
            return Err(error("limits.max_batch_items", "must be at least 1"));
        }
        let max_stream_checks = raw.limits.max_stream_checks.unwrap_or(DEFAULT_MAX_STREAM_CHECKS);
        if max_stream_checks < max_batch_items {
            return Err(error(
                "limits.max_stream_checks",
                format!("must be at least limits.max_batch_items ({max_batch_items}): one message must fit"),
            ));
        }
        let snapshot_every = raw.raft.snapshot_every.unwrap_or(DEFAULT_SNAPSHOT_EVERY);
        if snapshot_every == 0 {
            return Err(error("raft.snapshot_every", "must be at least 1"));
        }
        let max_inflight = raw.limits.max_inflight.unwrap_or(DEFAULT_MAX_INFLIGHT);
        if !(1..=MAX_INFLIGHT).contains(&max_inflight) {
            return Err(error("limits.max_inflight", format!("{max_inflight} is outside 1..={MAX_INFLIGHT}")));
        }
        let metrics = match &raw.metrics {
            None => None,
            Some(metrics) => {
                let text = metrics.listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN);
                let addr: SocketAddr =
                    text.parse().map_err(|e| error("metrics.listen", format!("{text:?} is not ip:port: {e}")))?;
                Some(addr)
            }
        };
        let cache_bytes = raw.limits.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES);
        if cache_bytes < MIN_CACHE_BYTES {
            return Err(error(
                "limits.cache_bytes",
                format!("{cache_bytes} is below the minimum of {MIN_CACHE_BYTES}"),
            ));
        }
        Ok(NodeConfig {
            id: raw.id,
            public,
            peer,
            admin,
            tokens,
            data_dir: base.join(raw.data_dir),
            bootstrap: raw.bootstrap,
            peers,
            policies_toml,
            heartbeat,
            election_timeout: (min, max),
            snapshot_every,
            table: TableConfig { max_keys, ..TableConfig::default() },
            check_deadline: duration(
                "limits.check_deadline",
                raw.limits.check_deadline.as_ref(),
                DEFAULT_CHECK_DEADLINE,
            )?,
            max_batch,
            max_inflight,
            cache_bytes,
            max_batch_items,
            max_stream_checks,
            sample_system: raw.load.sample_system.unwrap_or(true),
            transport: Transport::Tcp,
            clock_drift_ppm: 0,
            envoy: EnvoyConfig { response_headers: raw.envoy.response_headers.unwrap_or(false) },
            metrics,
        })
    }

    /// A config for a node of a local cluster (used by `quorate dev` and tests): plaintext listeners at `addrs`
    /// (loopback), no tokens, the sample policies, defaults.
    pub fn local(id: NodeId, addrs: LocalAddrs, data_dir: PathBuf, peers: BTreeMap<NodeId, Node>) -> Self {
        NodeConfig {
            id,
            public: ListenerConfig::plaintext(addrs.public),
            peer: ListenerConfig::plaintext(addrs.peer),
            admin: ListenerConfig::plaintext(addrs.admin),
            tokens: Vec::new(),
            data_dir,
            bootstrap: false,
            peers,
            policies_toml: SAMPLE_POLICIES_TOML.to_owned(),
            heartbeat: DEFAULT_HEARTBEAT,
            election_timeout: (DEFAULT_ELECTION_MIN, DEFAULT_ELECTION_MAX),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            table: TableConfig::default(),
            check_deadline: DEFAULT_CHECK_DEADLINE,
            max_batch: DEFAULT_MAX_BATCH,
            max_inflight: DEFAULT_MAX_INFLIGHT,
            cache_bytes: DEFAULT_CACHE_BYTES,
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
            max_stream_checks: DEFAULT_MAX_STREAM_CHECKS,
            sample_system: true,
            transport: Transport::Tcp,
            clock_drift_ppm: 0,
            envoy: EnvoyConfig::default(),
            metrics: None,
        }
    }
}

/// Where the three listeners of a [`NodeConfig::local`] node bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAddrs {
    /// The public listener.
    pub public: SocketAddr,
    /// The peer listener.
    pub peer: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
}

impl LocalAddrs {
    /// Ports `public`, `public + 100` and `public + 200` on 127.0.0.1: `quorate dev`'s scheme.
    pub fn loopback(public: u16) -> Self {
        let at = |port: u16| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port));
        LocalAddrs { public: at(public), peer: at(public.saturating_add(100)), admin: at(public.saturating_add(200)) }
    }

    /// Port 0 everywhere: the OS picks (single-node tests).
    pub fn any_port() -> Self {
        LocalAddrs::loopback(0).with_ports(0, 0, 0)
    }

    fn with_ports(mut self, public: u16, peer: u16, admin: u16) -> Self {
        self.public.set_port(public);
        self.peer.set_port(peer);
        self.admin.set_port(admin);
        self
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, TokenHash};

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(text, Path::new("/tmp"))
    }

    /// Top-level keys of a minimal config: `config()` puts more before the listener tables.
    const TOP: &str = "id = 1\ndata_dir = \"d\"\n";
    const LISTENERS: &str = "[public]\nlisten = \"127.0.0.1:7101\"\n[peer]\nlisten = \"127.0.0.1:7201\"\n\
                             [admin]\ninsecure = true\n";

    /// A config with `top` added to the top-level keys and `tables` after the listeners.
    fn config(top: &str, tables: &str) -> String {
        format!("{TOP}{top}\n{LISTENERS}{tables}")
    }

    fn minimal() -> String {
        config("", "")
    }

    /// Found by the config fuzz harness (`fuzz_node_config_values`): a heartbeat above `u64::MAX / 2` seconds
    /// overflowed `heartbeat * 2` (a panic while parsing), and longer durations overflowed at start
    /// (`heartbeat * 10`). Durations are now at most a day.
    #[test]
    fn fuzz_regression_huge_durations_are_config_errors() {
        let text = config(
            "",
            "[raft]\nheartbeat = \"9223372036854775808s\"\nelection_timeout_min = \"1ns\"\n\
             election_timeout_max = \"1ns\"",
        );
        assert_eq!(parse(&text).unwrap_err().field, "raft.heartbeat");
        for field in ["heartbeat", "election_timeout_min", "election_timeout_max"] {
            let text = config("", &format!("[raft]\n{field} = \"25h\""));
            assert_eq!(parse(&text).unwrap_err().field, format!("raft.{field}"));
        }
        let text = config("", "[limits]\ncheck_deadline = \"2d\"");
        assert_eq!(parse(&text).unwrap_err().field, "limits.check_deadline");
        let most = "[raft]\nheartbeat = \"1h\"\nelection_timeout_min = \"3h\"\nelection_timeout_max = \"1d\"";
        assert!(parse(&config("", most)).is_ok());
    }

    #[test]
    fn minimal_config_takes_the_defaults_and_the_sample_policies() {
        let config = parse(&minimal()).unwrap();
        assert_eq!(config.heartbeat, DEFAULT_HEARTBEAT);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(config.admin.listen.to_string(), DEFAULT_ADMIN_LISTEN);
        assert!(config.tokens.is_empty());
        assert!(PolicySet::from_toml(&config.policies_toml).is_ok());
    }

    #[test]
    fn envoy_response_headers_are_off_unless_configured() {
        assert!(!parse(&minimal()).unwrap().envoy.response_headers);
        let on = parse(&config("", "[envoy]\nresponse_headers = true")).unwrap();
        assert!(on.envoy.response_headers);
    }

    #[test]
    fn addresses_may_be_names_ipv4_or_bracketed_ipv6() {
        for addr in ["node2.internal:7101", "10.0.0.2:7101", "[::1]:7101", "[2001:db8::2]:443", "localhost:1"] {
            let text = config("", &format!("[[peers]]\nid = 2\npeer = \"{addr}\"\npublic = \"{addr}\"")).replace(
                "listen = \"127.0.0.1:7101\"",
                &format!("listen = \"127.0.0.1:7101\"\nadvertise = \"{addr}\""),
            );
            let config = parse(&text).unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(config.public.advertise.as_deref(), Some(addr));
            assert_eq!(config.peers[&2].peer_addr, addr);
        }
    }

    #[test]
    fn tokens_are_read_as_names_roles_and_hashes() {
        let hash = TokenHash::new("qrt_example").unwrap();
        let text =
            config("", &format!("[[tokens]]\nname = \"ops\"\nroles = [\"admin\", \"check\"]\nhash = \"{hash}\"\n"))
                .replace("[admin]\ninsecure = true\n", "");
        let config = parse(&text).unwrap();
        assert_eq!(config.tokens.len(), 1);
        assert_eq!(config.tokens[0].roles.iter().copied().collect::<Vec<_>>(), [Role::Check, Role::Admin]);
        assert!(config.tokens[0].hash.matches("qrt_example"));
    }

    #[test]
    fn deploy_samples_are_valid() {
        // The samples with the certificates `quorate certs init` would write beside them.
        let dir = tempfile::tempdir().unwrap();
        let deploy = PathBuf::from(format!("{}/../../deploy", env!("CARGO_MANIFEST_DIR")));
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        let ca = crate::tls::test_pki::TestCa::new("quorate test CA");
        ca.write(&dir.path().join("certs"));
        for i in 1..=3 {
            let host = format!("quorate-{i}.internal");
            ca.issue(&dir.path().join("certs"), &format!("node{i}"), &[&host, "localhost"]);
            std::fs::copy(deploy.join(format!("node{i}.toml")), dir.path().join(format!("node{i}.toml"))).unwrap();
        }
        std::fs::copy(deploy.join("policies.toml"), dir.path().join("policies.toml")).unwrap();
        for i in 1..=3 {
            let path = dir.path().join(format!("node{i}.toml"));
            let config = NodeConfig::load(&path).unwrap();
            assert_eq!(config.id, i);
            assert_eq!(config.peers.len(), 2);
            assert_eq!(config.bootstrap, i == 1);
            assert!(config.peer.tls.as_ref().is_some_and(|tls| tls.ca.is_some()), "peers use mutual TLS");
            assert!(config.public.tls.is_some());
        }
    }

    #[test]
    fn errors_name_the_field() {
        let hash = TokenHash::new("qrt_x").unwrap();
        let open_admin = |text: String| text.replace("[admin]\ninsecure = true\n", "");
        let cases = [
            (config("", "[raft]\nheartbeat = \"soon\""), "raft.heartbeat"),
            (
                config("", "[raft]\nheartbeat = \"100ms\"\nelection_timeout_min = \"150ms\""),
                "raft.election_timeout_min",
            ),
            (config("", "[[peers]]\nid = 1\npeer = \"x:1\"\npublic = \"x:2\""), "peers[0].id"),
            (minimal().replace("127.0.0.1:7101", "localhost"), "public.listen"),
            (minimal().replace("id = 1", "id = 0"), "id"),
            (config("", "[limits]\nmax_keys = 0"), "limits.max_keys"),
            (config("colour = \"blue\"", ""), "colour"),
            (config("policies = \"/nonexistent/p.toml\"", ""), "policies"),
            (config("", "[envoy]\nheaders = true"), "headers"),
            (config("", "[envoy]\nresponse_headers = \"yes\""), "response_headers"),
            (config("", "[limits]\ncache_bytes = 0"), "limits.cache_bytes"),
            (config("", "[limits]\nmax_inflight = 0"), "limits.max_inflight"),
            (config("", "[limits]\nmax_inflight = 65"), "limits.max_inflight"),
            (config("", "[raft]\nsnapshot_every = 0"), "raft.snapshot_every"),
            (config("listen = \"127.0.0.1:7101\"", ""), "listen"),
            (minimal().replace("[peer]\nlisten = \"127.0.0.1:7201\"\n", ""), "peer"),
            (minimal().replace("7201", "7101"), "peer.listen"),
            (
                minimal().replace(
                    "listen = \"127.0.0.1:7101\"",
                    "listen = \"127.0.0.1:7101\"\nadvertise = \"no-port-here\"",
                ),
                "public.advertise",
            ),
            (
                minimal().replace("listen = \"127.0.0.1:7101\"", "listen = \"127.0.0.1:7101\"\nadvertise = \"host:0\""),
                "public.advertise",
            ),
            (
                minimal().replace(
                    "listen = \"127.0.0.1:7101\"",
                    "listen = \"127.0.0.1:7101\"\nadvertise = \"bad_host:7101\"",
                ),
                "public.advertise",
            ),
            (
                minimal()
                    .replace("listen = \"127.0.0.1:7101\"", "listen = \"127.0.0.1:7101\"\nadvertise = \"[::zz]:7101\""),
                "public.advertise",
            ),
            (config("", "[[peers]]\nid = 2\npeer = \"not an address\"\npublic = \"n2:7101\""), "peers[0].peer"),
            (config("", "[[peers]]\nid = 2\npeer = \"n2:7201\"\npublic = \"\""), "peers[0].public"),
            (config("", "[[peers]]\nid = 2\npeer = \"node2:99999\"\npublic = \"n2:7101\""), "peers[0].peer"),
            (config("", "[[peers]]\nid = 2\naddr = \"n2:7101\""), "addr"),
            // Three nodes all with bootstrap = true: the two without the lowest id refuse to start.
            (
                config("bootstrap = true", "[[peers]]\nid = 1\npeer = \"n1:7201\"\npublic = \"n1:7101\"")
                    .replace("id = 1\ndata_dir", "id = 2\ndata_dir"),
                "bootstrap",
            ),
            // Safe defaults: plaintext off loopback, an admin listener nobody can authenticate to.
            (minimal().replace("127.0.0.1:7101", "0.0.0.0:7101"), "public.advertise"),
            (minimal().replace("127.0.0.1:7101\"", "0.0.0.0:7101\"\nadvertise = \"n1:7101\""), "public"),
            (minimal().replace("127.0.0.1:7201\"", "10.0.0.1:7201\""), "peer"),
            (open_admin(minimal()), "admin"),
            (
                open_admin(config("", &format!("[[tokens]]\nname = \"api\"\nroles = [\"check\"]\nhash = \"{hash}\""))),
                "admin",
            ),
            (
                minimal().replace(
                    "listen = \"127.0.0.1:7201\"",
                    "listen = \"127.0.0.1:7201\"\ntls = { cert = \"c.pem\", key = \"k.pem\" }",
                ),
                "peer.tls.cert",
            ),
            (
                minimal().replace(
                    "listen = \"127.0.0.1:7101\"",
                    "listen = \"127.0.0.1:7101\"\ntls = { cert = \"/nonexistent.pem\", key = \"k.pem\" }",
                ),
                "public.tls.cert",
            ),
            (config("", "[[tokens]]\nname = \"api\"\nroles = [\"root\"]\nhash = \"x\""), "tokens[0].roles"),
            (
                config("", "[[tokens]]\nname = \"api\"\nroles = [\"check\"]\nhash = \"plaintext-token\""),
                "tokens[0].hash",
            ),
            (config("", "[[tokens]]\nname = \"\"\nroles = [\"check\"]\nhash = \"x\""), "tokens[0].name"),
            (
                config(
                    "",
                    &format!(
                        "[[tokens]]\nname = \"a\"\nroles = [\"check\"]\nhash = \"{hash}\"\n[[tokens]]\nname = \"a\"\nroles = [\"check\"]\nhash = \"{hash}\""
                    ),
                ),
                "tokens[1].name",
            ),
        ];
        for (text, field) in cases {
            let message = match parse(&text) {
                Ok(_) => panic!("{field}: accepted\n{text}"),
                Err(e) => e.to_string(),
            };
            assert!(message.contains(field), "{field}: {message}");
        }
    }
}
