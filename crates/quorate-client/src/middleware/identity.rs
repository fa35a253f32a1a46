//! Who is calling: the descriptors and cost of an HTTP request, from its headers and its peer address.
//!
//! The client IP is the socket peer, unless the peer is a trusted proxy: then `X-Forwarded-For` is read right to
//! left and the first address that is not a trusted proxy is the client (addresses left of it could be forged by
//! the client itself). Header values that could not be a descriptor value (not visible ASCII, empty, over 256
//! bytes) are ignored as if absent, so a malformed header never turns into a cluster error.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderName};
use http::request::Parts;

use super::layer::{MissingIdentity, Options};
use crate::descriptors::{Descriptors, IP};

/// The longest descriptor value the cluster accepts, in bytes.
pub(crate) const MAX_VALUE_LEN: usize = 256;

/// The `X-Forwarded-For` header.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// An IP address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address), e.g. of trusted proxies.
///
/// # Examples
///
/// ```
/// use std::net::IpAddr;
/// use quorate_client::middleware::IpRange;
///
/// let range: IpRange = "10.0.0.0/8".parse().unwrap();
/// assert!(range.contains("10.20.30.40".parse::<IpAddr>().unwrap()));
/// assert!(!range.contains("11.0.0.1".parse::<IpAddr>().unwrap()));
/// assert!("::1".parse::<IpRange>().unwrap().contains("::1".parse::<IpAddr>().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

/// Error returned by [`IpRange::from_str`] for text that is not an address or `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR range (e.g. 10.0.0.0/8)")]
pub struct InvalidIpRange(String);

impl IpRange {
    /// Returns true if `addr` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u128::from(net.to_bits()), u128::from(ip.to_bits()), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(net.to_bits(), ip.to_bits(), self.prefix, 128),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    let shift = u32::from(bits - prefix.min(bits));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

impl From<IpAddr> for IpRange {
    fn from(addr: IpAddr) -> IpRange {
        let addr = addr.to_canonical();
        IpRange { network: addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }
}

impl FromStr for IpRange {
    type Err = InvalidIpRange;

    fn from_str(text: &str) -> Result<IpRange, InvalidIpRange> {
        let invalid = || InvalidIpRange(text.to_owned());
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| invalid())?)),
            None => (text.trim(), None),
        };
        let range = IpRange::from(addr.parse::<IpAddr>().map_err(|_| invalid())?);
        match prefix {
            Some(prefix) if prefix > range.prefix => Err(invalid()),
            Some(prefix) => Ok(IpRange { prefix, ..range }),
            None => Ok(range),
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The value of the shared `ip` descriptor of requests that identify themselves in no way.
pub(crate) const UNKNOWN_IP: &str = "unknown";

/// Returns the descriptors and cost to check for a request, or `None` to let it through unchecked.
pub(crate) fn identify(options: &Options, parts: &Parts) -> Option<(Descriptors, u64)> {
    let headers = &parts.headers;
    let mut descriptors = Descriptors::new();
    let api_key = options.api_key_header.as_ref().and_then(|name| header_value(headers, name));
    if let Some(key) = api_key.or_else(|| if options.bearer { bearer_token(headers) } else { None }) {
        descriptors = descriptors.api_key(key);
    }
    if options.limit_by_ip {
        let peer = match &options.peer_fn {
            Some(peer) => peer(parts),
            None => peer_from_extensions(&parts.extensions),
        };
        if let Some(ip) = client_ip(peer, headers, &options.trusted_proxies) {
            descriptors = descriptors.ip(ip);
        }
    }
    if let Some(agent) = options.agent_id_header.as_ref().and_then(|name| header_value(headers, name)) {
        descriptors = descriptors.agent_id(agent);
    }
    if let Some(adjust) = &options.descriptors_fn {
        descriptors = adjust(parts, descriptors);
    }
    if descriptors.is_empty() {
        match options.missing_identity {
            MissingIdentity::Shared => descriptors = descriptors.with(IP, UNKNOWN_IP),
            MissingIdentity::Allow => return None,
        }
    }
    let cost = match &options.cost_fn {
        Some(cost) => cost(parts),
        None => options
            .cost_header
            .as_ref()
            .and_then(|name| header_value(headers, name))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(1),
    };
    Some((descriptors, cost.max(1)))
}

/// Returns the peer address a server put in the request extensions: a [`SocketAddr`] or an [`IpAddr`].
pub(crate) fn peer_from_extensions(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions.get::<SocketAddr>().map(SocketAddr::ip).or_else(|| extensions.get::<IpAddr>().copied())
}

/// Returns the client's address: `peer`, or if `peer` is a trusted proxy, the right-most address of
/// `X-Forwarded-For` that is not one. `None` without a peer (forwarded addresses cannot be trusted then).
pub(crate) fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpRange]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    let mut current = peer?.to_canonical();
    if !is_trusted(current) {
        return Some(current);
    }
    // Several X-Forwarded-For headers form one list, in order.
    let hops: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect();
    for hop in hops.into_iter().rev() {
        // A hop a trusted proxy wrote that is not an address ("unknown", garbage): stop at that proxy.
        let Some(ip) = parse_hop(hop) else { return Some(current) };
        current = ip;
        if !is_trusted(ip) {
            return Some(ip);
        }
    }
    Some(current)
}

/// Parses one `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

/// Returns a header's value if it can be a descriptor value.
pub(crate) fn header_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim).filter(|v| usable(v))
}

/// Returns the token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && usable(token)).then_some(token)
}

fn usable(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_VALUE_LEN
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, http::HeaderValue::from_static(value));
        }
        headers
    }

    fn proxies() -> Vec<IpRange> {
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()]
    }

    #[test]
    fn forwarded_for_is_ignored_when_the_peer_is_not_a_trusted_proxy() {
        let headers = forwarded(&["1.1.1.1"]);
        assert_eq!(client_ip(Some(ip("203.0.113.9")), &headers, &proxies()), Some(ip("203.0.113.9")));
        assert_eq!(client_ip(None, &headers, &proxies()), None);
    }

    #[test]
    fn forwarded_for_yields_the_right_most_untrusted_address() {
        // The client forged "6.6.6.6"; the real client 198.51.100.7 went through two trusted proxies.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(client_ip(Some(ip("10.2.2.2")), &headers, &proxies()), Some(ip("198.51.100.7")));
    }

    #[test]
    fn forwarded_for_with_only_trusted_hops_yields_the_left_most_and_garbage_stops_the_walk() {
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &forwarded(&["10.9.9.9"]), &proxies()), Some(ip("10.9.9.9")));
        let garbage = forwarded(&["198.51.100.7, unknown, 10.3.3.3"]);
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &garbage, &proxies()), Some(ip("10.3.3.3")));
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &HeaderMap::new(), &proxies()), Some(ip("10.0.0.1")));
    }

    #[test]
    fn forwarded_entries_with_ports_and_mapped_ipv6_addresses_are_normalised() {
        let headers = forwarded(&["[2001:db8::1]:443, 198.51.100.7:8080"]);
        assert_eq!(client_ip(Some(ip("::ffff:10.0.0.1")), &headers, &proxies()), Some(ip("198.51.100.7")));
        let mapped = Some(IpAddr::from(Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped()));
        assert_eq!(client_ip(mapped, &HeaderMap::new(), &proxies()), Some(ip("203.0.113.1")));
    }

    #[test]
    fn bearer_tokens_need_the_bearer_scheme_and_a_usable_value() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, "Bearer agent_42".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("agent_42"));
        headers.insert(AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, format!("bearer {}", "x".repeat(MAX_VALUE_LEN + 1)).parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }
}
