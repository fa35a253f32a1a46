//! [`AccessLayer`]: who may call what on each listener, checked before any request body is read; it also
//! answers malformed requests as client errors ([`crate::api::wire_errors`]).
//!
//! Each listener serves its own services (see `node.rs`), and this layer decides, from the request's path and
//! headers alone, whether the caller may go on:
//!
//! - health checks and reflection are open on every listener (load balancers probe them);
//! - on the **public** listener, `RateLimiter` and Envoy's `RateLimitService` need the `check` role
//!   (`ReportLoad` the `report_load` role), and `Admin/Status` any valid token: clients read the leader and the
//!   members from it to route. Every other Admin method answers PERMISSION_DENIED there;
//! - on the **admin** listener, the Admin service needs the `admin` role;
//! - the **peer** listener is guarded by mutual TLS at the handshake, not here.
//!
//! Client certificates (a listener's `tls.ca`) authenticate the connection at the handshake; tokens say what a
//! caller may do. Once any token is configured, a call needs `authorization: Bearer <token>` whose token has the
//! role, also from a client with a verified certificate: no token or an unknown one is UNAUTHENTICATED, a known
//! one without the role PERMISSION_DENIED. Messages never echo a token. A listener without tokens lets every
//! client through that its TLS settings admit: with client certificates required, every holder of one (the
//! certificate carries no role); with neither, anyone, which the config allows only where it is safe (see
//! `config`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;

use super::{Role, TokenRule};
use crate::api::wire_errors;

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// API servers and Envoy.
    Public,
    /// Other nodes: Raft and forwarded calls.
    Peer,
    /// Operators.
    Admin,
}

impl ListenerKind {
    /// The name used in the config file (`[public]`, `[peer]`, `[admin]`).
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Public => "public",
            ListenerKind::Peer => "peer",
            ListenerKind::Admin => "admin",
        }
    }
}

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    Role(Role),
    AnyToken,
    OtherListener,
}

fn needs(kind: ListenerKind, path: &str) -> Needs {
    if path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.") {
        return Needs::Nothing;
    }
    match kind {
        ListenerKind::Peer => Needs::Nothing,
        ListenerKind::Public if path == "/quorate.v1.RateLimiter/ReportLoad" => Needs::Role(Role::ReportLoad),
        ListenerKind::Public
            if path.starts_with("/quorate.v1.RateLimiter/")
                || path.starts_with("/envoy.service.ratelimit.v3.RateLimitService/") =>
        {
            Needs::Role(Role::Check)
        }
        ListenerKind::Public if path == "/quorate.v1.Admin/Status" => Needs::AnyToken,
        ListenerKind::Public if path.starts_with("/quorate.v1.Admin/") => Needs::OtherListener,
        ListenerKind::Admin if path.starts_with("/quorate.v1.Admin/") => Needs::Role(Role::Admin),
        // Anything else is not served here: the router answers UNIMPLEMENTED.
        _ => Needs::Nothing,
    }
}

/// One listener's access rules and its count of refused calls.
#[derive(Debug)]
pub struct Access {
    kind: ListenerKind,
    tokens: Arc<[TokenRule]>,
    refused: AtomicU64,
}

impl Access {
    /// The rules of listener `kind` with the configured `tokens` (none: the listener's TLS settings alone decide).
    pub fn new(kind: ListenerKind, tokens: Arc<[TokenRule]>) -> Self {
        Access { kind, tokens, refused: AtomicU64::new(0) }
    }

    /// Calls refused since the node started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether a call of `path` with `headers` may go on; the gRPC status to answer if not.
    ///
    /// # Errors
    ///
    /// UNAUTHENTICATED or PERMISSION_DENIED, saying what is missing.
    pub fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<(), Status> {
        let needs = needs(self.kind, path);
        let result = match needs {
            Needs::Nothing => Ok(()),
            Needs::OtherListener => Err(Status::permission_denied(format!(
                "{path} is served on the admin listener only; the public listener answers Admin/Status alone"
            ))),
            Needs::Role(_) | Needs::AnyToken if self.tokens.is_empty() => Ok(()),
            Needs::Role(role) => self.token_with(headers, Some(role), path),
            Needs::AnyToken => self.token_with(headers, None, path),
        };
        if let Err(status) = &result {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(listener = self.kind.name(), method = path, code = ?status.code(), "refused a call");
        }
        result
    }

