//! Malformed requests are the caller's fault, and their status codes should say so.
//!
//! tonic answers a request it cannot decode with INTERNAL ("failed to decode Protobuf message", the gRPC spec's
//! choice for a server's own parse failures) and one over the size limit with OUT_OF_RANGE. For a rate limiter's
//! callers both are client errors: INTERNAL invites a retry and an alert on the server, OUT_OF_RANGE reads as a
//! bad argument value. [`client_errors`] rewrites them, on every listener, to INVALID_ARGUMENT and
//! RESOURCE_EXHAUSTED with a message that says what to fix. Only trailers-only responses (the ones tonic sends
//! when a unary or client-streaming request fails to decode) carry their status in the headers; a stream that
//! breaks later reports through `api::check_stream`.

use tonic::{Code, Status};

/// What tonic's prost codec says when a message does not parse.
const DECODE_FAILURE: &str = "failed to decode Protobuf message";
/// What tonic says when a message exceeds the service's `max_decoding_message_size`.
const TOO_LARGE: &str = "decoded message length too large";

/// Rewrites a decode failure or an oversized request in `response`'s headers to a client error.
pub(crate) fn client_errors(response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    match rewrite(&status) {
        Some(status) => status.into_http(),
        None => response,
    }
}

/// The client error a decode failure or an oversized message stands for, `None` for any other status.
pub(crate) fn rewrite(status: &Status) -> Option<Status> {
    match status.code() {
        Code::Internal if status.message().starts_with(DECODE_FAILURE) => Some(Status::invalid_argument(format!(
            "the request is not a valid protobuf message of this method ({})",
            status.message()
        ))),
        Code::OutOfRange if status.message().contains(TOO_LARGE) => Some(Status::resource_exhausted(format!(
            "the request is larger than this method accepts; send fewer or smaller checks ({})",
            status.message()
        ))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_and_oversized_requests_become_client_errors() {
        let garbage = Status::internal("failed to decode Protobuf message: invalid wire type");
        let response = client_errors(garbage.into_http());
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("invalid wire type"), "{}", status.message());

        let big = Status::out_of_range(
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 65536 bytes",
        );
        let status = Status::from_header_map(client_errors(big.into_http()).headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("65536"), "{}", status.message());
    }

    #[test]
    fn every_other_status_is_left_alone() {
        for status in [Status::internal("storage failed"), Status::out_of_range("cost"), Status::unavailable("x")] {
            let code = status.code();
            let response = client_errors(status.into_http());
            assert_eq!(Status::from_header_map(response.headers()).unwrap().code(), code);
        }
        let ok = http::Response::new(tonic::body::Body::empty());
        assert!(Status::from_header_map(client_errors(ok).headers()).is_none());
    }
}
