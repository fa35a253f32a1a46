//! [`ResponseFuture`]: waits for the check, then either calls the inner service or answers with a rejection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::body::ResponseBody;
use super::response::{Verdict, verdict};
use crate::decision::Decision;
use crate::error::ClientError;

/// The boxed check of one request (a [`Client::check`](crate::Client::check) future cannot be named).
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Result<Decision, ClientError>> + Send>>;

pin_project! {
    /// Response future of [`RateLimit`](super::RateLimit).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        // Waiting for the cluster; the inner service (already ready) and the request wait with it.
        Checking { check: CheckFuture, service: Option<S>, request: Option<Request<B>> },
        // The inner service is answering; its response gets `headers`.
        Inner { #[pin] future: S::Future, headers: Option<HeaderMap> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A request that is checked first; `service` must have been driven to readiness.
    pub(crate) fn checking(check: CheckFuture, service: S, request: Request<B>) -> ResponseFuture<S, B> {
        ResponseFuture { state: State::Checking { check, service: Some(service), request: Some(request) } }
    }

    /// A request passed straight to the inner service (skipped path, unidentified and allowed).
    pub(crate) fn unchecked(future: S::Future) -> ResponseFuture<S, B> {
        ResponseFuture { state: State::Inner { future, headers: None } }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Checking { check, service, request } => {
                    let headers = match verdict(ready!(check.as_mut().poll(cx))) {
                        Verdict::Proceed(headers) => headers,
                        Verdict::Reject(response) => return Poll::Ready(Ok(response.map(ResponseBody::full))),
                    };
                    let (Some(mut service), Some(request)) = (service.take(), request.take()) else {
                        // Only reachable by polling again after completion, which futures need not support.
                        return Poll::Pending;
                    };
                    let future = service.call(request);
                    this.state.set(State::Inner { future, headers: Some(headers) });
                }
                StateProj::Inner { future, headers } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some(headers) = headers.take() {
                        // The inner service's own rate-limit headers, if any, are replaced by the cluster's.
                        for (name, value) in headers.iter() {
                            response.headers_mut().insert(name, value.clone());
                        }
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
            }
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Checking { .. } => "checking",
            State::Inner { .. } => "inner",
        };
        f.debug_struct("ResponseFuture").field("state", &state).finish()
    }
}
