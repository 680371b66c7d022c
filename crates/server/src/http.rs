//! Layers every request goes through: a request id (a caller's short `X-Request-Id`, or made), a
//! tracing span carrying it, metrics by matched route, and panics turned into JSON 500s.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::map_request_body::MapRequestBodyLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::metrics::{HttpLabels, RouteLabels};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Copy)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _req: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&wagate_domain::id::new_id("req")).ok().map(RequestId::new)
    }
}

pub fn with_layers(router: Router, state: AppState) -> Router {
    let body_timeout = state.config.http.body_timeout();
    router
        .route_layer(middleware::from_fn_with_state(state, record_metrics))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")
                .into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeId))
        .layer(middleware::map_request(drop_unsafe_request_id))
        .layer(middleware::from_fn(drain_refused_body))
        .layer(MapRequestBodyLayer::new(move |body| Body::new(DeadlineBody::new(body, body_timeout))))
}

/// The most of a refused body read and thrown away before answering.
const DRAIN_MAX: usize = 16 * 1024 * 1024;

/// A body refused unread (413: larger than the route takes) is read and thrown away, up to
/// [`DRAIN_MAX`] and within the body timeout, before the answer goes out: closing a connection
/// the client is still sending on resets it, and the client would see a broken connection
/// instead of the 413 that says why.
async fn drain_refused_body(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let left = Arc::new(Mutex::new(None));
    let body = Body::new(ReturnedBody { body: Some(body), left: left.clone() });
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let unread = left.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(body) = unread {
            let mut stream = body.into_data_stream();
            let mut drained = 0;
            while drained <= DRAIN_MAX
                && let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut stream).await
            {
                drained += chunk.len();
            }
        }
    }
    response
}

/// A request body that, dropped unfinished, leaves what is unread behind for
/// [`drain_refused_body`].
struct ReturnedBody {
    body: Option<Body>,
    left: Arc<Mutex<Option<Body>>>,
}

impl http_body::Body for ReturnedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for ReturnedBody {
    fn drop(&mut self) {
        if let Some(body) = self.body.take()
            && !http_body::Body::is_end_stream(&body)
        {
            *self.left.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(body);
        }
    }
}

/// Characters of a caller's `X-Request-Id` kept, at most.
const REQUEST_ID_MAX: usize = 64;

/// A caller's `X-Request-Id` is logged and echoed only when it is a short token (letters,
/// digits, `-`, `_`, `.`, `:`); anything else (spaces that forge log fields, 50 KB values) is
/// dropped, and the request gets an id of wagate's own.
async fn drop_unsafe_request_id(mut req: Request) -> Request {
    let safe = |v: &HeaderValue| {
        let b = v.as_bytes();
        (1..=REQUEST_ID_MAX).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    };
    if req.headers().get_all(REQUEST_ID).iter().count() > 1 || req.headers().get(REQUEST_ID).is_some_and(|v| !safe(v)) {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// A request body that fails with [`BodyTimedOut`] when it has not arrived whole within its
/// time from the request's start (not per chunk: a client sending a byte now and then would
/// hold the connection for ever).
struct DeadlineBody {
    body: Body,
    timeout: Duration,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(body: Body, timeout: Duration) -> Self {
        Self { body, timeout, deadline: tokio::time::Instant::now() + timeout, sleep: None }
    }
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs_f64())]
struct BodyTimedOut(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        // The timer only starts when the body keeps the request waiting: most bodies are read
        // whole with the head.
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(this.timeout))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// True when reading a request body failed because it did not arrive in time.
pub fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<BodyTimedOut>() {
            return true;
        }
        cause = e.source();
    }
    false
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state
        .metrics
        .http_duration
        .get_or_create(&RouteLabels { method: method.clone(), route: route.clone() })
        .observe(started.elapsed().as_secs_f64());
    state.metrics.http_requests.get_or_create(&HttpLabels { method, route, status }).inc();
    response
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in progress
/// finish. Not `axum::serve`: its connections have no timer, so a client that opened a
/// connection and sent nothing, or a header a byte at a time, held it for ever. Here a
/// connection that has not sent a whole request head within `header_timeout` (counted from the
/// connection's start or the end of its previous response) is closed.
///
/// At most `max_connections` are open at once. At the cap, a new connection makes room by
/// closing the connection idle longest (no request in progress: a keep-alive connection, or one
/// that has not sent a whole head yet); with none idle, accepting waits for one to end. So
/// clients that open connections and send nothing cannot keep others out, and wagate never runs
/// out of file descriptors (where `accept` would fail for everyone).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    // Each connection holds a receiver; when all are dropped, every connection has ended.
    let (closing, closing_rx) = tokio::sync::watch::channel(());
    let connections = std::sync::Arc::new(Connections::default());
    let mut shutdown = std::pin::pin!(shutdown);
    'serving: loop {
        loop {
            // Listening before looking, so an end between the two is not missed.
            let mut ended = std::pin::pin!(connections.ended.notified());
            ended.as_mut().enable();
            if connections.open() < max_connections || connections.evict_idlest() {
                break;
            }
            tokio::select! {
                () = ended => {}
                () = &mut shutdown => break 'serving,
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = connections.open_one();
        let service = TowerToHyperService::new(Tracked { inner: router.clone(), connection: connection.clone() });
        let mut closing_rx = closing_rx.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let mut served = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                // Idle, so dropping it interrupts nothing.
                () = connection.evicted.notified() => tracing::debug!("idle connection closed to make room"),
                _ = closing_rx.changed() => {
                    served.as_mut().graceful_shutdown();
                    if let Err(e) = served.await {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
            }
            connections.close(&connection);
        });
    }
    drop(listener);
    let _ = closing.send(());
    drop(closing_rx);
    closing.closed().await;
}

