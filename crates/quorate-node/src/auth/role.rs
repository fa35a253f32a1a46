//! [`Role`]: what a token may do.

use std::fmt;

/// A permission a token carries: which group of RPCs it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// `Check`, `CheckBatch`, `CheckStream`, `Refund`, `ReturnLeases` and Envoy's `ShouldRateLimit`.
    Check,
    /// `ReportLoad`: feeding the adaptive limits, which can tighten every tier.
    ReportLoad,
    /// The Admin service: membership, policies, snapshots.
    Admin,
}

impl Role {
    /// Every role, in config spelling order.
    pub const ALL: [Role; 3] = [Role::Check, Role::ReportLoad, Role::Admin];

    /// The name used in config files and by `quorate token new --role`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Check => "check",
            Role::ReportLoad => "report_load",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    ///
    /// # Errors
    ///
    /// A message listing the valid names.
    pub fn parse(text: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|role| role.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
            format!("unknown role {text:?}: one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
