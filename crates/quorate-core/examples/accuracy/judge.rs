//! Judging each decision against an exact sliding log of the limiter's own admitted history, and adding up the
//! verdicts per algorithm.
//!
//! A limiter's decision at time `t` is judged on what *that limiter* admitted in `(t - window, t]`, not on what
//! another limiter would have admitted, so that errors do not compound: an allow while that count was already at
//! `limit` is a wrong allow, a deny while it left room for the cost is a wrong deny. The exact reference is the
//! limiter that decides by exactly this rule, so it is never wrong.

use std::collections::VecDeque;

use quorate_core::{Algorithm, Limiter, Nanos};

/// What one limiter admitted in the last window: an exact per-request sliding log.
#[derive(Debug, Default)]
pub(crate) struct OwnLog {
    admitted: VecDeque<Nanos>,
}

impl OwnLog {
    /// The number admitted in `(now - window, now]`; forgets older admissions, so `now` must not go back.
    fn count_at(&mut self, now: Nanos, window: Nanos) -> u64 {
        while self.admitted.front().is_some_and(|&t| t + window <= now) {
            self.admitted.pop_front();
        }
        self.admitted.len() as u64
    }
}

/// What one source's decisions came to under one limiter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdicts {
    pub(crate) requests: u64,
    pub(crate) admitted: u64,
    pub(crate) wrong_allows: u64,
    pub(crate) wrong_denies: u64,
    /// The most admitted in any span of one window length.
    pub(crate) worst_window: u64,
}

/// Runs `decide(now, own_count)` over one source's arrivals (unit cost each) and judges every decision.
///
/// `log` is scratch space, cleared first, so that one allocation serves every source.
pub(crate) fn judge(
    arrivals: &[Nanos],
    window: Nanos,
    limit: u64,
    log: &mut OwnLog,
    mut decide: impl FnMut(Nanos, u64) -> bool,
) -> Verdicts {
    log.admitted.clear();
    let mut v = Verdicts { requests: arrivals.len() as u64, ..Verdicts::default() };
    for &now in arrivals {
        let count = log.count_at(now, window);
        if decide(now, count) {
            v.wrong_allows += u64::from(count >= limit);
            v.admitted += 1;
            log.admitted.push_back(now);
            // Every span's content fits in the span ending at its last admission: this one.
            v.worst_window = v.worst_window.max(count + 1);
        } else {
            v.wrong_denies += u64::from(count < limit);
        }
    }
    v
}

/// The exact reference: admits iff fewer than `limit` were admitted in the last window.
pub(crate) fn exact_log(limit: u64) -> impl FnMut(Nanos, u64) -> bool {
    move |_, count| count < limit
}

/// The decisions of `limiter` on one fresh key: unit cost at the base limit, exactly as the keyed table runs it.
pub(crate) fn decider(limiter: &Limiter) -> Box<dyn FnMut(Nanos, u64) -> bool + '_> {
    match limiter {
        Limiter::TokenBucket(a) => Box::new(fresh_key(a)),
        Limiter::SlidingWindow(a) => Box::new(fresh_key(a)),
        Limiter::WindowCounter(a) => Box::new(fresh_key(a)),
        Limiter::FixedWindow(a) => Box::new(fresh_key(a)),
    }
}

fn fresh_key<A: Algorithm>(algorithm: &A) -> impl FnMut(Nanos, u64) -> bool + '_ {
    let mut state = A::State::default();
    let limit = algorithm.base_limit();
    move |now, _| algorithm.check(&mut state, now, 1, limit, true).allowed
}

/// The verdicts of one limiter added up over all sources.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) total: Verdicts,
    /// The sum over sources of `|admitted - exact| / exact`.
    rate_error_sum: f64,
    /// Sources with at least one request (the exact log admits the first request of every source).
    sources: u64,
}

impl Tally {
    /// Adds one source, whose exact log admitted `exact`.
    pub(crate) fn add(&mut self, v: Verdicts, exact: u64) {
        let t = &mut self.total;
        t.requests += v.requests;
        t.admitted += v.admitted;
        t.wrong_allows += v.wrong_allows;
        t.wrong_denies += v.wrong_denies;
        t.worst_window = t.worst_window.max(v.worst_window);
        if exact > 0 {
            self.rate_error_sum += v.admitted.abs_diff(exact) as f64 / exact as f64;
            self.sources += 1;
        }
    }

    /// The mean over sources of the relative error of the admitted rate against the exact log's.
    pub(crate) fn mean_rate_error(&self) -> f64 {
        if self.sources == 0 { 0.0 } else { self.rate_error_sum / self.sources as f64 }
    }
}

#[cfg(test)]
mod tests {
    use quorate_core::{
        FixedWindow, LimitRef, LimiterTable, SlidingWindow, TableConfig, TokenBucket, WindowCounter, WindowSpan,
    };

    use super::*;

    const SECOND: Nanos = 1_000_000_000;
    const T0: Nanos = 1_795_000_000 * SECOND;

    #[test]
    fn judging_counts_own_admissions_in_the_half_open_window() {
        // Limit 2 per 10 s. The last arrival is exactly 10 s after the second, which no longer counts then.
        let arrivals = [T0, T0 + 1, T0 + 2, T0 + 10 * SECOND + 1];
        let mut log = OwnLog::default();
        let allow_all = judge(&arrivals, 10 * SECOND, 2, &mut log, |_, _| true);
        assert_eq!(allow_all, Verdicts { requests: 4, admitted: 4, wrong_allows: 1, wrong_denies: 0, worst_window: 3 });
        let deny_all = judge(&arrivals, 10 * SECOND, 2, &mut log, |_, _| false);
        assert_eq!(deny_all.wrong_denies, 4);
        let exact = judge(&arrivals, 10 * SECOND, 2, &mut log, exact_log(2));
        assert_eq!(exact, Verdicts { requests: 4, admitted: 3, wrong_allows: 0, wrong_denies: 0, worst_window: 2 });
    }

    #[test]
    fn direct_runs_decide_exactly_as_the_keyed_table() {
        // The benchmark drives the algorithms directly; the table must not change a single decision.
        let window = 60 * SECOND;
        let limiters: [Limiter; 4] = [
            TokenBucket::new(10, 10, window).unwrap().into(),
            SlidingWindow::new(10, window, 60).unwrap().into(),
            WindowCounter::new(10, window).unwrap().into(),
            FixedWindow::new(10, WindowSpan::Every(window)).unwrap().into(),
        ];
        // Bursts and lulls: gaps from 0 to 6 s.
        let arrivals: Vec<Nanos> = (0..3_000u64)
            .scan(T0, |t, i| {
                *t += i * i % 13 * SECOND / 2;
                Some(*t)
            })
            .collect();
        for limiter in limiters {
            let mut table = LimiterTable::new(TableConfig::default());
            let limit = LimitRef::new(0, limiter, "source");
            let via_table: Vec<bool> =
                arrivals.iter().map(|&t| table.check_one(t, &limit, 1).unwrap().allowed).collect();
            let mut decide = decider(&limiter);
            let direct: Vec<bool> = arrivals.iter().map(|&t| decide(t, 0)).collect();
            assert_eq!(via_table, direct, "{}", limiter.algorithm_name());
            assert!(direct.iter().any(|&a| a) && direct.iter().any(|&a| !a));
        }
    }
}