/// File descriptors kept for everything but client connections: database connections, media
/// files, outbound requests, the listener.
const RESERVED_DESCRIPTORS: u64 = 256;

/// Raises the soft limit on open files to the hard one (many services start with 1,024), and
/// answers how many client connections fit under it: `configured`, or fewer when the limit is
/// too low for that many.
pub fn connection_cap(configured: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = getrlimit(Resource::Nofile),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    let Some(files) = limit.current else { return configured };
    let fit = usize::try_from(files.saturating_sub(RESERVED_DESCRIPTORS).max(1)).unwrap_or(usize::MAX);
    if fit < configured {
        tracing::warn!(
            open_file_limit = files,
            max_connections = fit,
            "the open-file limit allows fewer connections than http.max_connections; raise it (ulimit -n) for more"
        );
    }
    configured.min(fit)
}

/// The open connections, for the cap in [`serve`].
#[derive(Default)]
struct Connections {
    open: std::sync::Mutex<Vec<std::sync::Arc<Connection>>>,
    /// Notified whenever a connection ends.
    ended: tokio::sync::Notify,
}

#[derive(Default)]
struct Connection {
    /// Requests being answered on it.
    in_flight: std::sync::atomic::AtomicUsize,
    /// When it opened or last finished a request, as [`uptime_ms`].
    last_active_ms: std::sync::atomic::AtomicU64,
    evicted: tokio::sync::Notify,
}

impl Connections {
    fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn open_one(&self) -> std::sync::Arc<Connection> {
        let c = std::sync::Arc::new(Connection::default());
        c.last_active_ms.store(uptime_ms(), std::sync::atomic::Ordering::Relaxed);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).push(c.clone());
        c
    }

    fn close(&self, c: &std::sync::Arc<Connection>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = open.iter().position(|o| std::sync::Arc::ptr_eq(o, c)) {
            open.swap_remove(at);
        }
        drop(open);
        self.ended.notify_waiters();
    }

    /// Closes the connection idle longest, if one is idle: it leaves the list at once, so the
    /// next accept has its place. False when every connection has a request in progress.
    fn evict_idlest(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let idlest = open
            .iter()
            .enumerate()
            .filter(|(_, c)| c.in_flight.load(Relaxed) == 0)
            .min_by_key(|(_, c)| c.last_active_ms.load(Relaxed))
            .map(|(at, _)| at);
        match idlest {
            Some(at) => {
                open.swap_remove(at).evicted.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Milliseconds since the first call: a clock for ordering connections by idleness.
fn uptime_ms() -> u64 {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    STARTED.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The router, counting each connection's requests in progress.
#[derive(Clone)]
struct Tracked {
    inner: Router,
    connection: std::sync::Arc<Connection>,
}

impl tower_service::Service<axum::http::Request<hyper::body::Incoming>> for Tracked {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        use std::sync::atomic::Ordering::Relaxed;
        let connection = self.connection.clone();
        connection.in_flight.fetch_add(1, Relaxed);
        let mut router = self.inner.clone();
        Box::pin(async move {
            let response = tower_service::Service::call(&mut router, req.map(Body::new)).await;
            connection.last_active_ms.store(uptime_ms(), Relaxed);
            connection.in_flight.fetch_sub(1, Relaxed);
            response
        })
    }
}
