//! [`ClientBuilder`]: endpoints, timeouts, retry and [`FailureMode`] settings, validated into [`Settings`].
//!
//! Defaults are named constants whose docs say why; `build` checks every value once, so the client never meets a
//! zero timeout or an empty endpoint list at call time.

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::client::Client;
use crate::endpoint;
use crate::error::ClientError;
use crate::fallback::LocalLimit;
use crate::security::{BearerToken, Credentials, Tls};

/// Default time one call to one node may take. It is above a node's default check deadline (2 s), so that a
/// node which cannot reach a quorum answers `UNAVAILABLE` (safe to retry elsewhere) before the client gives up.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(2_500);

/// Default time a whole check may take, retries included: one slow call plus a failover (an election takes at
/// about 2 s with the default Raft timeouts: `tests/tests/failover.rs`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Default TCP connect timeout: a refused connection fails at once, this bounds connects to a host that is gone.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Default age after which a cached leader is re-checked in the background (leadership can move without any
/// call failing, e.g. after a partition heals; a stale leader only costs a forwarding hop).
pub const DEFAULT_LEADER_REFRESH: Duration = Duration::from_secs(30);

/// What a check returns when the cluster cannot be reached within the deadline.
///
/// Applies to [`Client::check`] and [`Client::peek`] when they would fail with an error for which
/// [`ClientError::is_unreachable`] is true. Invalid requests and a full key table are returned as errors in every
/// mode, and [`Client::refund`] always returns its error (the client cannot know where a charge went).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Fail closed: the check returns the error (the middleware answers 503). Nothing is ever over-admitted.
    #[default]
    Closed,
    /// Fail open: the request is allowed without being counted; the decision has [`Source::FailOpen`] and
    /// `degraded = true`. Admission is unbounded while the cluster is unreachable.
    ///
    /// [`Source::FailOpen`]: crate::Source::FailOpen
    Open,
    /// Decide with a token bucket per key held in this client ([`Source::Fallback`], `degraded = true`). Each
    /// client process admits at most the local limit per key, so N processes admit at most N times it.
    ///
    /// [`Source::Fallback`]: crate::Source::Fallback
    Local(LocalLimit),
}

/// Validated client settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) urls: Vec<String>,
    pub(crate) failure_mode: FailureMode,
    pub(crate) call_timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry_timed_out_checks: bool,
    pub(crate) discover_leader: bool,
    pub(crate) leader_refresh: Duration,
    pub(crate) connector: Option<Connector>,
    pub(crate) coalesce: Coalescing,
    pub(crate) leases: bool,
    pub(crate) credentials: Credentials,
}

/// How concurrent checks of one client are grouped into `CheckBatch` calls (see [`ClientBuilder::coalesce`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coalescing {
    /// Whether concurrent checks are grouped at all.
    pub(crate) enabled: bool,
    /// Most checks in one batch call.
    pub(crate) max_batch: usize,
    /// Most batch calls in flight at once.
    pub(crate) max_inflight: usize,
}

/// Default [`ClientBuilder::coalesce_max_batch`]: well under a node's default `max_batch_items` (1,000).
pub const DEFAULT_COALESCE_MAX_BATCH: usize = 256;

/// Default [`ClientBuilder::coalesce_max_inflight`]: one batch committing while the next one queues at the leader.
pub const DEFAULT_COALESCE_MAX_INFLIGHT: usize = 2;

/// Makes a channel from an endpoint; see [`ClientBuilder::connector`].
#[derive(Clone)]
pub(crate) struct Connector(pub(crate) Arc<dyn Fn(Endpoint) -> Channel + Send + Sync>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector(..)")
    }
}

/// Builder of a [`Client`]: endpoints first, then any setting whose default does not fit.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use quorate_client::{Client, FailureMode, LocalLimit};
///
/// let client = Client::builder(["127.0.0.1:7301", "http://127.0.0.1:7302"])
///     .failure_mode(FailureMode::Local(LocalLimit::new(100, Duration::from_secs(60))))
///     .call_timeout(Duration::from_millis(500))
///     .deadline(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(client.endpoints(), ["http://127.0.0.1:7301", "http://127.0.0.1:7302"]);
/// # Ok::<(), quorate_client::ClientError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    settings: Settings,
    /// A bad token or TLS file given to a setter, reported by `build` (setters do not return errors).
    deferred_error: Option<ClientError>,
}

