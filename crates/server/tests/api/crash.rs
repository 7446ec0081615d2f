//! The real `surge` binary is killed with SIGKILL in the middle of a bidding storm and started
//! again on the same data dir: every acknowledged bid survives with its seq and amount, and
//! nothing that was refused shows up.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::helpers::{Api, TestUser, auction_body, int, merged, string};

/// Bidding tasks running against the server when it is killed.
const BIDDING_TASKS: usize = 8;
/// Acknowledged bids to wait for before pulling the plug.
const ACKS_BEFORE_KILL: usize = 100;

/// A `surge serve` process; killed when dropped so a failing test leaves nothing behind.
struct ServerProcess {
    child: Child,
    api: Api,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ServerProcess {
    fn start(data_dir: &Path, log_dir: &Path, run: &str) -> ServerProcess {
        let port = free_port();
        let stdout = log_dir.join(format!("{run}.stdout"));
        let stderr = log_dir.join(format!("{run}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_surge"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .current_dir(log_dir)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout log"))
            .stderr(File::create(&stderr).expect("stderr log"))
            .spawn()
            .expect("could not start the surge binary");
        ServerProcess { child, api: Api::new(format!("http://127.0.0.1:{port}")), stdout, stderr }
    }

    /// Polls `/healthz` every 25 ms until it answers 200; gives up after 30 s.
    async fn wait_until_healthy(&mut self) {
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

    /// SIGTERM, then wait (bounded) for the process to exit on its own.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        assert!(sent.success(), "could not send SIGTERM");
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
    fn kill(&mut self) {
        self.child.kill().expect("could not kill surge");
        self.child.wait().expect("could not reap surge");
    }

    fn logs(&self) -> String {
        let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", read(&self.stdout), read(&self.stderr))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("no free port")
        .port()
}

/// What one bid request came to.
#[derive(Debug, Default)]
struct Ledger {
    /// amount → (seq, bid id) for every 201.
    acknowledged: HashMap<i64, (i64, String)>,
    /// Amounts that got an error response: these must not be stored.
    refused: HashSet<i64>,
    /// Amounts whose request got no (complete) response: stored or not, both are fine.
    indeterminate: HashSet<i64>,
}

async fn bid_until_stopped(
    api: Api,
    bidder: TestUser,
    auction_id: String,
    next_amount: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    acks: Arc<watch::Sender<usize>>,
) -> Ledger {
    let mut ledger = Ledger::default();
    let url = api.url(&format!("/auctions/{auction_id}/bids"));
    while !stop.load(Ordering::SeqCst) {
        let amount = next_amount.fetch_add(1, Ordering::SeqCst);
        let sent = api
            .client
            .post(&url)
            .bearer_auth(&bidder.access_token)
            .json(&json!({ "amount": amount }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let Ok(response) = sent else {
            // The server is gone (or never answered): we cannot know whether it was stored.
            ledger.indeterminate.insert(amount);
            break;
        };
        let status = response.status().as_u16();
        let Ok(body) = response.json::<serde_json::Value>().await else {
            ledger.indeterminate.insert(amount);
            break;
        };
        match status {
            201 => {
                let seq = int(&body["bid"]["seq"]);
                ledger.acknowledged.insert(amount, (seq, string(&body["bid"]["id"])));
                acks.send_modify(|count| *count += 1);
            }
            409 => {
                assert_eq!(body["error"]["code"], "bid_too_low", "{body}");
                ledger.refused.insert(amount);
            }
            other => panic!("a bid of {amount} got {other} while the server was up: {body}"),
        }
    }
    ledger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bids_survive_a_sigkill_and_refused_ones_never_appear() {
    let data_dir = tempfile::Builder::new().prefix("surge-crash-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-crash-logs-").tempdir().unwrap();

    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "first");
    server.wait_until_healthy().await;
    let api = server.api.clone();
    let seller = api.signup().await;
    let bidders = api.signup_many(4).await;
    let auction = api
        .create_auction(
            &seller,
            merged(
                auction_body(chrono::Utc::now()),
                json!({"starting_price": 1, "min_increment": 1}),
            ),
        )
        .await;
    let auction_id = string(&auction["id"]);

    // A bidding storm: 8 tasks, each bidder in two of them, amounts from one counter.
    let next_amount = Arc::new(AtomicI64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let (acks, mut ack_count) = watch::channel(0usize);
    let acks = Arc::new(acks);
    let mut tasks = JoinSet::new();
    for n in 0..BIDDING_TASKS {
        tasks.spawn(bid_until_stopped(
            api.clone(),
            bidders[n % bidders.len()].clone(),
            auction_id.clone(),
            next_amount.clone(),
            stop.clone(),
            acks.clone(),
        ));
    }

    tokio::time::timeout(
        Duration::from_secs(60),
        ack_count.wait_for(|count| *count >= ACKS_BEFORE_KILL),
    )
    .await
    .unwrap_or_else(|_| panic!("too few bids were acknowledged\n{}", server.logs()))
    .expect("the bidders stopped");

    // Pull the plug while requests are in flight.
    server.kill();
    stop.store(true, Ordering::SeqCst);
    let ledgers = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .expect("the bidders did not notice the server was gone");
    let mut ledger = Ledger::default();
    for part in ledgers {
        ledger.acknowledged.extend(part.acknowledged);
        ledger.refused.extend(part.refused);
        ledger.indeterminate.extend(part.indeterminate);
    }
    assert!(ledger.acknowledged.len() >= ACKS_BEFORE_KILL);

    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "second");
    server.wait_until_healthy().await;
    let api = server.api.clone();
    let history = api.bid_history(&auction_id).await;

    // Gap-free, newest first, amounts rising with seq.
    let seqs: Vec<i64> = history.iter().map(|bid| int(&bid["seq"])).collect();
    let expected: Vec<i64> = (1..=history.len() as i64).rev().collect();
    assert_eq!(seqs, expected, "the recovered history has gaps or is out of order");
    for pair in history.windows(2) {
        assert!(int(&pair[0]["amount"]) > int(&pair[1]["amount"]), "{pair:?}");
    }

    // Everything acknowledged is there, unchanged.
    let stored: HashMap<i64, (i64, String)> = history
        .iter()
        .map(|bid| (int(&bid["amount"]), (int(&bid["seq"]), string(&bid["id"]))))
        .collect();
    for (amount, acknowledged) in &ledger.acknowledged {
        assert_eq!(
            stored.get(amount),
            Some(acknowledged),
            "the acknowledged bid of {amount} was lost or changed"
        );
    }
    // Nothing else is there but requests whose fate the client never learned.
    for amount in stored.keys() {
        assert!(
            ledger.acknowledged.contains_key(amount) || ledger.indeterminate.contains(amount),
            "a bid of {amount} is stored although it was {}",
            if ledger.refused.contains(amount) { "refused" } else { "never sent" }
        );
    }

    // The auction agrees with its history and carries on from the last seq.
    let recovered = api.auction(&auction_id).await;
    let top = &history[0];
    assert_eq!(recovered["current_price"], top["amount"]);
    assert_eq!(int(&recovered["bid_count"]), history.len() as i64);
    // Log in again: nothing says a token must outlive a crash.
    let bidder = api.login_again(&bidders[0]).await;
    let next = api.place_bid(&bidder, &auction_id, int(&top["amount"]) + 1).await;
    assert_eq!(int(&next["bid"]["seq"]), history.len() as i64 + 1);

    server.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_event_streams_keeps_every_acknowledged_bid_and_exits_cleanly() {
    let data_dir = tempfile::Builder::new().prefix("surge-term-data-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-term-logs-").tempdir().unwrap();
    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "first");
    server.wait_until_healthy().await;
    let seller = server.api.signup().await;
    let bidder = server.api.signup().await;
    let auction = server.api.create_auction(&seller, auction_body(chrono::Utc::now())).await;
    let auction_id = string(&auction["id"]);
    let mut events = server.api.events(&auction_id, "", None).await;
    let amounts: Vec<i64> = (0..20).map(|i| 1000 + 100 * i).collect();
    for &amount in &amounts {
        server.api.place_bid(&bidder, &auction_id, amount).await;
    }

    let status = server.terminate().await;
    assert!(status.success(), "surge exited with {status}\n{}", server.logs());
    // The stream delivers what was already sent, then ends instead of hanging.
    let mut seen = Vec::new();
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.next().await {
            seen.extend(event.id);
        }
    })
    .await;
    assert!(drained.is_ok(), "the event stream did not end after SIGTERM");
    let expected: Vec<String> = (1..=20).map(|seq: i64| seq.to_string()).collect();
    assert_eq!(seen, expected);

    let mut restarted = ServerProcess::start(data_dir.path(), log_dir.path(), "second");
    restarted.wait_until_healthy().await;
    let history = restarted.api.bid_history(&auction_id).await;
    let stored: Vec<i64> = history.iter().rev().map(|bid| int(&bid["amount"])).collect();
    assert_eq!(stored, amounts);
    restarted.kill();
}
