//! Connection limits in front of the HTTP server: at most `max_connections` sockets are served
//! at once (more wait in the kernel's accept queue instead of costing file descriptors and
//! memory), and a connection that neither sends nor receives a byte for `idle_timeout` is
//! closed, whether it idles between requests or stalls half-way through a request's headers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// File descriptors kept free for the database pool, logs and the like.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises this process's open-file limit to its hard limit (as far as 65 536) and returns how
/// many connections fit below it, so the cap is reached before the kernel refuses `accept`.
pub fn connections_that_fit(wanted: usize) -> usize {
    let limit = raise_open_file_limit();
    match limit {
        Some(limit) if (limit.saturating_sub(RESERVED_DESCRIPTORS) as usize) < wanted => {
            let fit = limit.saturating_sub(RESERVED_DESCRIPTORS).max(16) as usize;
            tracing::warn!(
                wanted,
                fit,
                open_file_limit = limit,
                "MAX_CONNECTIONS lowered to fit the open-file limit (raise `ulimit -n`)"
            );
            fit
        }
        _ => wanted,
    }
}

#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        let target = limit.rlim_max.min(65_536);
        if limit.rlim_cur < target {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = target;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

pub struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
}

impl LimitedListener {
    pub fn new(inner: TcpListener, max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            idle_timeout,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (LimitedStream, SocketAddr) {
        // Wait for a free slot before accepting: beyond the cap, clients queue in the backlog.
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(slot) => slot,
            Err(_) => unreachable!("the semaphore is never closed"),
        };
        let (stream, address) = axum::serve::Listener::accept(&mut self.inner).await;
        (LimitedStream::new(stream, slot, self.idle_timeout), address)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A served socket: holds its slot until closed, and fails its next read once it has been
/// idle for the timeout (which makes the server close it).
pub struct LimitedStream {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    /// When a byte last went either way; the timer is moved only when it fires, not on every
    /// read and write (resetting a timer takes the timer wheel's lock).
    last_active: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl LimitedStream {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        Self {
            stream,
            _slot: slot,
            idle_timeout,
            last_active: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    fn active(&mut self) {
        self.last_active = Instant::now();
    }

    /// Whether the socket has been silent for the whole timeout; otherwise the timer is moved
    /// to the end of the current quiet spell and will wake this task then.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last_active + self.idle_timeout;
            if due <= Instant::now() {
                return true;
            }
            self.deadline.as_mut().reset(due);
        }
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            // Nothing to read: idle unless the deadline is still ahead.
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.active();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
