//! The durable job queue: dedupe keys, leases that run out, retries, dead jobs, and a worker
//! that lost its lease changing nothing.

use surge_store::jobs::{AfterFailure, NewJob};
use uuid::Uuid;

use crate::support::{Backend, SECOND, t};

contract!(
    an_active_key_is_enqueued_once_and_again_after_the_job_is_done,
    a_claimed_job_is_claimed_again_only_after_its_lease_runs_out,
    a_failed_attempt_is_retried_at_its_time_and_dead_after_the_last,
    a_worker_that_lost_its_lease_changes_nothing,
    released_running_jobs_are_claimable_at_once,
);

fn job(kind: &str, key: Option<&str>, run_at_micros: i64, max_attempts: u32) -> NewJob {
    NewJob {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        dedupe_key: key.map(str::to_owned),
        payload: r#"{"slug":"two-sum"}"#.to_owned(),
        run_at: t(run_at_micros),
        max_attempts,
    }
}

async fn an_active_key_is_enqueued_once_and_again_after_the_job_is_done(b: &Backend) {
    let q = &b.jobs;
    assert!(q.enqueue(job("fetch", Some("a"), 0, 3), t(0)).await.unwrap());
    assert!(!q.enqueue(job("fetch", Some("a"), 0, 3), t(0)).await.unwrap(), "a duplicate");
    assert!(q.enqueue(job("other", Some("a"), 0, 3), t(0)).await.unwrap(), "another kind");
    assert!(q.enqueue(job("fetch", None, 0, 3), t(0)).await.unwrap());
    assert!(q.enqueue(job("fetch", None, 0, 3), t(0)).await.unwrap(), "no key, no dedupe");

    let claimed = q.claim(&["fetch"], "w1", t(SECOND), t(10 * SECOND), 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|job| job.attempt == 1 && job.payload.contains("two-sum")));
    assert!(!q.enqueue(job("fetch", Some("a"), 0, 3), t(0)).await.unwrap(), "still running");
    for job in &claimed {
        assert!(q.complete(job, "w1").await.unwrap());
    }
    assert!(q.find("fetch", "a").await.unwrap().is_empty(), "done jobs are removed");
    assert!(q.enqueue(job("fetch", Some("a"), 0, 3), t(0)).await.unwrap(), "again once done");
}

async fn a_claimed_job_is_claimed_again_only_after_its_lease_runs_out(b: &Backend) {
    let q = &b.jobs;
    q.enqueue(job("fetch", Some("k"), 5 * SECOND, 3), t(0)).await.unwrap();
    assert!(
        q.claim(&["fetch"], "w1", t(4 * SECOND), t(9 * SECOND), 5).await.unwrap().is_empty(),
        "not due"
    );
    assert!(
        q.claim(&["other"], "w1", t(6 * SECOND), t(9 * SECOND), 5).await.unwrap().is_empty(),
        "not its kind"
    );
    let first = q.claim(&["fetch"], "w1", t(6 * SECOND), t(16 * SECOND), 5).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        q.claim(&["fetch"], "w2", t(15 * SECOND), t(25 * SECOND), 5).await.unwrap().is_empty(),
        "leased"
    );
    let second = q.claim(&["fetch"], "w2", t(16 * SECOND), t(26 * SECOND), 5).await.unwrap();
    assert_eq!(
        (second.len(), second[0].attempt),
        (1, 2),
        "the dead worker's job, a second attempt"
    );
    let third = q.claim(&["fetch"], "w3", t(26 * SECOND), t(36 * SECOND), 5).await.unwrap();
    assert_eq!(third[0].attempt, 3);
    // Its last attempt's worker died too: dead, not run a fourth time.
    assert!(q.claim(&["fetch"], "w4", t(36 * SECOND), t(46 * SECOND), 5).await.unwrap().is_empty());
    let record = &q.find("fetch", "k").await.unwrap()[0];
    assert_eq!((record.status.as_str(), record.attempts), ("dead", 3));
    assert!(record.last_error.as_deref().unwrap().contains("stopped"));
}

async fn a_failed_attempt_is_retried_at_its_time_and_dead_after_the_last(b: &Backend) {
    let q = &b.jobs;
    q.enqueue(job("fetch", Some("r"), 0, 2), t(0)).await.unwrap();
    let first = q.claim(&["fetch"], "w1", t(SECOND), t(10 * SECOND), 5).await.unwrap().remove(0);
    let after = q.fail(&first, "w1", "upstream down", Some(t(3 * SECOND)), t(2 * SECOND)).await;
    assert_eq!(after.unwrap(), AfterFailure::Retrying);
    let record = &q.find("fetch", "r").await.unwrap()[0];
    assert_eq!((record.status.as_str(), record.run_at), ("queued", t(3 * SECOND)));
    assert_eq!(record.last_error.as_deref(), Some("upstream down"));
    assert!(q.claim(&["fetch"], "w1", t(2 * SECOND), t(12 * SECOND), 5).await.unwrap().is_empty());
    let second =
        q.claim(&["fetch"], "w2", t(3 * SECOND), t(13 * SECOND), 5).await.unwrap().remove(0);
    assert_eq!(second.attempt, 2);
    let after = q.fail(&second, "w2", "still down", Some(t(9 * SECOND)), t(4 * SECOND)).await;
    assert_eq!(after.unwrap(), AfterFailure::Dead, "its last attempt");
    assert!(q.claim(&["fetch"], "w3", t(60 * SECOND), t(70 * SECOND), 5).await.unwrap().is_empty());
    let counts = q.counts().await.unwrap();
    assert!(
        counts.iter().any(|c| c.kind == "fetch" && c.status == "dead" && c.count == 1),
        "{counts:?}"
    );

    // A failure no retry can fix is dead at once.
    q.enqueue(job("fetch", Some("p"), 0, 5), t(0)).await.unwrap();
    let doomed = q.claim(&["fetch"], "w1", t(SECOND), t(10 * SECOND), 5).await.unwrap().remove(0);
    assert_eq!(
        q.fail(&doomed, "w1", "bad payload", None, t(SECOND)).await.unwrap(),
        AfterFailure::Dead
    );
}

async fn a_worker_that_lost_its_lease_changes_nothing(b: &Backend) {
    let q = &b.jobs;
    q.enqueue(job("fetch", Some("l"), 0, 5), t(0)).await.unwrap();
    let stale = q.claim(&["fetch"], "w1", t(SECOND), t(2 * SECOND), 5).await.unwrap().remove(0);
    let current =
        q.claim(&["fetch"], "w2", t(3 * SECOND), t(13 * SECOND), 5).await.unwrap().remove(0);
    assert!(!q.complete(&stale, "w1").await.unwrap());
    let after = q.fail(&stale, "w1", "late", Some(t(4 * SECOND)), t(4 * SECOND)).await.unwrap();
    assert_eq!(after, AfterFailure::LeaseLost);
    assert_eq!(q.find("fetch", "l").await.unwrap()[0].status, "running");
    assert!(q.complete(&current, "w2").await.unwrap());
}

async fn released_running_jobs_are_claimable_at_once(b: &Backend) {
    let q = &b.jobs;
    q.enqueue(job("fetch", Some("x"), 0, 5), t(0)).await.unwrap();
    q.claim(&["fetch"], "old-process", t(SECOND), t(60 * SECOND), 5).await.unwrap();
    assert_eq!(q.release_running(t(2 * SECOND)).await.unwrap(), 1);
    let again = q.claim(&["fetch"], "new-process", t(2 * SECOND), t(12 * SECOND), 5).await.unwrap();
    assert_eq!((again.len(), again[0].attempt), (1, 2));
}
