//! Serving a router over HTTP/1.1 with limits on slow, idle and greedy clients.
//!
//! `axum::serve` waits for a request head or body without end, keeps idle connections open for
//! ever and takes any number of connections from one address, so a handful of clients that send
//! half a request can hold a process's sockets. Every ChatBoard listener goes through [`serve`]
//! instead, which bounds all of that ([`HttpSettings`]):
//! - a connection waiting for its first or next request is closed after the idle timeout;
//! - once a request's first byte arrives, its whole head must follow within the header timeout;
//! - a request body may not stall longer than the body timeout between two pieces (the request
//!   fails, 408 from the API, and the connection closes);
//! - one address may hold only so many connections; the next is answered 503 and closed.
//!
//! The clocks run in the connection's I/O ([`GuardedStream`]) and stop once a connection is
//! upgraded to a WebSocket, whose liveness the gateway's pings look after. HTTP/2 is not
//! offered: TLS and HTTP/2 end at the ingress, which speaks HTTP/1.1 to the services.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::{Service, ServiceExt};
use tower_http::timeout::TimeoutBody;

use crate::config::HttpSettings;
use crate::error_code::ErrorCode;
use crate::shared_stream::SharedStream;

/// What a connection refused for having too many siblings from its address reads: the API's
/// error shape, written before its request is read.
fn too_many_connections() -> String {
    let code = ErrorCode::TooManyConnections;
    let body = serde_json::json!({ "detail": code.detail(), "code": code.code() }).to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Whether a request body failed because it stalled longer than the body timeout (the API
/// answers those 408 rather than 400).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Serves `service` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (WebSockets, already handed over, are their owner's to close).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    settings: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let counts = Arc::new(AddressCounts::new(settings.max_connections_per_ip));
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    // Our own clocks ([`GuardedStream`]) replace hyper's header timeout, which would also
    // start while a connection idles and so close keep-alive connections too soon.
    builder.http1().header_read_timeout(None);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = counts.admit(peer.ip()) else {
            tracing::debug!(%peer, "refused: too many connections from this address");
            // Best effort: a client that does not read its 503 just sees the close.
            let _ = stream.try_write(too_many_connections().as_bytes());
            continue;
        };
        // Small writes (WebSocket frames, short responses) go out at once instead of waiting
        // for Nagle's algorithm to coalesce them with later ones.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let clock = Arc::new(ConnectionClock::new());
        let stream = Arc::new(SharedStream::new(stream));
        let io = GuardedStream::new(stream.clone(), clock.clone(), settings, slot);
        let requests = RequestService {
            inner: service.clone(),
            socket: stream,
            clock,
            peer,
            body_timeout: settings.body_timeout,
        };
        let connection = builder.serve_connection_with_upgrades(
            TokioIo::new(io),
            hyper::service::service_fn(move |request| requests.clone().call(request)),
        );
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        // A client that stopped reading a response holds its connection open for as long as
        // it likes: the process's own shutdown (jobs, the database) must not wait for it.
        tracing::warn!(
            seconds = SHUTDOWN_DRAIN.as_secs(),
            "connections still answering at shutdown are dropped"
        );
    }
    Ok(())
}

