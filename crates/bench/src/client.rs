//! A deliberately thin HTTP/1.1 client: one hyper connection per worker task, kept alive.
//!
//! The bench must cost less than the server it measures, so there is no pool, no redirect logic
//! and no TLS — just a handshake over a loopback `TcpStream` and requests with a full body.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

/// Longest a single request may take before the bench gives up on it and its connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a TCP connect to the loopback server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the Surge server under test listens; always a loopback address.
#[derive(Clone, Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    host: HeaderValue,
}

impl Endpoint {
    /// An endpoint for `addr`, refusing anything that is not loopback.
    pub fn new(addr: SocketAddr) -> Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("surge-bench only targets loopback addresses, not {addr}");
        }
        let host = HeaderValue::from_str(&addr.to_string()).context("host header")?;
        Ok(Self { addr, host })
    }

    /// Parses `http://127.0.0.1:PORT` (a trailing `/` and `localhost` are accepted).
    pub fn parse_url(url: &str) -> Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url must start with http:// (got {url})");
        };
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            bail!("--url must not contain a path (got {url})");
        }
        let addr = match authority.strip_prefix("localhost:") {
            Some(port) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port.parse().with_context(|| format!("bad port in {url}"))?,
            ),
            None => authority
                .parse()
                .with_context(|| format!("--url needs an IP:PORT authority (got {url})"))?,
        };
        Self::new(addr)
    }

    /// Parses a comma-separated list of URLs (see [`Endpoint::parse_url`]), in the order given.
    pub fn parse_urls(list: &str) -> Result<Vec<Self>> {
        let endpoints = list
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(Self::parse_url)
            .collect::<Result<Vec<_>>>()?;
        if endpoints.is_empty() {
            bail!("--url needs at least one http://IP:PORT (got {list:?})");
        }
        Ok(endpoints)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` header every request carries (HTTP/1.1 requires it).
    pub fn host_header(&self) -> &HeaderValue {
        &self.host
    }

    /// Opens a new keep-alive connection.
    pub async fn connect(&self) -> Result<Conn> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .with_context(|| format!("connecting to {} timed out", self.addr))?
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.context("HTTP/1.1 handshake")?;
        tokio::spawn(async move {
            // Ends when the server closes the socket or the `SendRequest` is dropped.
            let _ = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Builds a request with `Host`, an optional Bearer token and an optional JSON body.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        token: Option<&str>,
        json: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, self.host.clone());
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, bearer(token)?);
        }
        let body = match json {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                json
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(body))
            .with_context(|| format!("building request for {path_and_query}"))
    }
}

/// The `Authorization` value for an access token.
pub fn bearer(token: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).context("access token is not a header value")
}

/// A complete response: status and the whole body.
#[derive(Debug)]
pub struct Reply {
    /// The response status.
    pub status: StatusCode,
    /// The response body, fully read so the connection can be reused.
    pub body: Bytes,
}

impl Reply {
    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!("response is not the expected JSON: {}", String::from_utf8_lossy(&self.body))
        })
    }

    /// Fails with the status and body unless the status is `expected`.
    pub fn expect(self, expected: StatusCode, what: &str) -> Result<Self> {
        if self.status != expected {
            bail!(
                "{what}: expected {expected}, got {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(self)
    }
}

/// One keep-alive HTTP/1.1 connection; requests on it are sequential.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Waits until the connection can take another request; an error means it is dead and the
    /// caller should reconnect (no request was sent).
    pub async fn ready(&mut self) -> Result<()> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.sender.ready())
            .await
            .context("connection not ready in time")?
            .context("connection closed")
    }

    /// Sends `req` and reads the whole response, bounded by [`REQUEST_TIMEOUT`].
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Reply> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.sender.ready().await.context("connection closed")?;
            let response = self.sender.send_request(req).await.context("sending request")?;
            let status = response.status();
            let body =
                response.into_body().collect().await.context("reading response body")?.to_bytes();
            Ok(Reply { status, body })
        })
        .await
        .context("request timed out")?
    }

    /// Sends `req` and returns as soon as the response head arrives, leaving the body to be
    /// streamed by the caller (for event streams). The head is bounded by [`REQUEST_TIMEOUT`].
    pub async fn send_streaming(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.sender.ready().await.context("connection closed")?;
            self.sender.send_request(req).await.context("sending request")
        })
        .await
        .context("response head timed out")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_list_keeps_its_order_and_stays_on_loopback() {
        let endpoints =
            Endpoint::parse_urls("http://127.0.0.1:8001, http://localhost:8002/,").unwrap();
        let addrs: Vec<String> = endpoints.iter().map(|e| e.addr().to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1:8001", "127.0.0.1:8002"]);
        assert_eq!(endpoints[1].host_header(), "127.0.0.1:8002");
        assert!(Endpoint::parse_urls(" , ").is_err());
        assert!(Endpoint::parse_urls("http://127.0.0.1:8001,http://10.0.0.1:80").is_err());
        assert!(Endpoint::parse_urls("http://127.0.0.1:8001/api").is_err());
    }
}
