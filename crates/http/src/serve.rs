//! Serving the router on a bound listener, with the limits a public server needs: a connection
//! must send its request head within `header_read_timeout` (which also ends connections that
//! connect and stay silent, and keep-alive connections idle that long), a request body that
//! stalls for `body_read_timeout` is cut off, and at most `max_connections` are served at once
//! (further ones wait in the listen backlog). An SSE stream is a response in progress, so no
//! timeout applies to it; its heartbeats keep proxies from closing it.
//!
//! Shutdown follows mini-redis: stop accepting, let every connection finish the request it is
//! serving (no new keep-alive request is read), and return when all are done.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::extract::ClientIp;
use crate::proxies::{Cidr, client_ip};

/// Connection limits (see the module docs).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    /// Only from these are forwarding headers believed (see [`crate::proxies`]).
    pub trusted_proxies: Arc<[Cidr]>,
}

/// How long shutdown waits for connections to finish their current request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()>,
) {
    let router =
        router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(settings.body_read_timeout));
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A slot first: past the limit, connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses on keep-alive connections must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        // The peer's address, and the client's behind trusted proxies, in every request.
        let trusted = settings.trusted_proxies.clone();
        let service = router.clone().map_request(move |mut request: Request<Incoming>| {
            let client = client_ip(peer.ip(), request.headers(), &trusted);
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(ClientIp(Some(client)));
            request
        });
        let service = TowerToHyperService::new(service);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, peer = %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}
