//! The client's address behind trusted reverse proxies.
//!
//! `X-Forwarded-For` and `Forwarded` are only believed from the proxies an operator lists
//! (`http.trusted_proxies`): anyone else could write any address there and dodge per-address
//! limits. From a trusted proxy, the client is the nearest address in the chain that is not
//! itself a trusted proxy.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address range: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX` or a lone `ADDRESS`.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (network, ip, bits) = match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(ip)) => {
                (u128::from(n.to_bits()), u128::from(ip.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(ip)) => (n.to_bits(), ip.to_bits(), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        let mask = if host_bits >= 128 { 0 } else { u128::MAX << host_bits };
        (network & mask) == (ip & mask)
    }
}

/// The client of a request that came from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    chain
        .iter()
        .rev()
        .copied()
        .find(|ip| !is_trusted(*ip))
        .or(chain.first().copied())
        .unwrap_or(peer)
}

/// Every address the proxies recorded, nearest last: `Forwarded: for=…` when present, else
/// `X-Forwarded-For`. An entry that is not an address (`unknown`, an obfuscated id) ends the
/// chain there: nothing before it can be trusted.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|part| part.trim().to_owned())
            .collect()
    };
    let forwarded: Vec<String> = values("forwarded")
        .iter()
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.eq_ignore_ascii_case("for").then(|| value.trim_matches('"').to_owned())
            })
        })
        .collect();
    let entries = if forwarded.is_empty() { values("x-forwarded-for") } else { forwarded };
    let mut chain = Vec::new();
    for entry in entries {
        match parse_node(&entry) {
            Some(ip) => chain.push(ip),
            None => chain.clear(),
        }
    }
    chain
}

/// `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80` or `::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_hold_what_they_should() {
        let private = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(private.contains(ip("10.1.2.3")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(!private.contains(ip("::ffff:10.0.0.1")), "a v6 address is not in a v4 range");
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("proxy.local"), None);
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6, 7.7.7.7, 10.0.0.2"));
        // From outside, the header is the client's own claim: ignored.
        assert_eq!(client_ip(ip("8.8.8.8"), &headers, &trusted), ip("8.8.8.8"));
        // From a trusted proxy: the nearest address that is not a proxy (6.6.6.6 was written by
        // the client itself, 7.7.7.7 by the first proxy).
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &trusted), ip("7.7.7.7"));
        let mut forwarded = HeaderMap::new();
        forwarded.insert(
            "forwarded",
            HeaderValue::from_static("for=\"[2001:db8::5]:4711\";proto=https"),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &forwarded, &trusted), ip("2001:db8::5"));
        assert_eq!(client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted), ip("10.0.0.1"));
    }
}
