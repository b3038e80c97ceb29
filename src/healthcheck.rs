//! `nearbytix healthcheck`: asks a running server's `/health` (for container health checks,
//! without curl in the image).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(5);

/// `Ok(())` when the server at `host:port` answers 200 on `/health`.
pub async fn check(host: IpAddr, port: u16) -> anyhow::Result<()> {
    // A server listening on every interface is reached through loopback.
    let host = match host {
        IpAddr::V4(address) if address.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(address) if address.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let address = SocketAddr::new(host, port);
    let status = tokio::time::timeout(TIMEOUT, request_status(address))
        .await
        .with_context(|| format!("no answer from {address} within {TIMEOUT:?}"))??;
    anyhow::ensure!(status == 200, "{address}/health answered {status}");
    Ok(())
}

async fn request_status(address: SocketAddr) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("cannot connect to {address}"))?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 256];
    while !head.windows(2).any(|pair| pair == b"\r\n") {
        let read = stream.read(&mut buffer).await?;
        anyhow::ensure!(read > 0, "connection closed before a status line");
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("malformed HTTP status line")
}
