//! Starting and stopping the Surge server under test.
//!
//! By default the bench starts its own `surge serve` on a free loopback port with a fresh data
//! directory, so every run measures a clean server and nothing outlives the run. `--url` points
//! the bench at servers someone else started instead: one, or several replicas of a distributed
//! deployment that the bid storm spreads its connections over.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hyper::{Method, StatusCode};

use crate::client::Endpoint;

/// How long the server gets to answer `/healthz` after start.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between `/healthz` polls.
const HEALTH_POLL: Duration = Duration::from_millis(50);
/// How long the server gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How a bench-started server is run, beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// `serve --demo`: seed the demo data first.
    pub demo: bool,
    /// Extra environment (settings) for the server.
    pub env: Vec<(&'static str, String)>,
}

/// The servers a run talks to, and the child process when the bench started one.
pub struct Target {
    /// Never empty; the first is the one every scenario sets up, measures the ceiling and
    /// verifies through.
    endpoints: Vec<Endpoint>,
    spawned: Option<SpawnedServer>,
}

impl Target {
    /// Uses the servers at `urls` (comma-separated) if given, otherwise starts `server_bin`;
    /// returns once `/healthz` answers 200 on every one.
    pub async fn open(
        urls: Option<&str>,
        server_bin: &Path,
        options: &ServerOptions,
    ) -> Result<Self> {
        match urls {
            Some(urls) => {
                let endpoints = Endpoint::parse_urls(urls)?;
                for endpoint in &endpoints {
                    wait_healthy(endpoint, None).await?;
                }
                Ok(Self { endpoints, spawned: None })
            }
            None => {
                let (mut spawned, addr) = SpawnedServer::spawn(server_bin, options)?;
                let endpoint = Endpoint::new(addr)?;
                if let Err(e) = wait_healthy(&endpoint, Some(&mut spawned.child)).await {
                    let tail = spawned.log_tail();
                    return Err(e.context(format!("server log tail:\n{tail}")));
                }
                eprintln!(
                    "surge-bench: started {} (pid {}) on {addr}",
                    server_bin.display(),
                    spawned.child.id()
                );
                Ok(Self { endpoints: vec![endpoint], spawned: Some(spawned) })
            }
        }
    }

    /// The first (or only) server: where set-up, the ceiling and the checks go.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoints[0]
    }

    /// Every server given with `--url` (just the started one otherwise), in the order given.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// How to run `surge admin …` against this deployment: the server binary, plus the data
    /// dir when the bench started the server itself (otherwise the command finds the
    /// deployment's database through the environment, e.g. `SURGE_DATABASE_URL`).
    pub fn admin_command(&self, server_bin: &Path) -> AdminCommand {
        let data_dir = self.spawned.as_ref().map(|spawned| spawned.root.join("data"));
        AdminCommand { bin: server_bin.to_path_buf(), data_dir }
    }

    /// The server's process id, known only when the bench started it (for RSS readings).
    pub fn server_pid(&self) -> Option<u32> {
        self.spawned.as_ref().map(|s| s.child.id())
    }

    /// Stops the server if the bench started it and removes its data directory.
    pub fn stop(&mut self) {
        if let Some(mut spawned) = self.spawned.take() {
            spawned.stop();
        }
    }
}

/// `surge admin …` for the deployment under test.
#[derive(Debug, Clone)]
pub struct AdminCommand {
    bin: PathBuf,
    data_dir: Option<PathBuf>,
}

