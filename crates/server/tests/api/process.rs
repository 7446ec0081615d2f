//! Real `surge serve` processes for the tests that kill, pause or terminate one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::Api;

/// A `surge serve` process; killed when dropped so a failing test leaves nothing behind.
pub struct ServerProcess {
    child: Child,
    pub api: Api,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ServerProcess {
    /// An embedded server on `data_dir`.
    pub fn start(data_dir: &Path, log_dir: &Path, run: &str) -> ServerProcess {
        Self::spawn(log_dir, run, |command| {
            command.arg("--data-dir").arg(data_dir);
        })
    }

    /// A server on a free port, with whatever else `configure` adds (flags, environment).
    pub fn spawn(log_dir: &Path, run: &str, configure: impl FnOnce(&mut Command)) -> ServerProcess {
        let port = free_port();
        let stdout = log_dir.join(format!("{run}.stdout"));
        let stderr = log_dir.join(format!("{run}.stderr"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_surge"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(log_dir)
            .env("SURGE_LOG_FORMAT", "json")
            // The tests sign up many accounts from 127.0.0.1.
            .env("SURGE_LIMITS__SIGNUPS_PER_IP_PER_HOUR", "0")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout log"))
            .stderr(File::create(&stderr).expect("stderr log"));
        configure(&mut command);
        let child = command.spawn().expect("could not start the surge binary");
        ServerProcess { child, api: Api::new(format!("http://127.0.0.1:{port}")), stdout, stderr }
    }

    /// Polls `/healthz` every 25 ms until it answers 200; gives up after 30 s.
    pub async fn wait_until_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut poll = tokio::time::interval(Duration::from_millis(25));
        loop {
            poll.tick().await;
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("surge exited early with {status}\n{}", self.logs());
            }
            let probe = self
                .api
                .client
                .get(self.api.root_url("/healthz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if probe.is_ok_and(|response| response.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "surge did not become healthy in time\n{}",
                self.logs()
            );
        }
    }

    /// Sends a signal by name (`TERM`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{name}"), &pid]).status();
        assert!(sent.is_ok_and(|status| status.success()), "could not send SIG{name}");
    }

    /// SIGTERM, then wait (bounded) for the process to exit on its own.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "surge did not stop after SIGTERM\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.child.kill().expect("could not kill surge");
        self.child.wait().expect("could not reap surge");
    }

    pub fn logs(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A stopped process must be continued to die promptly.
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("no free port")
        .port()
}
