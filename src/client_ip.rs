//! Who the client is: the TCP peer, unless that peer is a trusted proxy.
//!
//! Takes the TCP peer address, the configured trusted proxies, and (only from a trusted peer)
//! a PROXY protocol v2 header read off the connection or an `X-Forwarded-For` header; gives the
//! client IP that policy, rate limits and the audit trail use. A header from an untrusted peer
//! is never believed: a forged `X-Forwarded-For` changes nothing. Fails (drops the connection)
//! when a trusted peer that must speak PROXY protocol sends a malformed header.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use ppp::v2;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Which peers may speak for the client, and how.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    pub nets: Vec<IpNet>,
    /// Trusted peers put a PROXY protocol v2 header in front of every connection.
    pub proxy_protocol: bool,
}

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address for one request: the connection's address, or, when the
    /// connection comes from a trusted proxy, the right-most untrusted `X-Forwarded-For` entry.
    pub fn client_ip(&self, conn_ip: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let conn_ip = canonical(conn_ip);
        if !self.trusts(conn_ip) {
            return conn_ip;
        }
        let Some(xff) = forwarded_for else {
            return conn_ip;
        };
        let mut chain = xff.split(',').map(str::trim).rev();
        let mut last = conn_ip;
        for hop in chain.by_ref() {
            let Some(ip) = parse_hop(hop) else {
                // A malformed hop ends what can be believed; the last trusted hop stands.
                return last;
            };
            if !self.trusts(ip) {
                return ip;
            }
            last = ip;
        }
        last
    }
}

/// IPv4-mapped IPv6 addresses are compared and reported as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    // "1.2.3.4:5678" or "[::1]:5678"
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("PROXY header not received in time")]
    Timeout,
    #[error("reading PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed PROXY v2 header")]
    Malformed,
}

const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Reads exactly one PROXY protocol v2 header from `io` and gives the source address it
/// carries (`None` for a `LOCAL` command, e.g. load-balancer health checks).
pub async fn read_proxy_v2<R: AsyncRead + Unpin>(
    io: &mut R,
    timeout: Duration,
) -> Result<Option<IpAddr>, ProxyHeaderError> {
    tokio::time::timeout(timeout, async {
        let mut fixed = [0u8; 16];
        io.read_exact(&mut fixed).await?;
        if fixed[..12] != V2_SIGNATURE {
            return Err(ProxyHeaderError::Malformed);
        }
        let len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
        let mut header = Vec::with_capacity(16 + len);
        header.extend_from_slice(&fixed);
        header.resize(16 + len, 0);
        io.read_exact(&mut header[16..]).await?;
        let parsed =
            v2::Header::try_from(header.as_slice()).map_err(|_| ProxyHeaderError::Malformed)?;
        if parsed.command == v2::Command::Local {
            return Ok(None);
        }
        Ok(match parsed.addresses {
            v2::Addresses::IPv4(a) => Some(IpAddr::V4(a.source_address)),
            v2::Addresses::IPv6(a) => Some(canonical(IpAddr::V6(a.source_address))),
            _ => None,
        })
    })
    .await
    .map_err(|_| ProxyHeaderError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies {
            nets: nets.iter().map(|n| n.parse().unwrap()).collect(),
            proxy_protocol: false,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_forge_their_address() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), Some("1.2.3.4")),
            ip("203.0.113.9")
        );
        assert_eq!(t.client_ip(ip("203.0.113.9"), None), ip("203.0.113.9"));
        assert_eq!(
            trusted(&[]).client_ip(ip("10.0.0.1"), Some("1.2.3.4")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn trusted_proxies_give_the_right_most_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8", "fd00::/8"]);
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("198.51.100.7")),
            ip("198.51.100.7")
        );
        // A client-supplied left part cannot push a chosen address past the proxies.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("6.6.6.6, 198.51.100.7, 10.0.0.2")),
            ip("198.51.100.7")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("2001:db8::1, fd00::5")),
            ip("2001:db8::1")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("[2001:db8::2]:443")),
            ip("2001:db8::2")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("198.51.100.7:5555")),
            ip("198.51.100.7")
        );
        // Garbage ends the chain at the last trusted hop.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("1.1.1.1, junk, 10.0.0.3")),
            ip("10.0.0.3")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), Some("10.0.0.9")),
            ip("10.0.0.9")
        );
        // IPv4-mapped IPv6 peers match IPv4 nets.
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.1"), Some("198.51.100.7")),
            ip("198.51.100.7")
        );
    }

    fn v2_header(src: &str, dst: &str) -> Vec<u8> {
        let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (s, d),
        )
        .build()
        .unwrap()
    }

    #[tokio::test]
    async fn reads_exactly_one_v2_header() {
        let mut bytes = v2_header("198.51.100.7:40000", "10.0.0.5:8443");
        bytes.extend_from_slice(b"\x16\x03\x01rest-of-tls");
        let mut io = bytes.as_slice();
        let got = read_proxy_v2(&mut io, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got, Some(ip("198.51.100.7")));
        assert_eq!(
            io, b"\x16\x03\x01rest-of-tls",
            "the TLS bytes after the header are untouched"
        );
        let mut v6 = v2_header("[2001:db8::7]:1", "[2001:db8::1]:2");
        let mut io = v6.as_mut_slice() as &[u8];
        assert_eq!(
            read_proxy_v2(&mut io, Duration::from_secs(1))
                .await
                .unwrap(),
            Some(ip("2001:db8::7"))
        );
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_v2_header() {
        let mut io: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03aaaaaaaaaaaaaaaa";
        assert!(matches!(
            read_proxy_v2(&mut io, Duration::from_secs(1)).await,
            Err(ProxyHeaderError::Malformed)
        ));
        let mut io: &[u8] = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
        assert!(
            read_proxy_v2(&mut io, Duration::from_secs(1))
                .await
                .is_err()
        );
        let mut short = v2_header("198.51.100.7:40000", "10.0.0.5:8443");
        short.truncate(20);
        let mut io = short.as_slice();
        assert!(
            read_proxy_v2(&mut io, Duration::from_secs(1))
                .await
                .is_err()
        );
    }
}
