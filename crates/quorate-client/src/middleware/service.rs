//! [`RateLimit`]: checks each request with the cluster before the inner service sees it.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::identity::identify;
use super::layer::Options;
use crate::client::Client;

/// Middleware that checks each request against a Quorate cluster: allowed requests reach the inner service
/// (with rate-limit headers added to its response), denied ones get a 429 without reaching it.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    client: Client,
    options: Arc<Options>,
}

impl<S> RateLimit<S> {
    pub(crate) fn new(inner: S, client: Client, options: Arc<Options>) -> RateLimit<S> {
        RateLimit { inner, client, options }
    }

    /// Gets a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Gets a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if self.options.skips(request.uri().path()) {
            return ResponseFuture::unchecked(self.inner.call(request));
        }
        let (parts, body) = request.into_parts();
        let identity = identify(&self.options, &parts);
        let request = Request::from_parts(parts, body);
        let Some((descriptors, cost)) = identity else {
            return ResponseFuture::unchecked(self.inner.call(request));
        };
        // The ready service goes with the request; this one keeps a fresh clone for the next poll_ready.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let client = self.client.clone();
        let check = Box::pin(async move { client.check(&descriptors, cost).await });
        ResponseFuture::checking(check, ready, request)
    }
}