/// How long a shutdown waits for requests being answered to finish.
pub const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Waits a little after a failed accept: out of file descriptors, spinning would only make it
/// worse; a connection reset before it was accepted needs no wait.
async fn pause_after_accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Open connections per client address.
struct AddressCounts {
    cap: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl AddressCounts {
    fn new(cap: u32) -> Self {
        Self {
            cap,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, unless it already holds the cap.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = address_of_host(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if self.cap != 0 && *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// The address a connection is counted under: an IPv4 address (IPv4-mapped ones included) as
/// it is, an IPv6 one by its /64, which one host is given whole and can rotate through.
fn address_of_host(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = !0u128 << 64;
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

/// One open connection of an address; gives its place back when the connection is dropped.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Where a connection stands between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request, since the instant given.
    Idle(Instant),
    /// Reading a request head whose first byte came at the instant given.
    Head(Instant),
    /// A request is being answered: the handler's own limits apply.
    Busy,
    /// A WebSocket now: no HTTP clocks.
    Upgraded,
}

/// A connection's phase, shared by its I/O (which sees bytes arrive) and its request service
/// (which sees heads parsed and responses finish).
struct ConnectionClock {
    state: Mutex<ClockState>,
}

struct ClockState {
    phase: Phase,
    /// The task of a read that found nothing while no clock ran: when a response finishes, a
    /// clock starts, and that read must look again to see it.
    parked_reader: Option<Waker>,
}

impl ConnectionClock {
    fn new() -> Self {
        Self {
            state: Mutex::new(ClockState {
                phase: Phase::Idle(Instant::now()),
                parked_reader: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: on an idle connection they start a request head.
    fn bytes_arrived(&self) {
        let mut state = self.lock();
        if let Phase::Idle(_) = state.phase {
            state.phase = Phase::Head(Instant::now());
        }
    }

    fn request_started(&self) {
        let mut state = self.lock();
        if state.phase != Phase::Upgraded {
            state.phase = Phase::Busy;
        }
    }

    fn response_finished(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Busy {
            state.phase = Phase::Idle(Instant::now());
            if let Some(reader) = state.parked_reader.take() {
                reader.wake();
            }
        }
    }

    /// The connection became a WebSocket: no clock runs any more. The HTTP connection's task
    /// parked here while the upgrade request was served is let go: a waker keeps its task's
    /// memory (the size of its whole future) alive, and the socket lives for hours.
    fn upgraded(&self) {
        let mut state = self.lock();
        state.phase = Phase::Upgraded;
        if let Some(reader) = state.parked_reader.take() {
            reader.wake();
        }
    }

    /// When a read that finds nothing to read should give up, if ever; with no clock running,
    /// the reader's task is kept to be woken when one starts.
    fn deadline(&self, settings: &HttpSettings, reader: &Waker) -> ReadClock {
        let mut state = self.lock();
        match state.phase {
            Phase::Idle(since) => ReadClock::Until(since + settings.idle_timeout),
            Phase::Head(since) => ReadClock::Until(since + settings.header_timeout),
            Phase::Busy => {
                state.parked_reader = Some(reader.clone());
                ReadClock::Paused
            }
            Phase::Upgraded => ReadClock::Off,
        }
    }
}

/// What limits a read that has to wait.
enum ReadClock {
    /// It fails at this instant.
    Until(Instant),
    /// Nothing until a clock starts again (a request is being served).
    Paused,
    /// Nothing, ever again (upgraded).
    Off,
}

/// A client's TCP stream whose reads fail with `TimedOut` once its phase's time is up, and
/// which holds the connection's place in its address's count.
struct GuardedStream {
    stream: Arc<SharedStream>,
    clock: Arc<ConnectionClock>,
    settings: HttpSettings,
    /// Dropped once the connection is upgraded: a timer left armed would hold the waker of the
    /// task that last polled it (the finished HTTP connection's) until it fired.
    timer: Option<Pin<Box<Sleep>>>,
    _slot: AddressSlot,
}

impl GuardedStream {
    fn new(
        stream: Arc<SharedStream>,
        clock: Arc<ConnectionClock>,
        settings: HttpSettings,
        slot: AddressSlot,
    ) -> Self {
        Self {
            stream,
            clock,
            timer: Some(Box::pin(tokio::time::sleep(settings.idle_timeout))),
            settings,
            _slot: slot,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match this.stream.poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let deadline = match this.clock.deadline(&this.settings, cx.waker()) {
                    ReadClock::Until(deadline) => deadline,
                    ReadClock::Paused => return Poll::Pending,
                    ReadClock::Off => {
                        this.timer = None;
                        return Poll::Pending;
                    }
                };
                // Gone only once upgraded, and an upgraded connection has no clock.
                let Some(timer) = this.timer.as_mut() else {
                    return Poll::Pending;
                };
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client too slow or idle too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            failed => failed,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_shutdown(cx)
    }
}

/// The connection's stream, in every request's extensions: after a WebSocket upgrade, its new
/// owner may write whole frames to it from elsewhere (see [`SharedStream`]).
#[derive(Clone, Debug)]
pub struct ConnectionStream(pub Arc<SharedStream>);

/// The router as one connection's hyper service: tells the clock about requests, bounds body
/// stalls and hands handlers the peer address.
#[derive(Clone)]
struct RequestService<S> {
    inner: S,
    socket: Arc<SharedStream>,
    clock: Arc<ConnectionClock>,
    peer: SocketAddr,
    body_timeout: Duration,
}

impl<S> RequestService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    fn call(
        self,
        request: hyper::Request<Incoming>,
    ) -> impl Future<Output = Result<Response, Infallible>> {
        self.clock.request_started();
        let timeout = self.body_timeout;
        let mut request = request.map(|body| Body::new(TimeoutBody::new(timeout, body)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        request
            .extensions_mut()
            .insert(ConnectionStream(self.socket.clone()));
        let clock = self.clock;
        let answer = self.inner.oneshot(request);
        async move {
            let response = answer.await?;
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                clock.upgraded();
                return Ok(response);
            }
            Ok(response.map(|body| Body::new(FinishingBody { body, clock })))
        }
    }
}

/// A response body that tells the clock when it is done with (sent or abandoned), so the idle
/// time counts from the end of the response.
struct FinishingBody {
    body: Body,
    clock: Arc<ConnectionClock>,
}

impl Drop for FinishingBody {
    fn drop(&mut self) {
        self.clock.response_finished();
    }
}

impl http_body::Body for FinishingBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn ipv6_connections_are_counted_by_their_64() {
        let host = |s: &str| address_of_host(s.parse().unwrap());
        assert_eq!(host("2001:db8:1:2:aaaa::1"), host("2001:db8:1:2:bbbb::9"));
        assert_ne!(host("2001:db8:1:2::1"), host("2001:db8:1:3::1"));
        assert_eq!(host("192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_eq!(
            host("::ffff:192.0.2.7"),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    use super::*;

    /// A waker that counts nothing, shared through an `Arc` whose count tells who holds it.
    struct Flag;

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {}
    }

    /// The HTTP connection's task, parked while the upgrade request is served, is let go when
    /// the connection is upgraded: its waker once stayed for the WebSocket's whole life, and
    /// with it 3.9 KiB per socket (the finished task's memory).
    #[test]
    fn an_upgrade_lets_the_parked_reader_go() {
        let clock = ConnectionClock::new();
        let flag = Arc::new(Flag);
        let waker = Waker::from(flag.clone());
        clock.request_started();
        let settings = HttpSettings::default();
        assert!(matches!(
            clock.deadline(&settings, &waker),
            ReadClock::Paused
        ));
        drop(waker);
        assert_eq!(Arc::strong_count(&flag), 2, "parked");
        clock.upgraded();
        assert_eq!(Arc::strong_count(&flag), 1, "let go");
        let other = Waker::from(Arc::new(Flag));
        assert!(matches!(clock.deadline(&settings, &other), ReadClock::Off));
    }
}
