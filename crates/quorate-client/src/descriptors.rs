//! [`Descriptors`]: the `dimension = value` facts a check is made of, built fluently.
//!
//! The cluster's rules pick a policy per descriptor; the dimension names below are the ones the sample policies
//! (`deploy/policies.toml`) have rules for. Validation (identifier dimensions, values of 1 to 256 bytes, at most
//! 16 descriptors) happens in the cluster, which answers `INVALID_ARGUMENT` naming the bad descriptor.

use std::net::IpAddr;

use quorate_proto::v1 as pb;

/// The dimension of API keys (`api_key`).
pub const API_KEY: &str = "api_key";
/// The dimension of client IP addresses (`ip`).
pub const IP: &str = "ip";
/// The dimension of agent identities (`agent_id`).
pub const AGENT_ID: &str = "agent_id";

/// One `dimension = value` fact about a request, optionally naming the policy to check it against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// What the value identifies, e.g. `api_key`: lowercase letters, digits, `_`, `.` and `-`.
    pub dimension: String,
    /// The value, e.g. `agent_42`: 1 to 256 bytes.
    pub value: String,
    /// A policy that overrides the cluster's rules for this descriptor.
    pub policy: Option<String>,
}

impl Descriptor {
    /// Creates a descriptor whose policy the cluster's rules choose.
    pub fn new(dimension: impl Into<String>, value: impl Into<String>) -> Descriptor {
        Descriptor { dimension: dimension.into(), value: value.into(), policy: None }
    }

    /// Returns the descriptor checked against `policy` instead of the one the rules pick.
    pub fn with_policy(mut self, policy: impl Into<String>) -> Descriptor {
        self.policy = Some(policy.into());
        self
    }

    /// Returns the cluster's key for this descriptor, `"dimension=value"` (also the fallback limiter's key).
    pub fn key(&self) -> String {
        format!("{}={}", self.dimension, self.value)
    }

    pub(crate) fn to_wire(&self) -> pb::Descriptor {
        pb::Descriptor {
            dimension: self.dimension.clone(),
            value: self.value.clone(),
            policy: self.policy.clone().unwrap_or_default(),
        }
    }
}

/// The descriptors of one request, in order; the cluster checks all their limits atomically.
///
/// # Examples
///
/// ```
/// use std::net::Ipv4Addr;
/// use quorate_client::Descriptors;
///
/// let descriptors = Descriptors::new()
///     .api_key("agent_42")
///     .ip(Ipv4Addr::new(10, 1, 2, 3))
///     .agent_id("planner-7")
///     .with_policy("tenant", "acme", "daily_llm_tokens");
/// assert_eq!(descriptors.len(), 4);
/// let keys: Vec<String> = descriptors.iter().map(|d| d.key()).collect();
/// assert_eq!(keys, ["api_key=agent_42", "ip=10.1.2.3", "agent_id=planner-7", "tenant=acme"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Descriptors {
    items: Vec<Descriptor>,
}

impl Descriptors {
    /// Creates an empty set (a check needs at least one descriptor).
    pub fn new() -> Descriptors {
        Descriptors::default()
    }

    /// Adds `api_key = key`.
    pub fn api_key(self, key: impl Into<String>) -> Descriptors {
        self.with(API_KEY, key)
    }

    /// Adds `ip = addr`, in its canonical text form (IPv6 compressed, no brackets, no port).
    pub fn ip(self, addr: impl Into<IpAddr>) -> Descriptors {
        self.with(IP, addr.into().to_string())
    }

    /// Adds `agent_id = id`.
    pub fn agent_id(self, id: impl Into<String>) -> Descriptors {
        self.with(AGENT_ID, id)
    }

    /// Adds `dimension = value`, whose policy the cluster's rules choose.
    pub fn with(self, dimension: impl Into<String>, value: impl Into<String>) -> Descriptors {
        self.push(Descriptor::new(dimension, value))
    }

    /// Adds `dimension = value`, checked against `policy` instead of the one the rules pick.
    pub fn with_policy(
        self,
        dimension: impl Into<String>,
        value: impl Into<String>,
        policy: impl Into<String>,
    ) -> Descriptors {
        self.push(Descriptor::new(dimension, value).with_policy(policy))
    }

    /// Adds a descriptor.
    pub fn push(mut self, descriptor: Descriptor) -> Descriptors {
        self.items.push(descriptor);
        self
    }

    /// Returns the number of descriptors.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Returns true if there is no descriptor.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Iterates over the descriptors in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Descriptor> {
        self.items.iter()
    }

    pub(crate) fn to_wire(&self) -> Vec<pb::Descriptor> {
        self.items.iter().map(Descriptor::to_wire).collect()
    }
}

impl From<Vec<Descriptor>> for Descriptors {
    fn from(items: Vec<Descriptor>) -> Descriptors {
        Descriptors { items }
    }
}

impl FromIterator<Descriptor> for Descriptors {
    fn from_iter<I: IntoIterator<Item = Descriptor>>(iter: I) -> Descriptors {
        Descriptors { items: iter.into_iter().collect() }
    }
}

impl<'a> IntoIterator for &'a Descriptors {
    type Item = &'a Descriptor;
    type IntoIter = std::slice::Iter<'a, Descriptor>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn ipv6_addresses_use_the_canonical_compressed_form() {
        let descriptors = Descriptors::new().ip(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(descriptors.iter().next().map(Descriptor::key).as_deref(), Some("ip=2001:db8::1"));
    }

    #[test]
    fn wire_descriptors_keep_order_and_leave_policy_empty_unless_named() {
        let wire = Descriptors::new().api_key("k").with_policy("tenant", "acme", "gold").to_wire();
        assert_eq!(wire.len(), 2);
        assert_eq!((wire[0].dimension.as_str(), wire[0].value.as_str(), wire[0].policy.as_str()), ("api_key", "k", ""));
        assert_eq!(wire[1].policy, "gold");
    }
}
