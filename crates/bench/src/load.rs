//! The closed-loop load generator shared by the throughput scenarios.
//!
//! Each of `connections` worker tasks owns one keep-alive connection and sends the next request
//! as soon as the previous response is read. Requests started during the warm-up are sent but not
//! measured; nothing new starts after the measured window ends, and each request in flight is
//! bounded by [`REQUEST_TIMEOUT`](crate::client::REQUEST_TIMEOUT), so a phase always ends.
//!
//! Given several endpoints (replicas of one deployment), worker `i` talks to endpoint
//! [`endpoint_of`]`(i, n)` for the whole phase, so the load is spread evenly and each worker keeps
//! its one connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper::header;

use crate::client::{Conn, Endpoint, Reply};
use crate::histogram::Histogram;

/// Pause before reconnecting after a failed connect, so a dead server is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// How a response counts in the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The request did what it was for (200 for `/healthz`, 201 for a bid).
    Success,
    /// A valid request that lost a race (409 `bid_too_low`); not an error.
    Lost,
    /// Anything else the server answered.
    Error,
}

/// What a phase sends and how it judges the answers.
pub trait Workload: Send + Sync + 'static {
    /// The next request for worker `conn`; must be cheap, it runs in the hot loop. The
    /// generator sets its `Host` header to the worker's endpoint.
    fn request(&self, conn: usize) -> Request<Full<Bytes>>;
    /// Classifies the answer to worker `conn`'s last request.
    fn classify(&self, conn: usize, reply: &Reply) -> Outcome;
    /// Worker `conn`'s last request may or may not have reached the server.
    fn transport_error(&self, _conn: usize) {}
}

/// Shape of one phase.
#[derive(Clone, Copy, Debug)]
pub struct PhasePlan {
    /// Concurrent connections, one worker task each.
    pub connections: usize,
    /// Unmeasured time at the start.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// Everything measured in one phase.
#[derive(Clone, Default)]
pub struct PhaseStats {
    /// Worker count.
    pub connections: usize,
    /// Seconds from the end of warm-up to the last measured response (at least the duration).
    pub seconds: f64,
    /// Measured requests that got a response.
    pub responses: u64,
    /// Responses classified [`Outcome::Success`].
    pub successes: u64,
    /// Responses classified [`Outcome::Lost`].
    pub lost: u64,
    /// Responses classified [`Outcome::Error`].
    pub errors: u64,
    /// Measured requests that got no response (connect/send/read failure or timeout).
    pub transport_errors: u64,
    /// Count of every status answered, for diagnosing errors.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of measured requests that got a response.
    pub latency: Histogram,
    /// First transport error message, if any.
    pub first_transport_error: Option<String>,
}

impl PhaseStats {
    fn merge(&mut self, other: WorkerStats) {
        self.responses += other.responses;
        self.successes += other.successes;
        self.lost += other.lost;
        self.errors += other.errors;
        self.transport_errors += other.transport_errors;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.latency.merge(&other.latency);
        if self.first_transport_error.is_none() {
            self.first_transport_error = other.first_transport_error;
        }
    }
}

#[derive(Default)]
struct WorkerStats {
    responses: u64,
    successes: u64,
    lost: u64,
    errors: u64,
    transport_errors: u64,
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
    first_transport_error: Option<String>,
    last_done: Option<Instant>,
}

impl WorkerStats {
    fn transport(&mut self, measured: bool, error: &anyhow::Error) {
        if measured {
            self.transport_errors += 1;
            if self.first_transport_error.is_none() {
                self.first_transport_error = Some(format!("{error:#}"));
            }
        }
    }
}

/// The endpoint worker `conn` uses out of `endpoints`: round-robin, so workers with
/// consecutive numbers land on different servers.
pub fn endpoint_of(conn: usize, endpoints: usize) -> usize {
    conn % endpoints.max(1)
}

/// Runs one phase of `workload`, spread over `endpoints` (at least one), and returns the merged
/// measurements.
pub async fn run_phase<W: Workload>(
    endpoints: &[Endpoint],
    plan: PhasePlan,
    workload: Arc<W>,
) -> PhaseStats {
    assert!(!endpoints.is_empty(), "run_phase needs at least one endpoint");
    let measure_start = Instant::now() + plan.warmup;
    let end = measure_start + plan.duration;
    let workers: Vec<_> = (0..plan.connections)
        .map(|conn| {
            let endpoint = endpoints[endpoint_of(conn, endpoints.len())].clone();
            let workload = Arc::clone(&workload);
            tokio::spawn(worker(conn, endpoint, workload, measure_start, end))
        })
        .collect();
    let mut stats = PhaseStats { connections: plan.connections, ..PhaseStats::default() };
    let mut last_done = end;
    for handle in workers {
        match handle.await {
            Ok(worker) => {
                if let Some(done) = worker.last_done {
                    last_done = last_done.max(done);
                }
                stats.merge(worker);
            }
            Err(e) => eprintln!("surge-bench: a worker task failed: {e}"),
        }
    }
    stats.seconds = last_done.duration_since(measure_start).as_secs_f64();
    stats
}

async fn worker<W: Workload>(
    idx: usize,
    endpoint: Endpoint,
    workload: Arc<W>,
    measure_start: Instant,
    end: Instant,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < end {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match endpoint.connect().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.transport(Instant::now() >= measure_start, &e);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        // A keep-alive connection the server closed is replaced without counting anything:
        // no request was sent on it.
        if c.ready().await.is_err() {
            conn = None;
            continue;
        }
        let mut req = workload.request(idx);
        req.headers_mut().insert(header::HOST, endpoint.host_header().clone());
        let started = Instant::now();
        let measured = started >= measure_start;
        match c.send(req).await {
            Ok(reply) => {
                let done = Instant::now();
                let outcome = workload.classify(idx, &reply);
                if measured {
                    stats.responses += 1;
                    *stats.statuses.entry(reply.status.as_u16()).or_default() += 1;
                    match outcome {
                        Outcome::Success => stats.successes += 1,
                        Outcome::Lost => stats.lost += 1,
                        Outcome::Error => stats.errors += 1,
                    }
                    stats.latency.record(done - started);
                    stats.last_done = Some(done);
                }
            }
            Err(e) => {
                workload.transport_error(idx);
                stats.transport(measured, &e);
                conn = None;
            }
        }
    }
    stats
}