impl ClientBuilder {
    pub(crate) fn new<I, S>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            settings: Settings {
                urls: Vec::new(),
                failure_mode: FailureMode::Closed,
                call_timeout: DEFAULT_CALL_TIMEOUT,
                deadline: DEFAULT_DEADLINE,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                retry_timed_out_checks: false,
                discover_leader: true,
                leader_refresh: DEFAULT_LEADER_REFRESH,
                connector: None,
                credentials: Credentials::none(),
                coalesce: Coalescing {
                    enabled: true,
                    max_batch: DEFAULT_COALESCE_MAX_BATCH,
                    max_inflight: DEFAULT_COALESCE_MAX_INFLIGHT,
                },
                leases: false,
            },
            deferred_error: None,
        }
    }

    /// Sets what checks return while the cluster is unreachable (default [`FailureMode::Closed`]).
    pub fn failure_mode(mut self, mode: FailureMode) -> ClientBuilder {
        self.settings.failure_mode = mode;
        self
    }

    /// Sets the longest one call to one node may take (default [`DEFAULT_CALL_TIMEOUT`]); an attempt never
    /// outlives the overall [deadline](ClientBuilder::deadline) either.
    pub fn call_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.settings.call_timeout = timeout;
        self
    }

    /// Sets the longest a whole call may take, retries and leader discovery included (default
    /// [`DEFAULT_DEADLINE`]). Each attempt gets the smaller of the call timeout and the time left.
    pub fn deadline(mut self, deadline: Duration) -> ClientBuilder {
        self.settings.deadline = deadline;
        self
    }

    /// Sets the TCP connect timeout (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Retries a charging check (not a peek) after its call timed out (default `false`).
    ///
    /// A check that timed out was sent and may still be committed by the cluster: retrying it may charge the
    /// request twice. That is conservative (it can only under-admit, never over-admit), but it costs the caller
    /// quota. By default such a check fails with [`ClientError::Timeout`] (and the [`FailureMode`] decides).
    /// Peeks and status calls are always retried; refunds never are, since refunding twice would over-admit.
    pub fn retry_timed_out_checks(mut self, retry: bool) -> ClientBuilder {
        self.settings.retry_timed_out_checks = retry;
        self
    }

    /// Asks the nodes (`Admin.Status`) which one leads and sends calls there directly, and keeps the members'
    /// addresses as fallbacks beside the configured endpoints (default `true`). Turn it off when the endpoints
    /// are a load balancer or the members' advertised addresses are not reachable from this client: any node
    /// still answers, forwarding to the leader.
    pub fn discover_leader(mut self, discover: bool) -> ClientBuilder {
        self.settings.discover_leader = discover;
        self
    }

    /// Sets how old a cached leader may get before it is re-checked in the background (default
    /// [`DEFAULT_LEADER_REFRESH`]).
    pub fn leader_refresh(mut self, every: Duration) -> ClientBuilder {
        self.settings.leader_refresh = every;
        self
    }

    /// Groups concurrent checks (and peeks) of this client into one `CheckBatch` call per batch (default `true`).
    ///
    /// While `coalesce_max_inflight` batch calls are in flight, further checks queue and go out together in the
    /// next call, like a node's batcher groups them into one log entry: there is no timer, so a lone check is
    /// sent at once, and under load one call carries many checks. Every check keeps its own decision or error.
    /// Nodes older than `CheckBatch` answer UNIMPLEMENTED: turn coalescing off for them.
    pub fn coalesce(mut self, coalesce: bool) -> ClientBuilder {
        self.settings.coalesce.enabled = coalesce;
        self
    }

    /// Sets the most checks one coalesced batch carries (default [`DEFAULT_COALESCE_MAX_BATCH`]); keep it at or
    /// below the nodes' `max_batch_items`.
    pub fn coalesce_max_batch(mut self, max: usize) -> ClientBuilder {
        self.settings.coalesce.max_batch = max;
        self
    }

    /// Sets the most coalesced batch calls in flight at once (default [`DEFAULT_COALESCE_MAX_INFLIGHT`]).
    pub fn coalesce_max_inflight(mut self, max: usize) -> ClientBuilder {
        self.settings.coalesce.max_inflight = max;
        self
    }

    /// Decides checks of hot keys in this process from quota the cluster leases to this client (default
    /// `false`): no network call for them while a lease lasts. See [`crate::leases`] for how leases are asked
    /// for, how long they last, what a leased decision's headers say, and the bound they keep. Only policies with
    /// `lease` enabled are leased; call [`Client::close`](crate::Client::close) before exiting to give unused units
    /// back at once (else they come back as their leases expire, or stay charged if the process dies).
    pub fn leases(mut self, leases: bool) -> ClientBuilder {
        self.settings.leases = leases;
        self
    }

    /// Uses TLS with every node: their certificates must be signed by the given CA, and with an identity the
    /// client presents its own certificate (mutual TLS). Endpoints are then `https://` (a bare `host:port`
    /// becomes one).
    pub fn tls(mut self, tls: Tls) -> ClientBuilder {
        match self.settings.credentials.clone().with_tls(tls) {
            Ok(credentials) => self.settings.credentials = credentials,
            Err(error) => self.deferred_error = Some(error),
        }
        self
    }

    /// Sends `token` (from `quorate token new`) as `authorization: Bearer <token>` on every call. A node with
    /// tokens configured answers `UNAUTHENTICATED` to calls without a known one.
    pub fn token(mut self, token: &str) -> ClientBuilder {
        match BearerToken::new(token) {
            Ok(token) => self.settings.credentials.token = token,
            Err(error) => self.deferred_error = Some(error),
        }
        self
    }

    /// Sets TLS and token at once, e.g. from the command line's options.
    pub fn credentials(mut self, credentials: Credentials) -> ClientBuilder {
        self.settings.credentials = credentials;
        self
    }

    /// Replaces how a channel is made from a node's endpoint (already given its connect timeout); the default is
    /// [`Endpoint::connect_lazy`]. For transports tonic does not dial itself, e.g. a simulated network:
    /// `.connector(|endpoint| endpoint.connect_with_connector_lazy(my_connector.clone()))`. The channel should
    /// connect lazily: it is made inside calls, which must not block on a connection.
    pub fn connector(mut self, connect: impl Fn(Endpoint) -> Channel + Send + Sync + 'static) -> ClientBuilder {
        self.settings.connector = Some(Connector(Arc::new(connect)));
        self
    }

    /// Validates the settings and creates the client. No connection is opened: each endpoint gets a channel on
    /// first use, reused by every later call.
    ///
    /// # Errors
    ///
    /// - [`ClientError::NoEndpoints`] if the endpoint list is empty;
    /// - [`ClientError::InvalidEndpoint`] if an endpoint is not `host:port` or `http://host:port`;
    /// - [`ClientError::InvalidConfig`] if a timeout is zero, the local fallback has a zero limit, period or
    ///   key capacity, the token is not one line of visible ASCII or a TLS file is not PEM.
    pub fn build(self) -> Result<Client, ClientError> {
        if let Some(error) = self.deferred_error {
            return Err(error);
        }
        let mut settings = self.settings;
        settings.urls = endpoint::normalize_all(&self.endpoints, settings.credentials.uses_tls())?;
        for (field, value) in [
            ("call_timeout", settings.call_timeout),
            ("deadline", settings.deadline),
            ("connect_timeout", settings.connect_timeout),
            ("leader_refresh", settings.leader_refresh),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "must be more than zero"));
            }
        }
        if settings.coalesce.max_batch == 0 || settings.coalesce.max_inflight == 0 {
            return Err(invalid("coalesce", "the batch size and the calls in flight must be at least 1"));
        }
        if let FailureMode::Local(local) = settings.failure_mode {
            if local.limit == 0 {
                return Err(invalid("failure_mode", "the local limit must be at least 1"));
            }
            if local.period.is_zero() {
                return Err(invalid("failure_mode", "the local period must be more than zero"));
            }
            if local.max_keys == 0 {
                return Err(invalid("failure_mode", "the local key capacity must be at least 1"));
            }
        }
        Ok(Client::from_settings(settings))
    }
}