impl AdminCommand {
    /// `surge admin grant EMAIL`: admin rights come only from an operator, never from signing
    /// up.
    pub fn grant(&self, email: &str) -> Result<()> {
        let mut command = Command::new(&self.bin);
        command.args(["admin", "grant", email]).env("SURGE_LOG_FORMAT", "json");
        if let Some(dir) = &self.data_dir {
            command.arg("--data-dir").arg(dir);
        }
        let output = command.output().with_context(|| format!("running {}", self.bin.display()))?;
        if !output.status.success() {
            bail!("surge admin grant {email} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }
}

/// A `surge serve` child process with its temporary directory.
struct SpawnedServer {
    child: Child,
    root: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl SpawnedServer {
    /// Starts `bin serve` on a free port with a fresh data dir; output goes to a log file.
    fn spawn(bin: &Path, options: &ServerOptions) -> Result<(Self, SocketAddr)> {
        if !bin.is_file() {
            bail!(
                "server binary {} not found; build it with `cargo build --release -p surge`, \
                 or pass --server-bin PATH or --url http://127.0.0.1:PORT",
                bin.display()
            );
        }
        let addr = free_port()?;
        let root = std::env::temp_dir().join(format!(
            "surge-bench-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let data = root.join("data");
        fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let log = root.join("server.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log file handle")?;
        let mut command = Command::new(bin);
        command.arg("serve");
        if options.demo {
            command.arg("--demo");
        }
        command.envs(options.env.iter().map(|(name, value)| (name, value)));
        let child = command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data)
            .env("SURGE_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&root);
                return Err(e).with_context(|| format!("starting {}", bin.display()));
            }
        };
        Ok((Self { child, root, log, stopped: false }, addr))
    }

    /// SIGTERM, wait up to [`STOP_GRACE`], then SIGKILL; finally remove the temp dir.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(HEALTH_POLL);
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!("surge-bench: server ignored SIGTERM for {STOP_GRACE:?}; killing it");
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.root);
    }

    /// The last few KiB of the server log, for error messages.
    fn log_tail(&self) -> String {
        let Ok(mut file) = File::open(&self.log) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let mut tail = String::new();
        let _ = file.read_to_string(&mut tail);
        tail
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A stand-in LeetCode (`surge mock-leetcode`) on a free loopback port, for the ratings
/// scenario; stopped when dropped.
pub struct StandIn {
    child: Child,
    addr: SocketAddr,
}

impl StandIn {
    /// Starts one answering after `latency_ms`, and waits until it accepts connections.
    pub fn spawn(server_bin: &Path, latency_ms: u64) -> Result<Self> {
        let addr = free_port()?;
        let child = Command::new(server_bin)
            .arg("mock-leetcode")
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--latency-ms")
            .arg(latency_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} mock-leetcode", server_bin.display()))?;
        let mut stand_in = Self { child, addr };
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || !matches!(stand_in.child.try_wait(), Ok(None)) {
                let _ = stand_in.child.kill();
                bail!("the stand-in LeetCode did not start on {addr}");
            }
            std::thread::sleep(HEALTH_POLL);
        }
        eprintln!("surge-bench: stand-in LeetCode on {addr}, answering after {latency_ms} ms");
        Ok(stand_in)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL for `ratings.upstream_url`.
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago (bind to port 0, read it, release it).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

/// Polls `/healthz` until it returns 200, the child exits, or [`HEALTH_TIMEOUT`] passes.
async fn wait_healthy(endpoint: &Endpoint, mut child: Option<&mut Child>) -> Result<()> {
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    loop {
        if let Some(child) = child.as_deref_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            bail!("server exited during start-up with {status}");
        }
        let attempt = tokio::time::timeout(Duration::from_secs(1), async {
            let mut conn = endpoint.connect().await?;
            let req = endpoint.request(Method::GET, "/healthz", None, None)?;
            conn.send(req).await
        })
        .await;
        let last_error = match attempt {
            Ok(Ok(reply)) if reply.status == StatusCode::OK => return Ok(()),
            Ok(Ok(reply)) => format!("/healthz answered {}", reply.status),
            Ok(Err(e)) => format!("{e:#}"),
            Err(_) => String::from("/healthz timed out"),
        };
        if Instant::now() >= deadline {
            bail!(
                "server at {} not healthy after {HEALTH_TIMEOUT:?}: {last_error}",
                endpoint.addr()
            );
        }
        tokio::time::sleep(HEALTH_POLL).await;
    }
}

/// Reads a process's resident set size from `/proc/<pid>/status` (Linux only). The file is
/// opened once up front, so readings still work after the subscribers used up the descriptors.
pub struct RssProbe(File);

impl RssProbe {
    /// Opens the probe for process `pid`; `None` where `/proc` is unavailable.
    pub fn open(pid: u32) -> Option<Self> {
        File::open(format!("/proc/{pid}/status")).ok().map(Self)
    }

    /// Current VmRSS in KiB.
    pub fn read_kib(&mut self) -> Option<u64> {
        self.0.seek(SeekFrom::Start(0)).ok()?;
        let mut status = String::new();
        self.0.read_to_string(&mut status).ok()?;
        parse_vm_rss(&status)
    }
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tsurge\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_rss_can_be_read_repeatedly() {
        let mut probe = RssProbe::open(std::process::id()).unwrap();
        assert!(probe.read_kib().is_some_and(|kib| kib > 0));
        assert!(probe.read_kib().is_some_and(|kib| kib > 0));
    }
}
