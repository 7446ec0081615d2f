//! A bidding storm against one or more servers, and what its clients learned: the ground truth
//! the crash and fault tests compare the stored bids with.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::helpers::{Api, TestUser, int, string};

/// What the bid requests came to.
#[derive(Debug, Default)]
pub struct Ledger {
    /// amount → (seq, bid id) for every 201.
    pub acknowledged: HashMap<i64, (i64, String)>,
    /// Amounts that got a definite refusal (409): these must not be stored.
    pub refused: HashSet<i64>,
    /// Amounts whose request got no complete answer, or a 503: stored or not, both are fine.
    pub indeterminate: HashSet<i64>,
}

impl Ledger {
    fn absorb(&mut self, part: Ledger) {
        self.acknowledged.extend(part.acknowledged);
        self.refused.extend(part.refused);
        self.indeterminate.extend(part.indeterminate);
    }

    /// Requires the stored bids (amount → (seq, id)) to be exactly what the clients were told:
    /// gap-free seqs, amounts rising with seq, every acknowledged bid there unchanged, and
    /// nothing else but requests whose fate the client never learned.
    pub fn assert_matches(&self, stored: &HashMap<i64, (i64, String)>) {
        let mut by_seq: Vec<(i64, i64)> =
            stored.iter().map(|(amount, (seq, _))| (*seq, *amount)).collect();
        by_seq.sort();
        let seqs: Vec<i64> = by_seq.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<i64> = (1..=by_seq.len() as i64).collect();
        assert_eq!(seqs, expected, "the stored seqs have gaps or repeats");
        for pair in by_seq.windows(2) {
            assert!(pair[0].1 < pair[1].1, "amounts do not rise with seq: {pair:?}");
        }
        for (amount, acknowledged) in &self.acknowledged {
            assert_eq!(
                stored.get(amount),
                Some(acknowledged),
                "the acknowledged bid of {amount} was lost or changed"
            );
        }
        for amount in stored.keys() {
            assert!(
                self.acknowledged.contains_key(amount) || self.indeterminate.contains(amount),
                "a bid of {amount} is stored although it was {}",
                if self.refused.contains(amount) { "refused" } else { "never sent" }
            );
        }
    }

    /// The highest acknowledged amount.
    pub fn highest_acknowledged(&self) -> i64 {
        self.acknowledged.keys().copied().max().unwrap_or(0)
    }
}

/// Bidding tasks sending rising amounts (one shared counter) until stopped.
pub struct Storm {
    stop: Arc<AtomicBool>,
    tasks: JoinSet<Ledger>,
    acks: watch::Receiver<usize>,
}

impl Storm {
    /// `tasks` bidders' loops; task `n` starts on `apis[n % len]` and moves to the next server
    /// when its server stops answering (as a load balancer would), or ends if there is none.
    pub fn start(apis: &[Api], bidders: &[TestUser], auction_id: &str, tasks: usize) -> Storm {
        let next_amount = Arc::new(AtomicI64::new(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (acks, receiver) = watch::channel(0usize);
        let acks = Arc::new(acks);
        let mut set = JoinSet::new();
        for n in 0..tasks {
            let mut apis = apis.to_vec();
            let first = n % apis.len();
            apis.rotate_left(first);
            set.spawn(bid_until_stopped(
                apis,
                bidders[n % bidders.len()].clone(),
                auction_id.to_owned(),
                next_amount.clone(),
                stop.clone(),
                acks.clone(),
            ));
        }
        Storm { stop, tasks: set, acks: receiver }
    }

    /// Waits until `count` bids in all have been acknowledged; false after `timeout`.
    pub async fn wait_for_acks(&mut self, count: usize, timeout: Duration) -> bool {
        let current = *self.acks.borrow();
        let target = current.max(count);
        tokio::time::timeout(timeout, self.acks.wait_for(|acks| *acks >= target))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Acknowledged bids so far.
    pub fn acks(&self) -> usize {
        *self.acks.borrow()
    }

    /// Stops the bidders and merges what they learned.
    pub async fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        let parts = tokio::time::timeout(Duration::from_secs(60), self.tasks.join_all())
            .await
            .expect("the bidders did not stop");
        let mut ledger = Ledger::default();
        for part in parts {
            ledger.absorb(part);
        }
        ledger
    }
}

async fn bid_until_stopped(
    apis: Vec<Api>,
    bidder: TestUser,
    auction_id: String,
    next_amount: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    acks: Arc<watch::Sender<usize>>,
) -> Ledger {
    let mut ledger = Ledger::default();
    let path = format!("/auctions/{auction_id}/bids");
    let mut server = 0;
    while !stop.load(Ordering::SeqCst) {
        let api = &apis[server % apis.len()];
        let amount = next_amount.fetch_add(1, Ordering::SeqCst);
        let sent = api
            .client
            .post(api.url(&path))
            .bearer_auth(&bidder.access_token)
            .json(&json!({ "amount": amount }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                response.json::<Value>().await.ok().map(|body| (status, body))
            }
            Err(_) => None,
        };
        let Some((status, body)) = answer else {
            // The server is gone (or never answered): we cannot know whether it was stored.
            ledger.indeterminate.insert(amount);
            if apis.len() == 1 {
                break;
            }
            server += 1;
            continue;
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
            // A dependency is down: the command may or may not have run before it failed.
            503 => {
                ledger.indeterminate.insert(amount);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("a bid of {amount} got {other}: {body}"),
        }
    }
    ledger
}

/// A bid history as the API lists it, keyed by amount.
pub fn by_amount(history: &[Value]) -> HashMap<i64, (i64, String)> {
    history
        .iter()
        .map(|bid| (int(&bid["amount"]), (int(&bid["seq"]), string(&bid["id"]))))
        .collect()
}
