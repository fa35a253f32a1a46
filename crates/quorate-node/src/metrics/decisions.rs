//! [`DecisionCounters`]: decisions per policy and outcome, counted with one atomic add each.
//!
//! Policies are numbered by their position in the policy set, and a new set renumbers them. The check path
//! counts into a slot per number; when it meets a newer policy set than the slots count for (one atomic load per
//! check tells), the slots' counts are folded, under a lock taken only then, into totals kept by policy name,
//! and the slots start over for the new numbering. A scrape adds both, so each policy's counters only ever grow,
//! whatever policy changes happen in between.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use quorate_core::policy::PolicySet;

/// Policies with a slot of their own; decisions of others (and of Envoy overrides) count under [`OTHER`].
pub(crate) const POLICY_SLOTS: usize = 256;

/// The label of decisions of policies beyond [`POLICY_SLOTS`] and of Envoy per-request overrides.
pub(crate) const OTHER: &str = "(other)";

/// Allowed and denied, in that order.
const OUTCOMES: usize = 2;

/// Decisions per policy and outcome.
#[derive(Debug)]
pub(crate) struct DecisionCounters {
    /// The policy set version the slots count for.
    version: AtomicU64,
    slots: Box<[[AtomicU64; OUTCOMES]]>,
    other: [AtomicU64; OUTCOMES],
    /// Names of the slots' policies, and the totals of earlier numberings by name.
    names: Mutex<Names>,
}

#[derive(Debug, Default)]
struct Names {
    current: Vec<String>,
    folded: BTreeMap<String, [u64; OUTCOMES]>,
}

impl Default for DecisionCounters {
    fn default() -> Self {
        DecisionCounters {
            version: AtomicU64::new(0),
            slots: (0..POLICY_SLOTS).map(|_| [AtomicU64::new(0), AtomicU64::new(0)]).collect(),
            other: [AtomicU64::new(0), AtomicU64::new(0)],
            names: Mutex::default(),
        }
    }
}

impl DecisionCounters {
    /// Counts one decision of policy number `policy` of `policies`.
    pub(crate) fn record(&self, policies: &PolicySet, policy: u32, allowed: bool) {
        if self.version.load(Ordering::Acquire) != policies.version() {
            self.renumber(policies);
        }
        let outcome = usize::from(!allowed);
        let known = policies.policy(policy).is_some();
        match self.slots.get(policy as usize).filter(|_| known) {
            Some(slot) => slot[outcome].fetch_add(1, Ordering::Relaxed),
            None => self.other[outcome].fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Folds the slots into the totals by name and takes `policies`' numbering.
    fn renumber(&self, policies: &PolicySet) {
        let mut names = self.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.version.load(Ordering::Acquire) == policies.version() {
            return;
        }
        let Names { current, folded } = &mut *names;
        for (slot, name) in self.slots.iter().zip(current.iter()) {
            let total = folded.entry(name.clone()).or_default();
            for (sum, count) in total.iter_mut().zip(slot) {
                *sum += count.swap(0, Ordering::Relaxed);
            }
        }
        *current = policies.policies().map(|(_, policy)| policy.name().to_owned()).take(POLICY_SLOTS).collect();
        self.version.store(policies.version(), Ordering::Release);
    }

    /// Every policy's (name, allowed, denied) so far, by name.
    pub(crate) fn totals(&self) -> Vec<(String, u64, u64)> {
        let names = self.names.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut totals = names.folded.clone();
        for (slot, name) in self.slots.iter().zip(names.current.iter()) {
            let total = totals.entry(name.clone()).or_default();
            for (sum, count) in total.iter_mut().zip(slot) {
                *sum += count.load(Ordering::Relaxed);
            }
        }
        let other = [self.other[0].load(Ordering::Relaxed), self.other[1].load(Ordering::Relaxed)];
        if other != [0, 0] {
            totals.insert(OTHER.to_owned(), other);
        }
        totals.into_iter().map(|(name, [allowed, denied])| (name, allowed, denied)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(toml_names: &[&str], version: u64) -> PolicySet {
        let mut toml = String::new();
        for name in toml_names {
            toml.push_str(&format!(
                "[policies.{name}]\nalgorithm = \"token_bucket\"\nlimit = 10\nperiod = \"1m\"\n\n\
                 [[rules]]\ndimension = \"{name}\"\npolicy = \"{name}\"\n\n"
            ));
        }
        PolicySet::from_toml(&toml).unwrap().with_version(version)
    }

    #[test]
    fn counts_follow_policy_names_across_renumbering() {
        let counters = DecisionCounters::default();
        let v1 = policies(&["beta", "gamma"], 1);
        let beta = v1.id_of("beta").unwrap();
        counters.record(&v1, beta, true);
        counters.record(&v1, beta, false);
        // A new set puts "alpha" first: "beta" gets another number, its counts stay its own.
        let v2 = policies(&["alpha", "beta", "gamma"], 2);
        counters.record(&v2, v2.id_of("beta").unwrap(), true);
        counters.record(&v2, v2.id_of("alpha").unwrap(), false);
        counters.record(&v2, 9_999, true);
        let totals = counters.totals();
        assert_eq!(
            totals,
            [
                (OTHER.to_owned(), 1, 0),
                ("alpha".to_owned(), 0, 1),
                ("beta".to_owned(), 2, 1),
                ("gamma".to_owned(), 0, 0),
            ]
        );
    }
}