fn invalid(field: &'static str, reason: &str) -> ClientError {
    ClientError::InvalidConfig { field, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised_deduplicated_and_split_on_commas() {
        let client = Client::builder(["127.0.0.1:1,http://127.0.0.1:2/", "127.0.0.1:1"]).build().unwrap();
        assert_eq!(client.endpoints(), ["http://127.0.0.1:1", "http://127.0.0.1:2"]);
    }

    #[test]
    fn bad_endpoints_are_rejected_naming_the_endpoint() {
        for bad in ["127.0.0.1", "https://a:1", "a:1/path", "a:99999", "http://"] {
            let error = Client::builder([bad]).build().unwrap_err();
            assert!(matches!(&error, ClientError::InvalidEndpoint { endpoint, .. } if endpoint == bad), "{bad}");
        }
        assert_eq!(Client::builder(Vec::<String>::new()).build().unwrap_err(), ClientError::NoEndpoints);
    }

    #[test]
    fn zero_timeouts_and_an_empty_local_limit_are_rejected() {
        let zero = Client::builder(["a:1"]).call_timeout(Duration::ZERO).build().unwrap_err();
        assert!(matches!(zero, ClientError::InvalidConfig { field: "call_timeout", .. }));
        let local = FailureMode::Local(LocalLimit::new(0, Duration::from_secs(1)));
        let error = Client::builder(["a:1"]).failure_mode(local).build().unwrap_err();
        assert!(matches!(error, ClientError::InvalidConfig { field: "failure_mode", .. }));
    }
}
