//! Social on the embedded engine: likes and collects as writer commands. A like storm costs a
//! few statements per batch, not one or two per like: each mark is queued in the batch, and at
//! the batch's end the writer applies them together (`ArticleLedger::apply_marks`: the batch
//! played in order against the marks already there, only the difference written). Each mark's
//! count is filled in then, and read by its caller after the COMMIT.
//!
//! After the COMMIT the writer sets the batch's last counts in the [`ArticleCache`], in commit
//! order, before anyone is answered.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use surge_store::StoreError;
use surge_store::ledger::SqliteLedger;
use surge_store::social::Mark;
use surge_store::social::sqlite::MarkRequest;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::apps::Apps;
use super::writer::{AppWriter, Job, Tx, WriterCommand, submit};
use crate::EngineError;
use crate::social::{ArticleCache, MarkCommands};

/// A mark's count after it, filled in when its batch writes the marks (`None`: no such article).
type CountSlot = Arc<OnceLock<Option<i64>>>;

/// The embedded marks: a handle to the writer.
#[derive(Clone)]
pub struct EmbeddedMarks {
    jobs: mpsc::Sender<Job>,
}

impl EmbeddedMarks {
    pub(crate) fn new(jobs: mpsc::Sender<Job>) -> Self {
        Self { jobs }
    }
}

#[async_trait]
impl MarkCommands for EmbeddedMarks {
    async fn set(
        &self,
        mark: Mark,
        article: Uuid,
        user: Uuid,
        on: bool,
    ) -> Result<i64, EngineError> {
        let slot = submit(&self.jobs, MarkRequest { mark, article, user, on }).await?;
        // The reply comes after the COMMIT, so the batch has filled the slot.
        match slot.get() {
            Some(Some(count)) => Ok(*count),
            Some(None) => Err(EngineError::NotFound),
            None => Err(EngineError::Internal("a committed mark has no count".into())),
        }
    }
}

/// Social's state in the writer: this batch's marks, and the cache to update after it.
pub(crate) struct SocialWriter {
    cache: Arc<ArticleCache>,
    queued: Vec<(MarkRequest, CountSlot)>,
    /// The batch's last count per article and mark, for the cache.
    counts: HashMap<(Uuid, Mark), i64>,
}

impl SocialWriter {
    pub fn new(cache: Arc<ArticleCache>) -> Self {
        Self { cache, queued: Vec::new(), counts: HashMap::new() }
    }
}

#[async_trait]
impl AppWriter for SocialWriter {
    async fn flush(
        &mut self,
        ledger: &mut SqliteLedger,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let requests: Vec<MarkRequest> = self.queued.iter().map(|(request, _)| *request).collect();
        let answers = ledger.articles().apply_marks(&requests, now).await?;
        for ((request, slot), count) in self.queued.drain(..).zip(answers) {
            if let Some(count) = count {
                self.counts.insert((request.article, request.mark), count);
            }
            let _ = slot.set(count);
        }
        Ok(())
    }

    fn committed(&mut self) {
        for ((article, mark), count) in self.counts.drain() {
            self.cache.set_count(article, mark, count);
        }
    }

    fn rolled_back(&mut self) {
        self.queued.clear();
        self.counts.clear();
    }
}

#[async_trait]
impl WriterCommand for MarkRequest {
    type Output = CountSlot;

    async fn execute(self, apps: &mut Apps, _tx: &mut Tx<'_>) -> Result<CountSlot, EngineError> {
        let slot = CountSlot::default();
        apps.social.queued.push((self, slot.clone()));
        Ok(slot)
    }
}
