//! [`RateLimitLayer`]: the middleware's configuration; [`Layer::layer`] wraps a service in [`RateLimit`].

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use tower::Layer;

use super::identity::IpRange;
use super::service::RateLimit;
use crate::client::Client;
use crate::descriptors::Descriptors;

/// The default header carrying the API key.
pub const DEFAULT_API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");
/// The default header carrying the agent id.
pub const DEFAULT_AGENT_ID_HEADER: HeaderName = HeaderName::from_static("x-agent-id");

type CostFn = dyn Fn(&Parts) -> u64 + Send + Sync;
type DescriptorsFn = dyn Fn(&Parts, Descriptors) -> Descriptors + Send + Sync;
type PeerFn = dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync;

/// What the middleware does with a request that yields no descriptor (no API key, agent id or known address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingIdentity {
    /// Count it under the shared descriptor `ip = unknown`, so all such requests share one limit (the default:
    /// leaving out identification never escapes limiting).
    #[default]
    Shared,
    /// Pass it through unchecked, without rate-limit headers.
    Allow,
}

/// The middleware's settings, shared by every service the layer builds.
#[derive(Clone)]
pub(crate) struct Options {
    pub(crate) api_key_header: Option<HeaderName>,
    pub(crate) bearer: bool,
    pub(crate) agent_id_header: Option<HeaderName>,
    pub(crate) limit_by_ip: bool,
    pub(crate) trusted_proxies: Vec<IpRange>,
    pub(crate) skip_exact: Vec<String>,
    pub(crate) skip_prefix: Vec<String>,
    pub(crate) cost_header: Option<HeaderName>,
    pub(crate) cost_fn: Option<Arc<CostFn>>,
    pub(crate) descriptors_fn: Option<Arc<DescriptorsFn>>,
    pub(crate) peer_fn: Option<Arc<PeerFn>>,
    pub(crate) missing_identity: MissingIdentity,
}

impl Options {
    /// True if `path` is exempt: equal to a skipped path, or under a skipped prefix at a segment boundary.
    pub(crate) fn skips(&self, path: &str) -> bool {
        self.skip_exact.iter().any(|p| p == path)
            || self.skip_prefix.iter().any(|prefix| {
                path.strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/'))
            })
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("api_key_header", &self.api_key_header)
            .field("bearer", &self.bearer)
            .field("agent_id_header", &self.agent_id_header)
            .field("limit_by_ip", &self.limit_by_ip)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("skip_exact", &self.skip_exact)
            .field("skip_prefix", &self.skip_prefix)
            .field("cost_header", &self.cost_header)
            .field("missing_identity", &self.missing_identity)
            .finish_non_exhaustive()
    }
}

/// Layer that applies the [`RateLimit`] middleware, which checks each request with a Quorate [`Client`].
///
/// See the [module docs](super) for what it reads from requests, what it answers, and an example.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    client: Client,
    options: Arc<Options>,
}

impl RateLimitLayer {
    /// Creates the layer: API key from `x-api-key` or `Authorization: Bearer`, agent id from `x-agent-id`, the
    /// peer address from the request extensions, no trusted proxy, no skipped path, cost 1.
    pub fn new(client: Client) -> RateLimitLayer {
        let options = Options {
            api_key_header: Some(DEFAULT_API_KEY_HEADER),
            bearer: true,
            agent_id_header: Some(DEFAULT_AGENT_ID_HEADER),
            limit_by_ip: true,
            trusted_proxies: Vec::new(),
            skip_exact: Vec::new(),
            skip_prefix: Vec::new(),
            cost_header: None,
            cost_fn: None,
            descriptors_fn: None,
            peer_fn: None,
            missing_identity: MissingIdentity::Shared,
        };
        RateLimitLayer { client, options: Arc::new(options) }
    }

    fn with(mut self, change: impl FnOnce(&mut Options)) -> RateLimitLayer {
        change(Arc::make_mut(&mut self.options));
        self
    }

    /// Sets the header carrying the API key (`api_key` descriptor); `None` stops reading one.
    pub fn api_key_header(self, name: Option<HeaderName>) -> RateLimitLayer {
        self.with(|o| o.api_key_header = name)
    }

    /// Reads the API key from `Authorization: Bearer <token>` when the API key header is absent (default on).
    pub fn bearer_token(self, enabled: bool) -> RateLimitLayer {
        self.with(|o| o.bearer = enabled)
    }

    /// Sets the header carrying the agent id (`agent_id` descriptor); `None` stops reading one.
    pub fn agent_id_header(self, name: Option<HeaderName>) -> RateLimitLayer {
        self.with(|o| o.agent_id_header = name)
    }

    /// Adds the client IP as an `ip` descriptor (default on).
    pub fn limit_by_ip(self, enabled: bool) -> RateLimitLayer {
        self.with(|o| o.limit_by_ip = enabled)
    }

    /// Trusts `range` as reverse proxies: when the peer is in it, the client IP is read from `X-Forwarded-For`.
    pub fn trusted_proxy(self, range: impl Into<IpRange>) -> RateLimitLayer {
        let range = range.into();
        self.with(|o| o.trusted_proxies.push(range))
    }

    /// Exempts requests whose path is exactly `path` (e.g. `/health`).
    pub fn skip_path(self, path: impl Into<String>) -> RateLimitLayer {
        let path = path.into();
        self.with(|o| o.skip_exact.push(path))
    }

    /// Exempts requests whose path is `prefix` or below it (`/docs` skips `/docs` and `/docs/x`, not `/docsx`).
    pub fn skip_prefix(self, prefix: impl Into<String>) -> RateLimitLayer {
        let prefix = prefix.into();
        self.with(|o| o.skip_prefix.push(prefix))
    }

    /// Reads each request's cost from a header (a positive integer; absent or invalid means 1).
    pub fn cost_header(self, name: HeaderName) -> RateLimitLayer {
        self.with(|o| o.cost_header = Some(name))
    }

    /// Computes each request's cost (e.g. from the route or an estimate of LLM tokens); takes precedence over
    /// [`RateLimitLayer::cost_header`]. A cost of 0 counts as 1.
    pub fn cost_fn(self, cost: impl Fn(&Parts) -> u64 + Send + Sync + 'static) -> RateLimitLayer {
        let cost: Arc<CostFn> = Arc::new(cost);
        self.with(|o| o.cost_fn = Some(cost))
    }

    /// Adjusts the descriptors read from a request (add a tenant, name a policy for a route, drop one).
    pub fn descriptors_fn(
        self,
        descriptors: impl Fn(&Parts, Descriptors) -> Descriptors + Send + Sync + 'static,
    ) -> RateLimitLayer {
        let descriptors: Arc<DescriptorsFn> = Arc::new(descriptors);
        self.with(|o| o.descriptors_fn = Some(descriptors))
    }

    /// Finds the peer address another way than a [`SocketAddr`](std::net::SocketAddr) or [`IpAddr`] extension,
    /// e.g. axum's `ConnectInfo<SocketAddr>`:
    /// `.peer_addr_fn(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))`.
    pub fn peer_addr_fn(self, peer: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static) -> RateLimitLayer {
        let peer: Arc<PeerFn> = Arc::new(peer);
        self.with(|o| o.peer_fn = Some(peer))
    }

    /// Sets what to do with requests that yield no descriptor (default [`MissingIdentity::Shared`]).
    pub fn missing_identity(self, policy: MissingIdentity) -> RateLimitLayer {
        self.with(|o| o.missing_identity = policy)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit::new(inner, self.client.clone(), Arc::clone(&self.options))
    }
}
