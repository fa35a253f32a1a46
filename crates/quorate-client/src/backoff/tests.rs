use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;

use http::HeaderValue;

use super::*;

/// Sun, 06 Nov 1994 08:49:37 GMT, the HTTP-date of RFC 9110's examples.
fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_static(value));
    }
    headers
}

/// A backoff whose jitter draws are all `value`.
fn fixed(value: f64) -> Backoff {
    Backoff::new().rng(move || value)
}

const TOO_MANY: StatusCode = StatusCode::TOO_MANY_REQUESTS;

#[test]
fn retry_after_seconds_take_precedence_over_the_ratelimit_t_parameter() {
    let mut backoff = fixed(0.0);
    let headers = headers(&[("retry-after", "7"), ("ratelimit", r#""agent";r=0;t=30"#)]);
    assert_eq!(backoff.next_delay_at(epoch(), TOO_MANY, &headers), Some(Duration::from_secs(7)));
}

#[test]
fn retry_after_http_date_is_honoured_relative_to_now() {
    let mut backoff = fixed(0.0);
    let headers = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:49 GMT")]);
    assert_eq!(
        backoff.next_delay_at(epoch(), StatusCode::SERVICE_UNAVAILABLE, &headers),
        Some(Duration::from_secs(12))
    );
}

#[test]
fn ratelimit_t_is_used_when_there_is_no_retry_after() {
    let mut backoff = fixed(0.0);
    let headers = headers(&[("ratelimit", r#""per_ip";r=10;t=3, "agent";r=0;t=9"#)]);
    assert_eq!(backoff.next_delay_at(epoch(), TOO_MANY, &headers), Some(Duration::from_secs(9)));
}

#[test]
fn without_hints_delays_double_from_the_base_and_stop_at_the_cap() {
    let mut backoff = Backoff::new()
        .jitter(Jitter::None)
        .base_delay(Duration::from_millis(100))
        .max_delay(Duration::from_millis(500))
        .max_attempts(10);
    let delays: Vec<u64> = (0..5)
        .filter_map(|_| backoff.next_delay_at(epoch(), TOO_MANY, &HeaderMap::new()))
        .map(|d| d.as_millis() as u64)
        .collect();
    assert_eq!(delays, [100, 200, 400, 500, 500]);
}

#[test]
fn full_jitter_stays_between_zero_and_the_exponential_delay() {
    let exponential = |attempt: u32| Duration::from_millis(100 << attempt.min(20)).min(Duration::from_secs(30));
    assert_eq!(fixed(0.0).next_delay_at(epoch(), TOO_MANY, &HeaderMap::new()), Some(Duration::ZERO));
    for seed in 0..200 {
        let mut backoff = Backoff::new().seed(seed).base_delay(Duration::from_millis(100)).max_attempts(8);
        for attempt in 0..7 {
            let delay = backoff.next_delay_at(epoch(), TOO_MANY, &HeaderMap::new()).unwrap();
            assert!(delay <= exponential(attempt), "seed {seed} attempt {attempt}: {delay:?}");
        }
    }
}

#[test]
fn equal_jitter_stays_between_half_and_all_of_the_exponential_delay() {
    for seed in 0..200 {
        let mut backoff = Backoff::new().seed(seed).jitter(Jitter::Equal).base_delay(Duration::from_millis(400));
        let delay = backoff.next_delay_at(epoch(), TOO_MANY, &HeaderMap::new()).unwrap();
        assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&delay), "{delay:?}");
    }
    let mut low = fixed(0.0).jitter(Jitter::Equal).base_delay(Duration::from_millis(400));
    assert_eq!(low.next_delay_at(epoch(), TOO_MANY, &HeaderMap::new()), Some(Duration::from_millis(200)));
}

#[test]
fn server_hints_are_never_shortened_and_lengthened_by_at_most_the_hint_jitter() {
    let headers = headers(&[("retry-after", "10")]);
    assert_eq!(fixed(0.0).next_delay_at(epoch(), TOO_MANY, &headers), Some(Duration::from_secs(10)));
    assert_eq!(fixed(1.0).next_delay_at(epoch(), TOO_MANY, &headers), Some(Duration::from_secs(11)));
    assert_eq!(fixed(1.0).hint_jitter(0.0).next_delay_at(epoch(), TOO_MANY, &headers), Some(Duration::from_secs(10)));
}

#[test]
fn max_attempts_counts_the_first_request() {
    let mut backoff = fixed(0.5).max_attempts(3);
    let retry = headers(&[("retry-after", "1")]);
    assert!(backoff.next_delay_at(epoch(), TOO_MANY, &retry).is_some());
    assert!(backoff.next_delay_at(epoch(), TOO_MANY, &retry).is_some());
    assert_eq!(backoff.next_delay_at(epoch(), TOO_MANY, &retry), None);
    assert_eq!(backoff.attempts(), 3);
    backoff.reset();
    assert!(backoff.next_delay_at(epoch(), TOO_MANY, &retry).is_some());
}

#[test]
fn no_retry_is_scheduled_past_the_time_budget() {
    let mut backoff = fixed(0.0).hint_jitter(0.0).max_elapsed(Duration::from_secs(60)).max_attempts(100);
    // A hint longer than the whole budget: give up at once rather than retry too early.
    assert_eq!(backoff.next_delay_at(epoch(), TOO_MANY, &headers(&[("retry-after", "61")])), None);
    let mut backoff = fixed(0.0).hint_jitter(0.0).max_elapsed(Duration::from_secs(60)).max_attempts(100);
    let thirty = headers(&[("retry-after", "30")]);
    assert_eq!(backoff.next_delay_at(epoch(), TOO_MANY, &thirty), Some(Duration::from_secs(30)));
    let later = epoch() + Duration::from_secs(30);
    assert_eq!(backoff.next_delay_at(later, TOO_MANY, &thirty), Some(Duration::from_secs(30)));
    let too_late = epoch() + Duration::from_secs(31);
    assert_eq!(backoff.next_delay_at(too_late, TOO_MANY, &thirty), None);
}

#[test]
fn successes_and_client_errors_are_not_retried() {
    let mut backoff = Backoff::new();
    for status in [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED, StatusCode::NOT_FOUND] {
        assert_eq!(backoff.next_delay_at(epoch(), status, &headers(&[("retry-after", "1")])), None);
    }
    assert_eq!(backoff.attempts(), 0);
    let mut custom = fixed(0.0).retry_on(|s| s == StatusCode::CONFLICT);
    assert!(custom.next_delay_at(epoch(), StatusCode::CONFLICT, &HeaderMap::new()).is_some());
}

#[test]
fn clones_do_not_jitter_in_lockstep() {
    let original = Backoff::new().seed(7).base_delay(Duration::from_secs(10));
    let delays: Vec<Option<Duration>> =
        (0..8).map(|_| original.clone().next_delay_at(epoch(), TOO_MANY, &HeaderMap::new())).collect();
    let first = delays[0];
    assert!(delays.iter().any(|d| *d != first), "{delays:?}");
}

#[tokio::test(start_paused = true)]
async fn tower_retry_policy_waits_for_retry_after_then_returns_the_success() {
    use tower::{Service, ServiceExt};

    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let inner = tower::service_fn(move |_request: http::Request<()>| {
        let n = counter.fetch_add(1, SeqCst);
        async move {
            let mut response = http::Response::new(());
            if n == 0 {
                *response.status_mut() = TOO_MANY;
                response.headers_mut().insert("retry-after", HeaderValue::from_static("2"));
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut service = tower::retry::Retry::new(Backoff::new().hint_jitter(0.0), inner);
    let start = tokio::time::Instant::now();
    let response = service.ready().await.unwrap().call(http::Request::new(())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}
