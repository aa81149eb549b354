//! Where a request came from, for the events it causes ([`Origin`]): the client's address,
//! its user agent, the request id and the trace id. Worked out once per request, in the
//! layer REST, gRPC, gRPC-web and Connect share ([`crate::observe`]), and handed on in the
//! request's extensions to whoever authenticates the caller (`Caller::with_origin`).
//!
//! The client's address is the connection's peer, unless the peer is one of the trusted
//! proxies: then it is read from the forwarding header the operator named, walking from
//! the right (the entry the nearest proxy wrote) past every trusted proxy. Entries left of
//! the first untrusted one are the client's own say and never read, so a client cannot
//! choose the address its events record. The header is named, not guessed: a proxy that
//! writes `X-Forwarded-For` passes a client's own `Forwarded` through untouched.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, HeaderName};
use factors_domain::Origin;
use ipnet::IpNet;
use opentelemetry::trace::TraceContextExt;
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{REQUEST_ID, traces};

/// Which header trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239's `Forwarded: for=client, for=proxy1` (Envoy can, some CDNs do).
    Forwarded,
}

/// How the client's address is found: the proxies trusted to name it, and their header.
#[derive(Debug, Clone, Default)]
pub struct ClientAddresses(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
}

impl ClientAddresses {
    /// Trusts the proxies `trusted` names (addresses, or networks as `10.0.0.0/8`) to say
    /// in `header` whom they forward for. None trusted: the peer is the client.
    ///
    /// # Errors
    /// The first entry that is neither an address nor a network.
    pub fn new(trusted: &[String], header: ForwardedHeader) -> Result<Self, String> {
        let trusted = trusted
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{entry:?} is neither an IP address nor a network like 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(Arc::new(Inner { trusted, header })))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.trusted.iter().any(|net| net.contains(&address))
    }

    /// The client's address, for a connection from `peer` with `headers`. `None` when the
    /// peer is not known (a request made in process), or when a trusted proxy says it does
    /// not know (`for=unknown`, or an entry that is no address).
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = peer?.to_canonical();
        if !self.trusts(client) {
            return Some(client);
        }
        let hops = match self.0.header {
            ForwardedHeader::XForwardedFor => forwarded_for_hops(headers),
            ForwardedHeader::Forwarded => forwarded_hops(headers),
        };
        for hop in hops.into_iter().rev() {
            client = hop?.to_canonical();
            if !self.trusts(client) {
                return Some(client);
            }
        }
        // Every hop is trusted: the client is inside, and the leftmost is it.
        Some(client)
    }
}

/// The entries of every `X-Forwarded-For` line, in order: an address each, or `None` for
/// one that is not.
fn forwarded_for_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|line| line.to_str().unwrap_or("?").split(','))
        .map(|entry| address(entry.trim()))
        .collect()
}

/// The `for=` of each element of every `Forwarded` line (RFC 7239), in order; `None` for an
/// element without one, or whose node is `unknown`, obfuscated (`_hidden`) or malformed.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|line| line.to_str().unwrap_or("?").split(','))
        .map(|element| {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
            })?;
            address(node.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(node))
        })
        .collect()
}

/// An address written bare (`192.0.2.1`, `2001:db8::1`), with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) or bracketed (`[2001:db8::1]`).
fn address(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .or_else(|_| node.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| node.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The [`Origin`] of `request`, as the client addresses are found. Called inside the
/// request span ([`crate::observe`]), whose trace id it records when traces are on.
pub(crate) fn of_request(clients: &ClientAddresses, request: &Request) -> Origin {
    let headers = request.headers();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
    let text = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let trace_id = traces::enabled()
        .then(|| tracing::Span::current().context().span().span_context().trace_id())
        .filter(|id| *id != opentelemetry::trace::TraceId::INVALID)
        .map(|id| id.to_string());
    Origin::of_request(clients.client_address(peer, headers), text(USER_AGENT), text(REQUEST_ID), trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().expect("a header value"));
        }
        headers
    }

    fn behind(trusted: &[&str], header: ForwardedHeader) -> ClientAddresses {
        ClientAddresses::new(&trusted.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(), header).expect("valid")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let clients = ClientAddresses::default();
        let spoofed = headers(&[("x-forwarded-for", "198.51.100.1"), ("forwarded", "for=198.51.100.2")]);
        assert_eq!(clients.client_address(Some(ip("203.0.113.9")), &spoofed), Some(ip("203.0.113.9")));
        assert_eq!(clients.client_address(None, &spoofed), None, "no peer, no address");
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let clients = behind(&["10.0.0.0/8", "192.0.2.1"], ForwardedHeader::XForwardedFor);
        let peer = Some(ip("10.0.0.5"));
        // The client claims to be 1.1.1.1; the proxies append what they saw.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7"), ("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(clients.client_address(peer, &chain), Some(ip("203.0.113.7")));
        // An untrusted peer's header is its own say.
        assert_eq!(clients.client_address(Some(ip("198.51.100.4")), &chain), Some(ip("198.51.100.4")));
        // A trusted peer that forwards nothing: the peer itself.
        assert_eq!(clients.client_address(peer, &HeaderMap::new()), peer);
        // Every hop trusted: the leftmost, inside.
        let inside = headers(&[("x-forwarded-for", "10.1.2.3, 10.0.0.9")]);
        assert_eq!(clients.client_address(peer, &inside), Some(ip("10.1.2.3")));
        // Ports, brackets and mapped IPv4 are read as the address they carry.
        let ported = headers(&[("x-forwarded-for", "[2001:db8::7]:443, ::ffff:10.0.0.2")]);
        assert_eq!(clients.client_address(peer, &ported), Some(ip("2001:db8::7")));
        // What a trusted proxy wrote and is no address: unknown, not guessed.
        let garbled = headers(&[("x-forwarded-for", "203.0.113.7, not-an-ip")]);
        assert_eq!(clients.client_address(peer, &garbled), None);
    }

    #[test]
    fn the_forwarded_header_is_read_only_when_named_and_then_by_its_for_parameters() {
        let chain = headers(&[
            ("x-forwarded-for", "198.51.100.66"),
            ("forwarded", r#"for=1.1.1.1, for="[2001:db8::7]:4711";proto=https, by=10.0.0.1;FOR=10.0.0.3"#),
        ]);
        let peer = Some(ip("10.0.0.5"));
        let forwarded = behind(&["10.0.0.0/8"], ForwardedHeader::Forwarded);
        assert_eq!(forwarded.client_address(peer, &chain), Some(ip("2001:db8::7")));
        let x_forwarded_for = behind(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(x_forwarded_for.client_address(peer, &chain), Some(ip("198.51.100.66")));
        let hidden = headers(&[("forwarded", "for=203.0.113.7, for=_hidden")]);
        assert_eq!(forwarded.client_address(peer, &hidden), None);
    }

    #[test]
    fn a_trusted_entry_that_is_no_address_or_network_is_refused_by_name() {
        let refused = ClientAddresses::new(&["10.0.0.0/8".into(), "proxy.internal".into()], ForwardedHeader::default())
            .expect_err("refused");
        assert!(refused.contains("\"proxy.internal\""), "{refused}");
        assert!(
            ClientAddresses::new(&["2001:db8::/32".into(), " 192.0.2.1 ".into()], ForwardedHeader::default()).is_ok()
        );
    }
}
