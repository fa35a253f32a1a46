//! Reading a server's wait hint from response headers: `Retry-After` and the `RateLimit` structured field.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, RETRY_AFTER};

/// Returns the wait a `Retry-After` header asks for: delta-seconds, or an HTTP-date relative to `now` (a date in
/// the past means "now": zero). `None` if the header is absent or malformed.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use quorate_client::backoff::retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "120".parse().unwrap());
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
/// headers.insert("retry-after", "Sun, 06 Nov 1994 08:50:07 GMT".parse().unwrap());
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds is "a very long time", not a parse error.
        return Some(Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Returns the wait the `RateLimit` header (IETF draft-10, e.g. `"agent";r=0;t=30`) implies: the largest `t`
/// among the exhausted items (`r=0`); for a 429, if no item says `r=0`, the largest `t` of all (the request was
/// larger than what remains). `None` if the header is absent, malformed or names no such item.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use quorate_client::backoff::ratelimit_reset;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit", r#""per_ip";r=40;t=2, "agent";r=0;t=7"#.parse().unwrap());
/// assert_eq!(ratelimit_reset(&headers, false), Some(Duration::from_secs(7)));
/// ```
pub fn ratelimit_reset(headers: &HeaderMap, too_many_requests: bool) -> Option<Duration> {
    let mut exhausted: Option<u64> = None;
    let mut any: Option<u64> = None;
    for value in headers.get_all("ratelimit") {
        for item in split_list(value.to_str().ok()?) {
            let (remaining, reset) = item_params(item);
            let Some(reset) = reset else { continue };
            any = any.max(Some(reset));
            if remaining == Some(0) {
                exhausted = exhausted.max(Some(reset));
            }
        }
    }
    let seconds = exhausted.or(any.filter(|_| too_many_requests))?;
    Some(Duration::from_secs(seconds))
}

/// Splits a structured-field list on the commas outside quoted strings.
fn split_list(value: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(value[start..].trim());
    items
}

/// Reads the integer parameters `r` and `t` of one list item (`"name";r=0;t=30`), skipping the quoted name.
fn item_params(item: &str) -> (Option<u64>, Option<u64>) {
    let params = match item.strip_prefix('"') {
        Some(rest) => {
            // The end of the quoted name: the first `"` not escaped.
            let mut escaped = false;
            let end = rest.char_indices().find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            });
            end.map_or("", |(i, _)| &rest[i + 1..])
        }
        None => item.split_once(';').map_or("", |(_, params)| params),
    };
    let (mut remaining, mut reset) = (None, None);
    for param in params.split(';') {
        let Some((key, value)) = param.split_once('=') else { continue };
        let value = value.trim().parse::<u64>().ok();
        match key.trim() {
            "r" => remaining = value,
            "t" => reset = value,
            _ => {}
        }
    }
    (remaining, reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    #[test]
    fn retry_after_dates_in_the_past_mean_now_and_garbage_means_no_hint() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after(&headers("retry-after", "Sun, 06 Nov 1994 08:00:00 GMT"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("retry-after", "soon"), now), None);
        assert_eq!(retry_after(&headers("retry-after", "-5"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn ratelimit_items_with_commas_or_semicolons_in_quoted_names_parse() {
        let value = r#""a,b;r=9";r=0;t=12, "c\"d";r=3;t=40"#;
        assert_eq!(ratelimit_reset(&headers("ratelimit", value), false), Some(Duration::from_secs(12)));
        assert_eq!(ratelimit_reset(&headers("ratelimit", r#""c";r=3;t=40"#), false), None);
        assert_eq!(ratelimit_reset(&headers("ratelimit", r#""c";r=3;t=40"#), true), Some(Duration::from_secs(40)));
        assert_eq!(ratelimit_reset(&headers("ratelimit", "garbage"), true), None);
    }
}
