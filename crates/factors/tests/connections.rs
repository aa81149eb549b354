//! The server's ports against the real service (on the embedded store, so nothing needs
//! to be installed): slow and idle clients may not hold a connection longer than the
//! limits allow, connections beyond the cap are closed at once, and an admin port takes
//! `/metrics` off the public one.

use std::time::{Duration, Instant};

use factors::{Application, Environment, Settings};
use factors_testing::TestSqliteFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _file: TestSqliteFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn server(header_read_timeout: Duration, idle_timeout: Duration, max_connections: usize) -> Server {
    let file = TestSqliteFile::new();
    let mut settings = Settings::load(Environment::Test).expect("test settings").settings;
    settings.database.url = Some(file.url().to_owned().into());
    settings.server.header_read_timeout = header_read_timeout;
    settings.server.idle_timeout = idle_timeout;
    settings.server.max_connections = max_connections;
    let app = Application::build(&settings).await.expect("builds");
    let addr = app.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), _file: file }
}

/// Reads until the server closes the connection; how long that took, and what it sent.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => panic!("still open after {limit:?}; received {:?}", String::from_utf8_lossy(&received)),
        }
    }
    (started.elapsed(), String::from_utf8_lossy(&received).into_owned())
}

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: factors\r\n\r\n";

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_header_timeout() {
    let server = server(Duration::from_secs(1), Duration::from_secs(60), 64).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connects");

    let (after, _) = until_closed(&mut silent, Duration::from_secs(5)).await;

    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test]
async fn a_busy_keep_alive_connection_outlives_the_header_timeout() {
    // The header timeout bounds each request's headers, not the connection: a client that
    // keeps one connection busy for longer must get every answer on it.
    let server = server(Duration::from_millis(500), Duration::from_secs(60), 64).await;
    let mut busy = TcpStream::connect(server.addr).await.expect("connects");
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_millis(1600) {
        busy.write_all(GET_HEALTHZ).await.expect("sent");
        let mut buffer = [0u8; 4096];
        let read =
            tokio::time::timeout(Duration::from_secs(2), busy.read(&mut buffer)).await.expect("answered in time");
        let n = read.expect("readable");
        assert!(n > 0, "closed after {:?} and {answered} answers", started.elapsed());
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"), "answer {answered}");
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered > 20, "{answered} answers");
}

#[tokio::test]
async fn a_half_sent_header_is_cut_off_after_the_header_timeout() {
    let server = server(Duration::from_secs(1), Duration::from_secs(60), 64).await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connects");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: factors\r\n").await.expect("sent in part");

    let (after, _) = until_closed(&mut slow, Duration::from_secs(5)).await;

    assert!(after < Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = server(Duration::from_secs(30), Duration::from_secs(1), 64).await;
    let mut client = TcpStream::connect(server.addr).await.expect("connects");
    client.write_all(GET_HEALTHZ).await.expect("sent");

    let (after, answer) = until_closed(&mut client, Duration::from_secs(5)).await;

    assert!(answer.starts_with("HTTP/1.1 200"), "answered first: {answer}");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_served_again_once_others_end() {
    let server = server(Duration::from_secs(30), Duration::from_secs(30), 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connects");
        // A first exchange proves the server took this connection up.
        stream.write_all(GET_HEALTHZ).await.expect("sent");
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.expect("answered");
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }

    let mut over = TcpStream::connect(server.addr).await.expect("the kernel accepts it");
    let _ = over.write_all(GET_HEALTHZ).await;
    let (after, answer) = until_closed(&mut over, Duration::from_secs(5)).await;
    assert!(answer.is_empty() && after < Duration::from_secs(1), "closed unanswered, after {after:?}: {answer}");

    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(server.addr).await.expect("connects");
    again.write_all(GET_HEALTHZ).await.expect("sent");
    let mut buffer = [0u8; 1024];
    let n = again.read(&mut buffer).await.expect("answered");
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buffer[..n]));
}

#[tokio::test]
async fn an_admin_port_serves_metrics_and_health_and_takes_metrics_off_the_public_port() {
    let file = TestSqliteFile::new();
    let mut settings = Settings::load(Environment::Test).expect("test settings").settings;
    settings.database.url = Some(file.url().to_owned().into());
    settings.server.admin_addr = Some("127.0.0.1:0".parse().expect("an address"));
    let app = Application::build(&settings).await.expect("builds");
    let (public, admin) = (format!("http://{}", app.addr()), format!("http://{}", app.admin_addr().expect("bound")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let status = |url: String| async move { reqwest::get(url).await.expect("answers").status().as_u16() };
    assert_eq!(status(format!("{public}/metrics")).await, 404, "not on the public port");
    assert_eq!(status(format!("{public}/readyz")).await, 200, "health stays on the public port too");
    for path in ["/healthz", "/readyz"] {
        assert_eq!(status(format!("{admin}{path}")).await, 200, "{path}");
    }
    let metrics = reqwest::get(format!("{admin}/metrics")).await.expect("answers").text().await.expect("text");
    assert!(metrics.contains("factors_http_requests_total"), "{metrics}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("both ports stop")
        .expect("joined")
        .expect("clean");
    assert!(TcpStream::connect(admin.trim_start_matches("http://")).await.is_err(), "the admin port is closed");
}
