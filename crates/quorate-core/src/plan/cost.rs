//! [`Cost`]: how many units a request charges, never zero.

use std::fmt;
use std::num::NonZeroU64;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Units a request costs (requests, LLM tokens, cents): at least 1, so no request is ever free.
///
/// The API says "a cost of 0 counts as 1"; that rule lives in [`Cost::at_least_one`], the one place the wire's
/// integer becomes a cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Cost(NonZeroU64);

impl Cost {
    /// One unit: the cost of a plain request.
    pub const ONE: Cost = Cost(NonZeroU64::MIN);

    /// The cost of `units`, or `None` if it is 0.
    pub fn new(units: u64) -> Option<Cost> {
        NonZeroU64::new(units).map(Cost)
    }

    /// The cost of `units`, counting 0 as 1: how the public API reads a request's cost field.
    pub fn at_least_one(units: u64) -> Cost {
        Cost::new(units).unwrap_or(Cost::ONE)
    }

    /// The number of units.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl TryFrom<u64> for Cost {
    type Error = CoreError;

    fn try_from(units: u64) -> Result<Cost, CoreError> {
        Cost::new(units).ok_or(CoreError::ZeroCost)
    }
}

impl From<Cost> for u64 {
    fn from(cost: Cost) -> u64 {
        cost.get()
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
