//! The social scenario, every phase next to the `/healthz` ceiling of the same run:
//!
//! 1. the cached top-liked list (`GET /articles/top-liked?n=10`), closed loop;
//! 2. reading one published article with its read counted (`GET /articles/{id}`): every request
//!    counts a read, none costs a database write;
//! 3. the like storm: every connection is its own user and likes, then takes back, one article,
//!    in a loop (each request changes the count); then the check that the count equals the
//!    likes left standing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{API, Account};
use crate::client::{Endpoint, Reply};
use crate::load::{self, Outcome, Workload};
use crate::report::{self, Check, PhaseReport};
use crate::scenarios::{PhaseArgs, healthz, run_tag, signup_accounts};

/// Options of the `social` scenario.
#[derive(Args, Clone, Debug)]
pub struct SocialArgs {
    #[command(flatten)]
    phase: PhaseArgs,
}

/// Like, then unlike, then like… one article; connection `i` is user `i`.
struct LikeToggle {
    uri: Uri,
    auth: Vec<HeaderValue>,
    /// Requests sent per connection: even sends a like, odd takes it back.
    sent: Vec<AtomicU64>,
}

impl Workload for LikeToggle {
    fn request(&self, conn: usize) -> Request<Full<Bytes>> {
        let n = self.sent[conn].fetch_add(1, Ordering::Relaxed);
        let mut req = Request::new(Full::new(Bytes::new()));
        *req.method_mut() = if n.is_multiple_of(2) { Method::PUT } else { Method::DELETE };
        *req.uri_mut() = self.uri.clone();
        req.headers_mut().insert(header::AUTHORIZATION, self.auth[conn].clone());
        req
    }

    fn classify(&self, _conn: usize, reply: &Reply) -> Outcome {
        if reply.status == StatusCode::OK { Outcome::Success } else { Outcome::Error }
    }
}

#[derive(Serialize)]
struct SocialJson<'a> {
    scenario: &'static str,
    ceiling: &'a PhaseReport,
    top_liked: &'a PhaseReport,
    top_liked_vs_ceiling: f64,
    article_reads: &'a PhaseReport,
    article_reads_vs_ceiling: f64,
    like_storm: &'a PhaseReport,
    like_storm_vs_ceiling: f64,
    checks: &'a [Check],
}

async fn send(
    endpoint: &Endpoint,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Reply> {
    let mut conn = endpoint.connect().await?;
    let req = endpoint.request(
        method,
        &format!("{API}{path}"),
        token,
        body.map(|b| Bytes::from(b.to_string())),
    )?;
    conn.send(req).await
}

pub async fn run(endpoint: &Endpoint, args: &SocialArgs, json: bool) -> Result<bool> {
    let plan = args.phase.plan();
    eprintln!(
        "surge-bench: social — {} connections, {} s warm-up, {} s measured per phase",
        plan.connections, args.phase.warmup_secs, args.phase.duration_secs
    );
    let tag = run_tag();
    eprintln!("surge-bench: signing up {} likers and an author", plan.connections);
    let author = signup_accounts(endpoint, &tag, 'a', 1, 1).await?.remove(0);
    let likers = signup_accounts(endpoint, &tag, 'l', plan.connections, 8).await?;
    let article = write_published(endpoint, &author, "The bench article").await?;
    for n in 0..20 {
        write_published(endpoint, &author, &format!("Bench article {n}")).await?;
    }

    let (ceiling, details) = healthz::ceiling(endpoint, plan).await;
    report::print_details(details);
    let (top_liked, details) =
        healthz::get_phase(endpoint, plan, "/api/v1/articles/top-liked?n=10", "top-liked (cached)")
            .await;
    report::print_details(details);
    let path: &'static str = Box::leak(format!("{API}/articles/{article}").into_boxed_str());
    let (reads, details) =
        healthz::get_phase(endpoint, plan, path, "GET an article (read counted)").await;
    report::print_details(details);
    let workload = Arc::new(LikeToggle {
        uri: format!("{API}/articles/{article}/like").parse()?,
        auth: likers
            .iter()
            .map(|l| HeaderValue::from_str(&format!("Bearer {}", l.access_token)))
            .collect::<Result<_, _>>()?,
        sent: (0..likers.len()).map(|_| AtomicU64::new(0)).collect(),
    });
    let stats = load::run_phase(std::slice::from_ref(endpoint), plan, workload.clone()).await;
    let storm = PhaseReport::new("like storm (one article)", &stats, false);
    report::print_details(report::error_details(&storm, &stats));

    // Requests sent but unanswered at the end leave a like in an unknown state: ask every liker.
    let mut standing = 0;
    for liker in &likers {
        let reply = send(
            endpoint,
            Method::GET,
            &format!("/articles/{article}"),
            Some(&liker.access_token),
            None,
        )
        .await?;
        if reply.json::<Value>()?["liked"] == true {
            standing += 1;
        }
    }
    let reply = send(endpoint, Method::GET, &format!("/articles/{article}"), None, None).await?;
    let counted = reply.json::<Value>()?["like_count"].as_i64().unwrap_or(-1);
    let ratio = |r: &PhaseReport| r.requests_per_sec / ceiling.requests_per_sec.max(1.0);
    let checks = vec![
        Check::new(
            "the like count equals the likes standing",
            counted == standing,
            format!("{counted} counted, {standing} standing"),
        ),
        Check::new(
            "no errors",
            top_liked.errors + reads.errors + storm.errors == 0,
            format!("{} / {} / {}", top_liked.errors, reads.errors, storm.errors),
        ),
    ];
    if json {
        report::print_json(&SocialJson {
            scenario: "social",
            ceiling: &ceiling,
            top_liked: &top_liked,
            top_liked_vs_ceiling: ratio(&top_liked),
            article_reads: &reads,
            article_reads_vs_ceiling: ratio(&reads),
            like_storm: &storm,
            like_storm_vs_ceiling: ratio(&storm),
            checks: &checks,
        })?;
    } else {
        print!("{}", report::phase_table(&[&ceiling, &top_liked, &reads, &storm]));
        println!(
            "\ntop-liked = {:.1}% of the ceiling (target ≥ 80%); article reads = {:.1}% (≥ 60%); like storm = {:.1}% (≥ 40% embedded)\n",
            100.0 * ratio(&top_liked),
            100.0 * ratio(&reads),
            100.0 * ratio(&storm)
        );
        for check in &checks {
            println!("{}", check.line());
        }
    }
    Ok(checks.iter().all(|c| c.passed))
}

/// A published article of `author`'s; its id.
async fn write_published(endpoint: &Endpoint, author: &Account, title: &str) -> Result<String> {
    let body = json!({ "title": title, "content": "Written by the bench." });
    let reply =
        send(endpoint, Method::POST, "/articles", Some(&author.access_token), Some(body)).await?;
    if reply.status != StatusCode::CREATED {
        bail!("POST /articles: {} {}", reply.status, String::from_utf8_lossy(&reply.body));
    }
    let id = reply.json::<Value>()?["id"].as_str().context("an article id")?.to_owned();
    let published = send(
        endpoint,
        Method::POST,
        &format!("/articles/{id}/publish"),
        Some(&author.access_token),
        None,
    )
    .await?;
    published.expect(StatusCode::OK, "publishing")?;
    Ok(id)
}
