//! The single writer task: owns the SQLite write connection and commits every app's commands
//! in batches. It knows no app by name: each app registers its batch state in [`Apps`] and its
//! commands as [`WriterCommand`]s.
//!
//! Every command that arrives while a batch is being committed joins the next batch: under load
//! one transaction (one fsync) covers hundreds of commands, while a lone command still commits
//! at once.
//!
//! Each command is decided alone, in order, against the state the batch has built so far, so a
//! rejected command writes nothing and an accepted one sees every earlier acceptance. Each app
//! then writes what its commands produced ([`AppWriter::flush`]: a few multi-row statements
//! rather than one per command), followed by the COMMIT. Replies and events go out only after
//! the COMMIT is durable. A write can only fail through an I/O fault or an engine bug, never
//! through a business rule; if one does, the whole batch is rolled back, its callers get 503 (no
//! effect, retry), and every app forgets what the batch changed in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use surge_core::idempotency::{self, IdempotencyKey};
use surge_store::StoreError;
use surge_store::ledger::{KeyedOutcome, SqliteLedger};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::apps::Apps;
use crate::EngineError;
use crate::clock::Clock;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, EngineError>>;

/// One app's command as the writer runs it: decided against the app's state inside the batch.
#[async_trait]
pub(crate) trait WriterCommand: Send + 'static {
    type Output: Send + Sync + 'static;

    async fn execute(self, apps: &mut Apps, tx: &mut Tx<'_>) -> Result<Self::Output, EngineError>;
}

/// One app's state in the writer, with the batch's hooks.
#[async_trait]
pub(crate) trait AppWriter: Send {
    /// Writes what this batch's commands produced, inside the batch's transaction.
    async fn flush(
        &mut self,
        _ledger: &mut SqliteLedger,
        _now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// After the COMMIT: the batch's changes become the app's state, its events go out.
    fn committed(&mut self);

    /// After a failed batch: forget what the batch changed in memory.
    fn rolled_back(&mut self);
}

pub(crate) enum Job {
    Command(Box<dyn Queued>),
    /// Forget idempotency records past the window.
    Purge,
    /// Commit what came before, then stop.
    Stop,
}

/// A command with its reply, type-erased for the queue.
#[async_trait]
pub(crate) trait Queued: Send {
    async fn run(self: Box<Self>, apps: &mut Apps, tx: &mut Tx<'_>) -> Pending;
    fn refuse(self: Box<Self>, error: EngineError);
}

struct Request<C: WriterCommand> {
    command: C,
    reply: Reply<C::Output>,
}

#[async_trait]
impl<C: WriterCommand> Queued for Request<C> {
    async fn run(self: Box<Self>, apps: &mut Apps, tx: &mut Tx<'_>) -> Pending {
        let result = self.command.execute(apps, tx).await;
        Pending::new(self.reply, result)
    }

    fn refuse(self: Box<Self>, error: EngineError) {
        let _ = self.reply.send(Err(error));
    }
}

/// Queues a command for the writer and waits for its reply.
pub(crate) async fn submit<C: WriterCommand>(
    jobs: &mpsc::Sender<Job>,
    command: C,
) -> Result<C::Output, EngineError> {
    let (reply, answer) = oneshot::channel();
    jobs.send(Job::Command(Box::new(Request { command, reply })))
        .await
        .map_err(|_| EngineError::Unavailable("the writer has stopped".into()))?;
    answer.await.map_err(|_| EngineError::Unavailable("the writer dropped the command".into()))?
}

/// A reply waiting for its batch to commit: sent as decided if the batch commits, as 503 if not.
pub(crate) struct Pending(Box<dyn FnOnce(bool) + Send + Sync>);

impl Pending {
    fn new<T: Send + Sync + 'static>(reply: Reply<T>, result: Result<T, EngineError>) -> Self {
        Pending(Box::new(move |committed| {
            let result = if committed {
                result
            } else {
                Err(EngineError::Unavailable("the batch could not be committed".into()))
            };
            let _ = reply.send(result);
        }))
    }

    fn send(self, committed: bool) {
        (self.0)(committed)
    }
}

/// What a command sees of its batch: the transaction, and the `Idempotency-Key` records every
/// app's keyed commands share (a key belongs to the user across every endpoint).
pub(crate) struct Tx<'a> {
    pub ledger: &'a mut SqliteLedger,
    clock: &'a dyn Clock,
    /// Outcomes of keyed requests decided in this batch, by (user, key): stored at commit, and
    /// consulted first so a retry within the same batch replays too.
    outcomes: &'a mut HashMap<(Uuid, String), KeyedOutcome>,
}

