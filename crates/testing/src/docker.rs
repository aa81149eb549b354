//! Whether a Docker engine answers, asked the cheap way: `GET /_ping` on its socket.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PING: &[u8] = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";

/// True when the engine at `DOCKER_HOST` (or the default socket) answers a ping within a second.
pub async fn engine_answers() -> bool {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
    tokio::time::timeout(Duration::from_secs(1), ping(&host)).await.unwrap_or(false)
}

async fn ping(host: &str) -> bool {
    let mut answer = Vec::new();
    let sent = if let Some(path) = host.strip_prefix("unix://") {
        match tokio::net::UnixStream::connect(path).await {
            Ok(mut stream) => stream.write_all(PING).await.is_ok() && stream.read_to_end(&mut answer).await.is_ok(),
            Err(_) => false,
        }
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut stream) => stream.write_all(PING).await.is_ok() && stream.read_to_end(&mut answer).await.is_ok(),
            Err(_) => false,
        }
    } else {
        false
    };
    sent && answer.starts_with(b"HTTP/1.") && answer.windows(6).any(|w| w == b" 200 O")
}
