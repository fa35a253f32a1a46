//! `host:port` validation for addresses that peers and clients dial.

use crate::error::ConfigError;

/// Checks that `text` is `host:port` as peers and clients dial it: a host name, an IPv4 address or a bracketed
/// IPv6 address, and a port from 1 to 65535.
pub(crate) fn host_port(field: &str, text: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::new(field, format!("{text:?} is not host:port ({why})"));
    let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    match port.parse::<u16>() {
        Ok(port) if port > 0 => {}
        _ => return Err(bad("the port must be a number from 1 to 65535")),
    }
    if !valid_host(host) {
        return Err(bad("the host must be a name, an IPv4 address or [an IPv6 address]"));
    }
    Ok(())
}

/// The host part of a `host:port` already validated by [`host_port`], without IPv6 brackets: the name a TLS
/// certificate must carry.
pub(crate) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_without_port_or_brackets() {
        assert_eq!(host_of("node2.internal:7201"), "node2.internal");
        assert_eq!(host_of("[2001:db8::2]:7201"), "2001:db8::2");
        assert_eq!(host_of("10.0.0.2:7201"), "10.0.0.2");
    }
}