impl Tx<'_> {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The stored outcome of a retried keyed request, or an error if the key was reused.
    pub async fn replay<T: DeserializeOwned>(
        &mut self,
        user_id: Uuid,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<T>, EngineError> {
        let Some(key) = key else { return Ok(None) };
        let stored = match self.outcomes.get(&(user_id, key.key.clone())) {
            Some(record) => Some((record.request_hash.clone(), record.response.clone())),
            None => {
                let since = self.now() - idempotency::window();
                self.ledger.idempotent_outcome(user_id, &key.key, since).await?
            }
        };
        let Some((hash, response)) = stored else { return Ok(None) };
        if hash != key.request_hash {
            return Err(EngineError::IdempotencyKeyReused);
        }
        serde_json::from_str(&response)
            .map(Some)
            .map_err(|e| EngineError::Internal(format!("stored outcome unreadable: {e}")))
    }

    /// Keeps a keyed request's outcome, to be stored with the batch.
    pub fn remember<T: Serialize>(
        &mut self,
        user_id: Uuid,
        key: Option<&IdempotencyKey>,
        outcome: &T,
    ) -> Result<(), EngineError> {
        let Some(key) = key else { return Ok(()) };
        let response = serde_json::to_string(outcome)
            .map_err(|e| EngineError::Internal(format!("outcome not serialisable: {e}")))?;
        let record = KeyedOutcome {
            user_id,
            key: key.key.clone(),
            request_hash: key.request_hash.clone(),
            response,
            created_at: self.now(),
        };
        self.outcomes.insert((user_id, key.key.clone()), record);
        Ok(())
    }
}

pub(crate) struct Writer {
    pub ledger: SqliteLedger,
    pub jobs: mpsc::Receiver<Job>,
    pub clock: Arc<dyn Clock>,
    pub max_batch: usize,
    pub apps: Apps,
}

impl Writer {
    pub async fn run(mut self) {
        let mut jobs = Vec::with_capacity(self.max_batch);
        loop {
            if self.jobs.recv_many(&mut jobs, self.max_batch).await == 0 {
                return;
            }
            let stop = jobs.iter().position(|job| matches!(job, Job::Stop));
            let rest = stop.map(|at| jobs.split_off(at));
            self.run_batch(std::mem::take(&mut jobs)).await;
            if let Some(rest) = rest {
                self.refuse_remaining(rest);
                return;
            }
        }
    }

    fn refuse_remaining(&mut self, jobs: Vec<Job>) {
        self.jobs.close();
        let late = std::iter::from_fn(|| self.jobs.try_recv().ok()).collect::<Vec<_>>();
        refuse(jobs.into_iter().chain(late), || {
            EngineError::Unavailable("the server is shutting down".into())
        });
    }

    async fn run_batch(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        let size = jobs.len();
        if let Err(error) = self.ledger.begin().await {
            tracing::error!(error = %error, "could not start a write batch");
            refuse(jobs, || EngineError::Unavailable("the database is unavailable".into()));
            return;
        }
        let mut outcomes = HashMap::new();
        let mut pending = Vec::with_capacity(size);
        let mut tx = Tx { ledger: &mut self.ledger, clock: &*self.clock, outcomes: &mut outcomes };
        for job in jobs {
            match job {
                Job::Command(command) => pending.push(command.run(&mut self.apps, &mut tx).await),
                Job::Purge => purge(tx.ledger, tx.now()).await,
                Job::Stop => {}
            }
        }
        let committed = self.commit(outcomes, size).await;
        metrics::histogram!("surge_writer_batch_size").record(size as f64);
        metrics::histogram!("surge_writer_commit_seconds").record(started.elapsed().as_secs_f64());
        for app in self.apps.each() {
            if committed { app.committed() } else { app.rolled_back() }
        }
        for pending in pending {
            pending.send(committed);
        }
    }

    /// Writes the keyed outcomes and every app's rows, then commits; rolls back if anything
    /// fails.
    async fn commit(
        &mut self,
        outcomes: HashMap<(Uuid, String), KeyedOutcome>,
        size: usize,
    ) -> bool {
        let committed = match self.write(outcomes).await {
            Ok(()) => self.ledger.commit().await,
            Err(error) => Err(error),
        };
        let Err(error) = committed else { return true };
        tracing::error!(error = %error, batch.size = size, "write batch rolled back");
        let _ = self.ledger.rollback().await;
        false
    }

    async fn write(
        &mut self,
        outcomes: HashMap<(Uuid, String), KeyedOutcome>,
    ) -> Result<(), StoreError> {
        if !outcomes.is_empty() {
            let outcomes: Vec<KeyedOutcome> = outcomes.into_values().collect();
            self.ledger.remember_outcomes(&outcomes).await?;
        }
        let now = self.clock.now();
        for app in self.apps.each() {
            app.flush(&mut self.ledger, now).await?;
        }
        Ok(())
    }
}

/// Answers queued commands with an error without running them.
fn refuse(jobs: impl IntoIterator<Item = Job>, error: impl Fn() -> EngineError) {
    for job in jobs {
        if let Job::Command(command) = job {
            command.refuse(error());
        }
    }
}

async fn purge(ledger: &mut SqliteLedger, now: DateTime<Utc>) {
    match ledger.forget_outcomes_before(now - idempotency::window()).await {
        Ok(count) if count > 0 => tracing::info!(records = count, "forgot old idempotency keys"),
        Ok(_) => {}
        Err(error) => tracing::warn!(error = %error, "could not purge idempotency keys"),
    }
}
