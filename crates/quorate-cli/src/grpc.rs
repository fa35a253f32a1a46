//! How the commands print a gRPC status: `<CODE>: <message>`, with the canonical code names the API docs use.

use tonic::Code;

/// Returns the canonical gRPC name of a status code (`UNAVAILABLE`, `INVALID_ARGUMENT`, ...); tonic's `Display`
/// prints a long English sentence instead.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Formats a gRPC error as `<CODE>: <message>`, the form every client command prints.
pub(crate) fn status_line(status: &tonic::Status) -> String {
    format!("{}: {}", code_name(status.code()), status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_uses_canonical_code_names() {
        let status = tonic::Status::resource_exhausted("key table full");
        assert_eq!(status_line(&status), "RESOURCE_EXHAUSTED: key table full");
    }
}
