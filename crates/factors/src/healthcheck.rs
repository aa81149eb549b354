//! `factors healthcheck`: asks a running service's `/readyz` whether it is ready, for a
//! container's HEALTHCHECK (the image has no curl). The service's own address comes from
//! the same settings `serve` reads; only the check itself lives here, so tests can point
//! it at any server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};

/// Where to reach a server that listens on `listen`: a wildcard address (`0.0.0.0`, `[::]`)
/// accepts on loopback too, and is no address to connect to.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// GETs `http://<addr>/readyz` and returns its body when it answers 200 within `timeout`.
///
/// # Errors
/// When the server cannot be reached, does not answer within `timeout`, or answers
/// anything but 200 (the error then carries the status and the body, which names the
/// dependency that is down).
pub async fn check(addr: SocketAddr, timeout: Duration) -> anyhow::Result<String> {
    let url = format!("http://{addr}/readyz");
    // No proxy: a proxy from the environment (HTTP_PROXY) could not reach our loopback.
    let client = reqwest::Client::builder().no_proxy().build().context("building the HTTP client")?;
    // The URL leads the message once; reqwest's errors would repeat it.
    let answer = async {
        let response = client.get(&url).send().await.map_err(reqwest::Error::without_url)?;
        let status = response.status();
        let body = response.text().await.map_err(reqwest::Error::without_url)?;
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = match tokio::time::timeout(timeout, answer).await {
        Ok(answered) => answered.with_context(|| format!("GET {url}"))?,
        Err(_) => bail!("GET {url}: no answer within {}", humantime::format_duration(timeout)),
    };
    if status != reqwest::StatusCode::OK {
        bail!("GET {url} answered {status}: {}", body.trim());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tokio::net::TcpListener;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(3);

    /// Serves `router` on a free loopback port until the test ends.
    async fn serve(router: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    fn readyz(status: StatusCode, body: &'static str) -> Router {
        Router::new().route("/readyz", get(move || async move { (status, body) }))
    }

    #[tokio::test]
    async fn a_ready_service_passes_with_its_readiness_body() {
        let addr = serve(readyz(StatusCode::OK, r#"{"status":"ready"}"#)).await;

        let body = check(addr, TIMEOUT).await.expect("ready");

        assert_eq!(body, r#"{"status":"ready"}"#);
    }

    #[tokio::test]
    async fn an_unready_service_fails_with_the_status_and_what_is_down() {
        let addr = serve(readyz(StatusCode::SERVICE_UNAVAILABLE, r#"{"dependencies":{"postgres":"down"}}"#)).await;

        let error = check(addr, TIMEOUT).await.expect_err("not ready").to_string();

        assert!(error.contains("503"), "{error}");
        assert!(error.contains(r#""postgres":"down""#), "{error}");
    }

    #[tokio::test]
    async fn a_service_without_a_readyz_route_fails() {
        let addr = serve(Router::new()).await;

        let error = check(addr, TIMEOUT).await.expect_err("404").to_string();

        assert!(error.contains("404"), "{error}");
    }

    #[tokio::test]
    async fn nothing_listening_fails_at_once() {
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
            listener.local_addr().expect("has an address")
        };

        let error = format!("{:#}", check(addr, TIMEOUT).await.expect_err("refused"));

        assert_eq!(error.matches(&addr.to_string()).count(), 1, "names the address once: {error}");
        assert!(error.contains("Connection refused"), "{error}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        // Accepts and keeps the connection open without a word.
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });

        let error = check(addr, Duration::from_millis(200)).await.expect_err("timed out").to_string();

        assert!(error.contains("no answer within 200ms"), "{error}");
    }

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback_with_their_port() {
        let cases = [
            ("0.0.0.0:8080", "127.0.0.1:8080", "IPv4 wildcard"),
            ("[::]:9000", "[::1]:9000", "IPv6 wildcard"),
            ("127.0.0.1:8080", "127.0.0.1:8080", "IPv4 loopback stays"),
            ("10.1.2.3:80", "10.1.2.3:80", "a specific address stays"),
        ];
        for (listen, probed, case) in cases {
            let listen: SocketAddr = listen.parse().expect(case);
            assert_eq!(probe_addr(listen).to_string(), probed, "{case}");
        }
    }
}
