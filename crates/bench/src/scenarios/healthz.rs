//! The `/healthz` ceiling: the fastest Surge can answer anything over HTTP on this machine.
//!
//! Every other figure is read against it — a bid path at 60 % of the ceiling is spending 40 % of
//! the budget on its own work.

use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::{Method, Request, StatusCode, Uri};
use serde::Serialize;

use crate::client::{Endpoint, Reply};
use crate::load::{self, Outcome, PhasePlan, Workload};
use crate::report::{self, PhaseReport};
use crate::scenarios::PhaseArgs;

/// Options of the `healthz` scenario.
#[derive(Args, Clone, Debug)]
pub struct HealthzArgs {
    #[command(flatten)]
    phase: PhaseArgs,
}

/// `GET` of one fixed path in a loop; 200 is success.
struct GetWorkload {
    uri: Uri,
}

impl Workload for GetWorkload {
    fn request(&self, _conn: usize) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = Method::GET;
        *req.uri_mut() = self.uri.clone();
        req
    }

    fn classify(&self, _conn: usize, reply: &Reply) -> Outcome {
        if reply.status == StatusCode::OK { Outcome::Success } else { Outcome::Error }
    }
}

/// Measures the `/healthz` ceiling with `plan`; shared with the bid storm so both phases run
/// with identical settings. With several replicas it is measured on the one given: replicas on
/// one machine share its cores, so one replica answering nothing but `/healthz` is already
/// what the machine can serve over HTTP.
pub async fn ceiling(endpoint: &Endpoint, plan: PhasePlan) -> (PhaseReport, Option<String>) {
    get_phase(endpoint, plan, "/healthz", "/healthz ceiling").await
}

/// A closed-loop phase of `GET path` (200 = success), reported under `label`, with the error
/// details when some requests failed.
pub async fn get_phase(
    endpoint: &Endpoint,
    plan: PhasePlan,
    path: &str,
    label: &str,
) -> (PhaseReport, Option<String>) {
    let uri: Uri = path.parse().expect("the bench builds valid paths");
    let workload = Arc::new(GetWorkload { uri });
    let stats = load::run_phase(std::slice::from_ref(endpoint), plan, workload).await;
    let report = PhaseReport::new(label, &stats, false);
    let details = report::error_details(&report, &stats);
    (report, details)
}

#[derive(Serialize)]
struct HealthzJson<'a> {
    scenario: &'static str,
    ceiling: &'a PhaseReport,
}

/// Runs the `healthz` scenario; it fails only if not a single request was answered (errors
/// are reported in the table, they are not an invariant).
pub async fn run(endpoint: &Endpoint, args: &HealthzArgs, json: bool) -> Result<bool> {
    eprintln!(
        "surge-bench: /healthz ceiling — {} connections, {} s warm-up, {} s measured",
        args.phase.connections, args.phase.warmup_secs, args.phase.duration_secs
    );
    let (report, details) = ceiling(endpoint, args.phase.plan()).await;
    report::print_details(details);
    if json {
        report::print_json(&HealthzJson { scenario: "healthz", ceiling: &report })?;
    } else {
        print!("{}", report::phase_table(&[&report]));
    }
    Ok(report.requests > 0)
}
