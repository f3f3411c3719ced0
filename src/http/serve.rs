//! The HTTP listener: accepts connections (plain or TLS), bounds them, and
//! serves the router on each until shutdown.
//!
//! Contract:
//! - At most `http.max_connections` connections are open at once; beyond
//!   that the listener stops accepting (new clients wait in the kernel's
//!   backlog) instead of growing memory or file descriptors, and closes
//!   every connection that is idle between requests, so the waiting
//!   clients (a health check among them) get in at once rather than after
//!   the idle timeout.
//! - A client must send each request's headers within `http.header_timeout`
//!   of their first byte (and finish a TLS handshake within it), send its
//!   body within `http.body_timeout`, and an idle keep-alive connection is
//!   closed after `http.idle_timeout`. A slow client costs a connection
//!   slot for at most these times, never the daemon.
//! - Each request carries the remote address (`ConnectInfo`) and, over TLS
//!   with a verified client certificate, its subject ([`PeerSubject`]).
//! - When `shutdown` completes the listener closes, open connections are
//!   asked to finish their current request, and whatever is still open
//!   after `deadline` is dropped: shutdown is bounded.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::auth::PeerSubject;
use super::tls::{self, Tls};
use crate::config::HttpSettings;

/// Serves `app` on `listener` until `shutdown` completes (see the module
/// contract), then drains for at most `deadline`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &HttpSettings,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
    deadline: Duration,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    // Wakes the idle connections to close when every permit is taken.
    let reclaim = Arc::new(Notify::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let app = app.layer(axum::middleware::map_request(deadline_body(
        settings.body_timeout,
    )));
    loop {
        // At the limit: close the idle connections, again every second
        // while busy ones keep every slot.
        let permit = loop {
            if let Ok(p) = permits.clone().try_acquire_owned() {
                break Some(p);
            }
            tracing::debug!(
                max_connections = settings.max_connections,
                "at the connection limit; closing idle connections"
            );
            reclaim.notify_waiters();
            tokio::select! {
                p = permits.clone().acquire_owned() => break p.ok(),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = &mut shutdown => break None,
            }
        };
        let Some(permit) = permit else { break };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        let header_timeout = settings.header_timeout;
        let idle_timeout = settings.idle_timeout;
        let reclaim = reclaim.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                // Hyper starts this timer whenever it waits for a request's
                // head, so it is the idle keep-alive limit; the header
                // deadline proper is `HeaderDeadline`'s.
                .header_read_timeout(idle_timeout)
                .keep_alive(true);
            match tls {
                None => {
                    let svc = service(app, remote, None);
                    let io =
                        TokioIo::new(HeaderDeadline::new(stream, header_timeout, Some(reclaim)));
                    let conn = builder.serve_connection(io, svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(remote = %remote, error = %e, "connection ended");
                    }
                }
                Some(tls) => {
                    let accept = tls.acceptor().accept(stream);
                    let stream = match tokio::time::timeout(header_timeout, accept).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(remote = %remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(remote = %remote, "TLS handshake timed out");
                            return;
                        }
                    };
                    let subject = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| tls::subject(c.as_ref()));
                    let svc = service(app, remote, subject);
                    let io =
                        TokioIo::new(HeaderDeadline::new(stream, header_timeout, Some(reclaim)));
                    let conn = builder.serve_connection(io, svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(remote = %remote, error = %e, "connection ended");
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "listener closed; finishing open requests"
    );
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?deadline,
            "connections still open at the shutdown deadline were dropped"
        );
    }
    Ok(())
}

/// The router as a hyper service, each request tagged with where it came
/// from.
fn service(
    app: Router,
    remote: SocketAddr,
    subject: Option<String>,
) -> TowerToHyperService<
    impl tower::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone,
> {
    let svc = app.map_request(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        if let Some(s) = &subject {
            req.extensions_mut().insert(PeerSubject(s.clone()));
        }
        req
    });
    TowerToHyperService::new(svc)
}

/// A request body that must arrive completely within `timeout` of the
/// request: a body trickled in byte by byte fails instead of holding its
/// connection and memory for ever.
fn deadline_body(
    timeout: Duration,
) -> impl Fn(axum::extract::Request) -> std::future::Ready<axum::extract::Request>
       + Clone
       + Send
       + Sync
       + 'static {
    move |req: axum::extract::Request| {
        let (parts, body) = req.into_parts();
        let body = Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        });
        std::future::ready(axum::extract::Request::from_parts(parts, body))
    }
}

/// See [`deadline_body`].
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?} (http.body_timeout)")]
pub struct BodyTimeout(pub Duration);

impl HttpBody for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection stands, as far as the header deadline goes.
enum Phase {
    /// Between requests: hyper's idle timeout applies.
    Idle,
    /// A request's first byte arrived; its head has not ended (the last
    /// three bytes seen, to find its end across reads).
    Head { tail: [u8; 3] },
    /// The head arrived; the request is being handled.
    Busy,
}

