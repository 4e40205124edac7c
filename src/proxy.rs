//! The client address behind reverse proxies (`web.trusted_proxies`).
//!
//! `X-Forwarded-For` is written by whoever sends the request, so it is read
//! only when the peer is a trusted proxy, and then from the right: each
//! trusted proxy appends the address it saw, so the right-most address that
//! is not itself a trusted proxy is the client. Anything left of it may be
//! made up by the client and is never used.

use std::net::IpAddr;

/// An address range: `10.0.0.0/8`, `::1/128`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max)?,
            None => max,
        };
        Some(Cidr { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`, from dual-stack sockets) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (full, rest) = (usize::from(bits / 8), bits % 8);
    if a[..full] != b[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[full] & mask == b[full] & mask
    }
}

/// An `X-Forwarded-For` entry: an address, or an address with a port
/// (`203.0.113.9:4711`, `[2001:db8::1]:4711`) as some proxies write it.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(canonical(ip))
}

/// The client of a request from `peer` with these `X-Forwarded-For` values.
pub fn client(peer: IpAddr, forwarded_for: &[&str], trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).rev();
    let mut client = peer;
    for hop in hops {
        // A hop that is no address ends the trusted chain: what the proxy saw
        // before it cannot be told apart from what the client wrote.
        let Some(ip) = hop_address(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")) && !c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("10.0.0.0/12").unwrap().contains(ip("10.15.255.255")));
        assert!(!Cidr::parse("10.0.0.0/12").unwrap().contains(ip("10.16.0.0")));
        for bad in ["", "10.0.0.0/33", "::/129", "host.example", "10.0.0.0/x"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies_and_from_the_right() {
        let trusted = [Cidr::parse("127.0.0.1").unwrap(), Cidr::parse("10.0.0.0/8").unwrap()];
        let proxy = ip("127.0.0.1");
        assert_eq!(client(proxy, &["203.0.113.9"], &trusted), ip("203.0.113.9"));
        assert_eq!(client(proxy, &["1.1.1.1, 203.0.113.9"], &trusted), ip("203.0.113.9"), "the left is the client's");
        assert_eq!(client(proxy, &["1.1.1.1", "203.0.113.9, 10.0.0.7"], &trusted), ip("203.0.113.9"));
        assert_eq!(client(proxy, &[], &trusted), proxy, "no header: the proxy itself");
        assert_eq!(client(proxy, &["garbage"], &trusted), proxy);
        assert_eq!(client(proxy, &["203.0.113.9:4711"], &trusted), ip("203.0.113.9"), "with a port");
        assert_eq!(client(proxy, &["[2001:db8::1]:4711"], &trusted), ip("2001:db8::1"));
        assert_eq!(client(ip("198.51.100.1"), &["203.0.113.9"], &trusted), ip("198.51.100.1"), "untrusted peer");
        assert_eq!(client(proxy, &["203.0.113.9"], &[]), proxy, "no trusted proxies configured");
    }
}
