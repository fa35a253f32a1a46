//! Agent-side backoff: how long to wait before retrying an HTTP request that was rate limited or failed.
//!
//! [`Backoff::next_delay`] reads a response's status and headers and says whether to retry and after how long:
//!
//! 1. `Retry-After` (delta-seconds or an HTTP-date) if present: the server knows best;
//! 2. else the `RateLimit` header's `t` (seconds until the exhausted limit resets, see [`ratelimit_reset`]);
//! 3. else exponential backoff from [`Backoff::base_delay`], capped at [`Backoff::max_delay`], with [`Jitter`].
//!
//! A server's hint is never shortened (retrying before it would only be denied again); it is lengthened by up
//! to [`Backoff::hint_jitter`] so that clients told the same time do not all return at once. Retrying stops after
//! [`Backoff::max_attempts`] requests, or when the wait would end past [`Backoff::max_elapsed`] from the first
//! failure. Randomness comes from a tiny xorshift generator, or from [`Backoff::rng`] so that tests are exact.
//!
//! # Examples
//!
//! A retry loop around any HTTP client (here a reqwest-style `send()`; nothing here depends on reqwest):
//!
//! ```no_run
//! # struct Response { status: http::StatusCode, headers: http::HeaderMap }
//! # async fn send() -> Response { Response { status: http::StatusCode::OK, headers: http::HeaderMap::new() } }
//! use quorate_client::backoff::Backoff;
//!
//! # async fn example() {
//! let mut backoff = Backoff::new().max_attempts(5);
//! let response = loop {
//!     let response = send().await; // e.g. client.get(url).send().await?
//!     match backoff.next_delay(response.status, &response.headers) {
//!         Some(delay) => tokio::time::sleep(delay).await,
//!         None => break response, // success, a final error, or out of attempts/time
//!     }
//! };
//! # }
//! ```
//!
//! With tower, [`Backoff`] is a [`tower::retry::Policy`] for `http::Request<B>` with a cloneable body:
//! `ServiceBuilder::new().layer(RetryLayer::new(Backoff::new())).service(http_client)`.

mod hints;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

pub use hints::{ratelimit_reset, retry_after};

/// Default first backoff delay.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(200);
/// Default cap of one exponential delay (server hints are not capped: see [`Backoff::max_elapsed`]).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Default number of requests, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default time budget from the first failure: a minute covers the common one-minute windows.
pub const DEFAULT_MAX_ELAPSED: Duration = Duration::from_secs(120);
/// Default fraction by which a server's hint may be lengthened.
pub const DEFAULT_HINT_JITTER: f64 = 0.1;

/// How exponential delays are randomised (AWS's "Exponential Backoff And Jitter" names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Exactly the exponential delay.
    None,
    /// Uniform in `[0, delay]`: spreads retries most, the default.
    #[default]
    Full,
    /// Uniform in `[delay / 2, delay]`: never retries too early by more than half.
    Equal,
}

/// A source of uniform numbers in `[0, 1)`.
#[derive(Clone)]
enum Rng {
    XorShift(u64),
    Custom(Arc<Mutex<dyn FnMut() -> f64 + Send>>),
}

/// Distinguishes generators seeded in the same nanosecond and clones of one backoff.
static SEED_COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

impl Rng {
    fn seeded(seed: u64) -> Rng {
        // splitmix64 turns any seed (0 included) into a good non-zero xorshift state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng::XorShift((z ^ (z >> 31)) | 1)
    }

    fn fresh() -> Rng {
        let time = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Rng::seeded(time ^ SEED_COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed))
    }

    fn next(&mut self) -> f64 {
        match self {
            Rng::XorShift(x) => {
                *x ^= *x >> 12;
                *x ^= *x << 25;
                *x ^= *x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
            }
            Rng::Custom(f) => {
                let mut f = f.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let value = f();
                if value.is_finite() { value.clamp(0.0, 1.0) } else { 0.0 }
            }
        }
    }

    /// A generator for a clone: custom ones are shared, xorshift ones reseeded so that clones (one per request
    /// under `tower::retry`) do not jitter in lockstep.
    fn fork(&self) -> Rng {
        match self {
            Rng::XorShift(x) => Rng::seeded(*x ^ SEED_COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed)),
            Rng::Custom(f) => Rng::Custom(Arc::clone(f)),
        }
    }
}

/// Retry timing for one request: counts attempts and time, and turns responses into waits.
///
/// Cloning gives an independent backoff with the same settings and state (and a reseeded generator).
pub struct Backoff {
    base_delay: Duration,
    max_delay: Duration,
    max_attempts: u32,
    max_elapsed: Duration,
    jitter: Jitter,
    hint_jitter: f64,
    retry_on: fn(StatusCode) -> bool,
    rng: Rng,
    attempts: u32,
    started: Option<SystemTime>,
}

impl Backoff {
    /// Creates a backoff with the defaults: 200 ms doubling to 30 s with full jitter, 5 attempts within 2 min,
    /// retrying 429, 502, 503 and 504.
    pub fn new() -> Backoff {
        Backoff {
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_elapsed: DEFAULT_MAX_ELAPSED,
            jitter: Jitter::Full,
            hint_jitter: DEFAULT_HINT_JITTER,
            retry_on: is_retryable,
            rng: Rng::fresh(),
            attempts: 0,
            started: None,
        }
    }