    fn token_with(&self, headers: &http::HeaderMap, role: Option<Role>, path: &str) -> Result<(), Status> {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| {
                Status::unauthenticated(format!("{path} needs a token: send `authorization: Bearer <token>`"))
            })?;
        // Every hash is tried (no early exit), so timing does not tell which rule was close.
        let mut found: Option<&TokenRule> = None;
        for rule in self.tokens.iter() {
            if rule.hash.matches(presented) && found.is_none() {
                found = Some(rule);
            }
        }
        let rule = found.ok_or_else(|| Status::unauthenticated("the token is not one this cluster knows"))?;
        match role {
            Some(role) if !rule.roles.contains(&role) => Err(Status::permission_denied(format!(
                "token {:?} lacks the `{role}` role that {path} needs",
                rule.name
            ))),
            _ => Ok(()),
        }
    }
}

/// A tower layer applying [`Access`] to every request of a listener's server.
#[derive(Debug, Clone)]
pub struct AccessLayer {
    access: Arc<Access>,
}

impl AccessLayer {
    /// The layer for `access`.
    pub fn new(access: Arc<Access>) -> Self {
        AccessLayer { access }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService { inner, access: self.access.clone() }
    }
}

/// The service [`AccessLayer`] wraps around a listener's routes.
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    access: Arc<Access>,
}

impl<S, B> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.access.check(request.uri().path(), request.headers()) {
            Ok(()) => {
                let answer = self.inner.call(request);
                Box::pin(async move { answer.await.map(wire_errors::client_errors) })
            }
            Err(status) => {
                let response = status.into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::auth::{TokenHash, generate};

    fn rules(token: &str, roles: &[Role]) -> Arc<[TokenRule]> {
        let roles: BTreeSet<Role> = roles.iter().copied().collect();
        Arc::from(vec![TokenRule { name: "api".into(), roles, hash: TokenHash::new(token).unwrap() }])
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn tokens_need_the_role_of_the_method() {
        let token = generate().unwrap();
        let access = Access::new(ListenerKind::Public, rules(&token, &[Role::Check]));
        assert!(access.check("/quorate.v1.RateLimiter/Check", &bearer(&token)).is_ok());
        assert!(access.check("/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit", &bearer(&token)).is_ok());
        assert!(access.check("/quorate.v1.Admin/Status", &bearer(&token)).is_ok(), "any token may route");
        let denied = access.check("/quorate.v1.RateLimiter/ReportLoad", &bearer(&token)).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("report_load") && !denied.message().contains(&token));
        let missing = access.check("/quorate.v1.RateLimiter/Check", &http::HeaderMap::new()).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        let unknown = access.check("/quorate.v1.RateLimiter/Check", &bearer(&generate().unwrap())).unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        assert!(access.check("/grpc.health.v1.Health/Check", &http::HeaderMap::new()).is_ok());
        assert_eq!(access.refused(), 3);
    }

    #[test]
    fn admin_methods_other_than_status_are_not_served_on_the_public_listener() {
        let access = Access::new(ListenerKind::Public, Arc::from(Vec::new()));
        let refused = access.check("/quorate.v1.Admin/SetPolicies", &http::HeaderMap::new()).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(access.check("/quorate.v1.Admin/Status", &http::HeaderMap::new()).is_ok());
    }

    #[test]
    fn the_admin_listener_needs_the_admin_role_whenever_tokens_are_configured() {
        let token = generate().unwrap();
        let check_only = Access::new(ListenerKind::Admin, rules(&token, &[Role::Check]));
        let refused = check_only.check("/quorate.v1.Admin/SetPolicies", &bearer(&token)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        let admin = Access::new(ListenerKind::Admin, rules(&token, &[Role::Admin]));
        assert!(admin.check("/quorate.v1.Admin/SetPolicies", &bearer(&token)).is_ok());
        // Also a client whose certificate the handshake verified: the certificate carries no role.
        let anonymous = admin.check("/quorate.v1.Admin/SetPolicies", &http::HeaderMap::new()).unwrap_err();
        assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
        // Without tokens the listener's TLS settings alone decide (client certificates required, or loopback).
        let certs_only = Access::new(ListenerKind::Admin, Arc::from(Vec::new()));
        assert!(certs_only.check("/quorate.v1.Admin/SetPolicies", &http::HeaderMap::new()).is_ok());
    }
}
