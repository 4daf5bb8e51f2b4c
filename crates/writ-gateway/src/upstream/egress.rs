//! Egress policy: upstream addresses in loopback, private, link-local, metadata and other
//! non-public ranges are refused unless the operator allows them for that upstream
//! (DESIGN §6). Checked on every resolution, so a name that later resolves somewhere
//! private (DNS rebinding) is refused too; redirects are never followed.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower_service::Service;

/// Whether `ip` is outside the public internet: loopback, private (RFC 1918), link-local
/// (with cloud metadata at 169.254.169.254), shared (CGNAT, also used for metadata),
/// unspecified, broadcast, multicast, reserved, ULA and site-local, and the IPv4 address
/// inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 addresses.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        forbidden_v4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ))
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
        || (s[..6] == [0; 6] && embedded(s[6], s[7])) // IPv4-compatible ::a.b.c.d
        || (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(s[6], s[7])) // NAT64
        || (s[0] == 0x2002 && embedded(s[1], s[2])) // 6to4
}

/// The system resolver, keeping only addresses the policy allows.
#[derive(Clone)]
pub struct EgressResolver {
    inner: GaiResolver,
    allow_private: bool,
}

impl EgressResolver {
    /// A resolver that drops forbidden addresses unless `allow_private`.
    pub fn new(allow_private: bool) -> Self {
        Self {
            inner: GaiResolver::new(),
            allow_private,
        }
    }
}

impl Service<Name> for EgressResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolving = self.inner.call(name);
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = resolving
                .await?
                .filter(|a| allow || !is_forbidden(a.ip()))
                .collect();
            if addrs.is_empty() {
                tracing::warn!(
                    "upstream refused: it resolves only to private or metadata addresses"
                );
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "upstream resolves only to addresses outside the public internet",
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_non_public_range() {
        for ip in [
            "127.0.0.1",
            "127.255.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:0001::1",
            "fec0::1",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "104.18.6.192",
            "172.32.0.1",
            "2606:4700::6810:85e5",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn the_resolver_filters_what_getaddrinfo_returns() {
        // Octal and hex spellings reach getaddrinfo, which reads them as 127.0.0.1.
        for host in ["localhost", "0x7f000001", "017700000001", "127.1"] {
            let mut r = EgressResolver::new(false);
            let name: Name = host.parse().unwrap();
            let refused = r.call(name).await.err().map(|e| e.kind());
            assert_eq!(refused, Some(io::ErrorKind::PermissionDenied), "{host}");
        }
        let mut allowed = EgressResolver::new(true);
        assert!(allowed.call("localhost".parse().unwrap()).await.is_ok());
    }
}
