//! SMS login codes: one live code per phone, stored as a keyed hash, shared by every process.
//! Each question is one statement, so replicas racing on one code agree: a code is used once,
//! and the wrong tries that kill it are counted exactly.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::StoreResult;

pub mod postgres;
pub mod sqlite;

/// What asking for a code did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// Stored (replacing the phone's earlier code).
    Stored,
    /// The last code for this phone was sent too recently; a new one may be asked for then.
    TooSoon { retry_at: DateTime<Utc> },
}

/// What a login with a code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The right code, now used.
    Accepted,
    /// A wrong code: `tries` wrong tries so far, this one included.
    Wrong { tries: u32 },
    /// The code took its last wrong try; a new one may be asked for at `retry_at`.
    Dead { retry_at: DateTime<Utc> },
    /// No live code for the phone (none sent, expired, or already used).
    NoCode,
}

#[async_trait]
pub trait SmsCodeStore: Send + Sync {
    /// Stores `code_hash` as the phone's code, sent `now`, living until `expires_at`, unless the
    /// last code was sent after `resend_after` (then: when a new one may be asked for).
    async fn issue(
        &self,
        phone: &str,
        code_hash: &[u8],
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        resend_after: chrono::Duration,
    ) -> StoreResult<Issued>;

    /// Checks `code_hash` against the phone's live code: uses it when right, counts a wrong try
    /// otherwise; a code with `max_wrong` wrong tries is dead.
    async fn check(
        &self,
        phone: &str,
        code_hash: &[u8],
        now: DateTime<Utc>,
        max_wrong: u32,
        resend_after: chrono::Duration,
    ) -> StoreResult<Checked>;
}
