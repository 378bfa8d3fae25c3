//! Accept loops, protocol sniffing and TCP-mode forwarding.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::Inner;
use super::metrics::ErrorReason;
use super::state::{EndpointRt, EpId, Load, PortRt, ep_id};
use crate::model::AppProtocol;

/// How long a dial may take before the endpoint counts as failed (`timeout`).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a Sniff port waits for the client's first bytes before choosing TCP mode.
pub(crate) const SNIFF_WAIT: Duration = Duration::from_millis(100);

/// Per-direction buffer of a TCP-mode connection (memory per connection is twice this).
const COPY_BUF: usize = 32 * 1024;

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniffed {
    Http,
    Other,
    /// A proper prefix of a method token: wait for more.
    NeedMore,
}

pub(crate) fn classify(first: &[u8]) -> Sniffed {
    let mut partial = false;
    for m in METHODS {
        if first.starts_with(m) {
            return Sniffed::Http;
        }
        partial |= m.starts_with(first);
    }
    if partial && !first.is_empty() {
        Sniffed::NeedMore
    } else {
        Sniffed::Other
    }
}

/// Waits (up to [`SNIFF_WAIT`]) for the client's first bytes without consuming them;
/// true when they start an HTTP/1.x request.
async fn sniff_http(stream: &TcpStream) -> bool {
    let deadline = Instant::now() + SNIFF_WAIT;
    let mut buf = [0u8; 8];
    loop {
        match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => match classify(&buf[..n]) {
                Sniffed::Http => return true,
                Sniffed::Other => return false,
                Sniffed::NeedMore => {
                    // Rare: a request line split in tiny segments. Peek again shortly.
                    if Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            _ => return false,
        }
    }
}

/// Accepts connections until aborted; each one is served on its own task by the port
/// `target` names at accept time.
pub(crate) async fn accept_loop(
    inner: Arc<Inner>,
    listener: TcpListener,
    target: Arc<RwLock<Arc<PortRt>>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let port = target.read().clone();
                tokio::spawn(serve_client(inner.clone(), port, stream, peer));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Decrements the port's open client connections on drop.
struct ActiveGuard(Arc<PortRt>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.m.active.fetch_sub(1, Relaxed);
    }
}

async fn serve_client(inner: Arc<Inner>, port: Arc<PortRt>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    port.m.connections.fetch_add(1, Relaxed);
    port.m.active.fetch_add(1, Relaxed);
    let _active = ActiveGuard(port.clone());
    let http = match port.snapshot().app_protocol {
        AppProtocol::Http => true,
        AppProtocol::Tcp => false,
        AppProtocol::Sniff => sniff_http(&stream).await,
    };
    let stream = CountingStream {
        inner: stream,
        port: port.clone(),
    };
    if http {
        super::http::serve(inner, port, stream, peer).await;
    } else {
        forward_tcp(&inner, &port, stream, peer).await;
    }
}

/// Dials `ep` through the network with [`CONNECT_TIMEOUT`]; TCP_NODELAY set.
pub(crate) async fn dial(inner: &Inner, ep: &EndpointRt) -> Result<TcpStream, ErrorReason> {
    match tokio::time::timeout(CONNECT_TIMEOUT, inner.network.dial(&ep.ep)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => {
            tracing::debug!(endpoint = %ep.addr, error = %e, "dial failed");
            Err(ErrorReason::Connect)
        }
        Err(_) => Err(ErrorReason::Timeout),
    }
}

/// TCP mode: one endpoint per connection (failing over on refused dials), bytes copied
/// both ways with half-close. No endpoint: the client connection is closed.
async fn forward_tcp(inner: &Inner, port: &PortRt, mut client: CountingStream, peer: SocketAddr) {
    let snap = port.snapshot();
    let mut tried: Vec<EpId> = Vec::new();
    let mut failed_dials = 0;
    loop {
        // Header routes are HTTP only.
        let Some(ep) = port.pick(&snap, peer.ip(), &tried, None) else {
            if failed_dials == 0 {
                port.m.no_endpoints.fetch_add(1, Relaxed);
            }
            return;
        };
        tried.push(ep_id(&ep));
        let Some(guard) = ep.try_acquire(Load::Conn) else {
            continue;
        };
        match dial(inner, &ep).await {
            Ok(mut backend) => {
                ep.m.connections.fetch_add(1, Relaxed);
                if tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut backend,
                    COPY_BUF,
                    COPY_BUF,
                )
                .await
                .is_err()
                {
                    ep.m.error(ErrorReason::BackendReset);
                }
                drop(guard);
                return;
            }
            Err(reason) => {
                ep.m.error(reason);
                failed_dials += 1;
            }
        }
    }
}

/// The client side of a connection, counting bytes into the port's metrics.
pub(crate) struct CountingStream {
    inner: TcpStream,
    port: Arc<PortRt>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.port.m.bytes_in.fetch_add(n as u64, Relaxed);
        }
        r
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.port.m.bytes_out.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            this.port.m.bytes_out.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_classifies() {
        assert_eq!(classify(b"GET / HTTP/1.1"), Sniffed::Http);
        assert_eq!(classify(b"OPTIONS "), Sniffed::Http);
        assert_eq!(classify(b"GE"), Sniffed::NeedMore);
        assert_eq!(classify(b"GETX"), Sniffed::Other);
        assert_eq!(classify(b"\x16\x03\x01"), Sniffed::Other);
        assert_eq!(classify(b"SSH-2.0"), Sniffed::Other);
    }
}