    /// Sets the first exponential delay; the n-th retry waits up to `base * 2^(n-1)`.
    pub fn base_delay(mut self, delay: Duration) -> Backoff {
        self.base_delay = delay;
        self
    }

    /// Caps each exponential delay (not the server's hints, which only `max_elapsed` bounds).
    pub fn max_delay(mut self, delay: Duration) -> Backoff {
        self.max_delay = delay;
        self
    }

    /// Sets how many requests may be made in all, the first included (1 means never retry).
    pub fn max_attempts(mut self, attempts: u32) -> Backoff {
        self.max_attempts = attempts;
        self
    }

    /// Sets the time budget: no retry is scheduled that would start later than this after the first failure.
    pub fn max_elapsed(mut self, budget: Duration) -> Backoff {
        self.max_elapsed = budget;
        self
    }

    /// Sets how exponential delays are randomised.
    pub fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// Sets the fraction (clamped to 0..=1) by which a server's hint may be lengthened at random; 0 waits exactly.
    pub fn hint_jitter(mut self, fraction: f64) -> Backoff {
        self.hint_jitter = if fraction.is_finite() { fraction.clamp(0.0, 1.0) } else { 0.0 };
        self
    }

    /// Sets which statuses are retried (default: 429, 502, 503, 504).
    pub fn retry_on(mut self, retryable: fn(StatusCode) -> bool) -> Backoff {
        self.retry_on = retryable;
        self
    }

    /// Uses `rng` for jitter; it must return numbers in `[0, 1)` (others are clamped). Clones share it.
    pub fn rng(mut self, rng: impl FnMut() -> f64 + Send + 'static) -> Backoff {
        self.rng = Rng::Custom(Arc::new(Mutex::new(rng)));
        self
    }

    /// Seeds the built-in generator, for reproducible jitter.
    pub fn seed(mut self, seed: u64) -> Backoff {
        self.rng = Rng::seeded(seed);
        self
    }

    /// Returns how many failed attempts have been counted.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Forgets attempts and elapsed time, for reuse on a new request.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.started = None;
    }

    /// Returns how long to wait before retrying after a response with `status` and `headers`, or `None` to stop:
    /// the status is not retryable (success included), or attempts or time are used up.
    pub fn next_delay(&mut self, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        self.next_delay_at(SystemTime::now(), status, headers)
    }

    /// [`Backoff::next_delay`] at a given wall-clock time `now` (for HTTP-dates and the time budget).
    pub fn next_delay_at(&mut self, now: SystemTime, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
        if !(self.retry_on)(status) {
            return None;
        }
        let hint =
            retry_after(headers, now).or_else(|| ratelimit_reset(headers, status == StatusCode::TOO_MANY_REQUESTS));
        self.schedule(now, hint)
    }

    /// Returns how long to wait before retrying after a transport error (no response), or `None` to stop.
    pub fn next_error_delay_at(&mut self, now: SystemTime) -> Option<Duration> {
        self.schedule(now, None)
    }

    /// Counts a failed attempt and picks the wait: the server's hint (lengthened by jitter) or exponential.
    fn schedule(&mut self, now: SystemTime, hint: Option<Duration>) -> Option<Duration> {
        let started = *self.started.get_or_insert(now);
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts >= self.max_attempts {
            return None;
        }
        let delay = match hint {
            Some(hint) => hint.saturating_add(hint.mul_f64(self.hint_jitter * self.rng.next())),
            None => {
                let exponential = self.base_delay.saturating_mul(1 << (self.attempts - 1).min(31)).min(self.max_delay);
                match self.jitter {
                    Jitter::None => exponential,
                    Jitter::Full => exponential.mul_f64(self.rng.next()),
                    Jitter::Equal => exponential / 2 + (exponential / 2).mul_f64(self.rng.next()),
                }
            }
        };
        let elapsed = now.duration_since(started).unwrap_or(Duration::ZERO);
        (elapsed.saturating_add(delay) <= self.max_elapsed).then_some(delay)
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Clone for Backoff {
    fn clone(&self) -> Backoff {
        Backoff { rng: self.rng.fork(), ..*self }
    }
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff")
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("max_attempts", &self.max_attempts)
            .field("max_elapsed", &self.max_elapsed)
            .field("jitter", &self.jitter)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The statuses retried by default: rate limited (429) and the gateway/availability errors a retry may fix.
pub fn is_retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Retries `http` requests with a cloneable body: responses through [`Backoff::next_delay`], transport errors
/// with exponential backoff. Each request gets its own clone of the policy, hence its own count.
impl<B: Clone, ResB, E> tower::retry::Policy<http::Request<B>, http::Response<ResB>, E> for Backoff {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut http::Request<B>,
        result: &mut Result<http::Response<ResB>, E>,
    ) -> Option<Self::Future> {
        let delay = match result {
            Ok(response) => self.next_delay(response.status(), response.headers()),
            Err(_) => self.next_error_delay_at(SystemTime::now()),
        }?;
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &http::Request<B>) -> Option<http::Request<B>> {
        Some(request.clone())
    }
}