/// A connection whose request heads must arrive within a deadline of
/// their first byte (the end of a head is the first blank line, CR LF
/// CR LF). Reading past the deadline fails with `TimedOut`, which closes
/// the connection. Between requests, a notification on `reclaim` (the
/// listener is at its connection limit) closes it too.
struct HeaderDeadline<IO> {
    io: IO,
    timeout: Duration,
    phase: Phase,
    sleep: Pin<Box<Sleep>>,
    reclaim: Option<Arc<Notify>>,
    /// Registered while idle, so a `notify_waiters` reaches it.
    reclaimed: Option<Pin<Box<OwnedNotified>>>,
}

impl<IO> HeaderDeadline<IO> {
    fn new(io: IO, timeout: Duration, reclaim: Option<Arc<Notify>>) -> Self {
        HeaderDeadline {
            io,
            timeout,
            phase: Phase::Idle,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            reclaim,
            reclaimed: None,
        }
    }

    /// True when the listener asked idle connections to close.
    fn reclaimed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(notify) = &self.reclaim else {
            return false;
        };
        let notified = self
            .reclaimed
            .get_or_insert_with(|| Box::pin(notify.clone().notified_owned()));
        if notified.as_mut().poll(cx).is_ready() {
            self.reclaimed = None;
            return true;
        }
        false
    }

    /// Follows the head through newly read bytes (nothing to do while a
    /// request is being handled).
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || matches!(self.phase, Phase::Busy) {
            return;
        }
        if let Phase::Idle = self.phase {
            self.phase = Phase::Head { tail: [0; 3] };
            let deadline = Instant::now() + self.timeout;
            self.sleep.as_mut().reset(deadline);
        }
        if let Phase::Head { tail } = &mut self.phase {
            // The blank line may straddle the previous read: look at the
            // last three bytes seen followed by the first three new ones,
            // then within the new bytes.
            let mut joint = [0u8; 6];
            joint[..3].copy_from_slice(tail);
            let head = bytes.len().min(3);
            joint[3..3 + head].copy_from_slice(&bytes[..head]);
            if joint[..3 + head].windows(4).any(|w| w == b"\r\n\r\n")
                || bytes.windows(4).any(|w| w == b"\r\n\r\n")
            {
                self.phase = Phase::Busy;
                return;
            }
            let mut next = [0u8; 3];
            let keep = &joint[..3 + head];
            let keep = if bytes.len() >= 3 {
                &bytes[bytes.len() - 3..]
            } else {
                &keep[keep.len() - 3..]
            };
            next.copy_from_slice(keep);
            *tail = next;
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HeaderDeadline<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.saw(&buf.filled()[before..]);
                if !matches!(self.phase, Phase::Idle) {
                    self.reclaimed = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if matches!(self.phase, Phase::Head { .. })
                    && self.sleep.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time (http.header_timeout)",
                    )));
                }
                if matches!(self.phase, Phase::Idle) && self.reclaimed(cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "idle connection closed: the listener is at http.max_connections",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HeaderDeadline<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            // A response is on its way: the next bytes start a new request.
            self.phase = Phase::Idle;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.phase = Phase::Idle;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The most connections this process can hold open, from its file limit:
/// `wanted`, or less with a warning when the limit would be reached first
/// (some descriptors are kept for the database, Kafka and actions).
pub fn connection_limit(wanted: usize) -> usize {
    const RESERVED: u64 = 128;
    let Some(soft) = open_files_limit() else {
        return wanted;
    };
    let room = soft.saturating_sub(RESERVED).max(16) as usize;
    if wanted > room {
        tracing::warn!(
            http_max_connections = wanted,
            open_files_limit = soft,
            using = room,
            "http.max_connections is above what the open-files limit allows; raise `ulimit -n` (LimitNOFILE=) to use it"
        );
        room
    } else {
        wanted
    }
}

/// The soft `Max open files` limit of this process (Linux `/proc`).
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_head_ends_at_the_first_blank_line_even_across_reads() {
        let mut d = HeaderDeadline::new((), Duration::from_secs(10), None);
        d.saw(b"GET / HTTP/1.1\r\nHost: x\r");
        assert!(matches!(d.phase, Phase::Head { .. }));
        d.saw(b"\n\r");
        assert!(matches!(d.phase, Phase::Head { .. }));
        d.saw(b"\nbody");
        assert!(matches!(d.phase, Phase::Busy));
        // The next request, its blank line split after one byte.
        d.phase = Phase::Idle;
        d.saw(b"POST / HTTP/1.1\r\nA: b\r\n\r");
        assert!(matches!(d.phase, Phase::Head { .. }));
        d.saw(b"\n");
        assert!(matches!(d.phase, Phase::Busy));
        d.phase = Phase::Idle;
        d.saw(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(d.phase, Phase::Busy), "all in one read");
    }

    #[test]
    fn the_open_files_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
        assert!(connection_limit(1) == 1);
    }
}
