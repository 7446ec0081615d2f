//! A stand-in for LeetCode's GraphQL endpoint: a few hundred real problem slugs answering the
//! `questionData` query the way LeetCode does (`stats` a JSON string, `question: null` for an
//! unknown slug). `--demo` uses it while `ratings.upstream_url` is left at its default, so the
//! ratings work offline; the tests and `surge-bench ratings` start it (`surge mock-leetcode`)
//! and switch it to slow, down or garbage to see what the server does then.
//!
//! Control, for a stand-in in another process: `PUT /control` with
//! `{"mode": "normal"|"slow"|"down"|"garbage", "latency_ms": N}`, and `GET /control` for the
//! mode, the slugs it knows and the calls answered so far (`{"calls": N, "by_slug": {…}}`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const PROBLEMS: &str = include_str!("leetcode_problems.txt");
const TAGS: [(&str, &str); 16] = [
    ("Array", "array"),
    ("String", "string"),
    ("Hash Table", "hash-table"),
    ("Dynamic Programming", "dynamic-programming"),
    ("Math", "math"),
    ("Sorting", "sorting"),
    ("Greedy", "greedy"),
    ("Depth-First Search", "depth-first-search"),
    ("Binary Search", "binary-search"),
    ("Breadth-First Search", "breadth-first-search"),
    ("Tree", "tree"),
    ("Two Pointers", "two-pointers"),
    ("Stack", "stack"),
    ("Linked List", "linked-list"),
    ("Graph", "graph"),
    ("Sliding Window", "sliding-window"),
];

/// How the stand-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answers after `latency_ms`.
    Normal,
    /// Answers after 10 seconds: slower than any sensible timeout.
    Slow,
    /// 503 for everything.
    Down,
    /// 200 with an HTML page (what a bot challenge looks like).
    Garbage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Control {
    pub mode: Mode,
    #[serde(default)]
    pub latency_ms: u64,
}

struct Stand {
    problems: HashMap<String, Value>,
    control: std::sync::RwLock<Control>,
    calls: AtomicU64,
    by_slug: std::sync::Mutex<HashMap<String, u64>>,
}

/// A running stand-in; stops when dropped.
pub struct MockLeetCode {
    stand: Arc<Stand>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MockLeetCode {
    /// Starts one on `listen` (port 0 for any free port).
    pub async fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let stand = Arc::new(Stand {
            problems: problems(),
            control: std::sync::RwLock::new(Control { mode: Mode::Normal, latency_ms: 0 }),
            calls: AtomicU64::new(0),
            by_slug: Default::default(),
        });
        let app = Router::new()
            .route("/graphql", post(graphql))
            .route("/control", get(read_control).put(write_control))
            .with_state(stand.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { stand, addr, task })
    }

    /// The URL to give `ratings.upstream_url`.
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn set(&self, mode: Mode, latency: Duration) {
        let control = Control { mode, latency_ms: latency.as_millis() as u64 };
        *self.stand.control.write().unwrap_or_else(|e| e.into_inner()) = control;
    }

    /// The `questionData` calls answered (or refused) so far.
    pub fn calls(&self) -> u64 {
        self.stand.calls.load(Ordering::SeqCst)
    }

    /// Those calls for one slug.
    pub fn calls_for(&self, slug: &str) -> u64 {
        let by_slug = self.stand.by_slug.lock().unwrap_or_else(|e| e.into_inner());
        by_slug.get(slug).copied().unwrap_or(0)
    }

    /// Every slug the stand-in knows.
    pub fn slugs(&self) -> Vec<String> {
        let mut slugs: Vec<String> = self.stand.problems.keys().cloned().collect();
        slugs.sort();
        slugs
    }

    /// Runs until the process ends (the `mock-leetcode` subcommand).
    pub async fn wait(self) {
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for MockLeetCode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn graphql(State(stand): State<Arc<Stand>>, body: axum::body::Bytes) -> Response {
    let slug = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|request| request["variables"]["titleSlug"].as_str().map(str::to_owned))
        .unwrap_or_default();
    stand.calls.fetch_add(1, Ordering::SeqCst);
    *stand.by_slug.lock().unwrap_or_else(|e| e.into_inner()).entry(slug.clone()).or_default() += 1;
    let control = stand.control.read().unwrap_or_else(|e| e.into_inner()).clone();
    let latency = match control.mode {
        Mode::Slow => Duration::from_secs(10),
        _ => Duration::from_millis(control.latency_ms),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match control.mode {
        Mode::Down => (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
        Mode::Garbage => {
            (StatusCode::OK, "<html><body>Checking your browser…</body></html>").into_response()
        }
        Mode::Normal | Mode::Slow => {
            let question = stand.problems.get(&slug).cloned().unwrap_or(Value::Null);
            Json(json!({ "data": { "question": question } })).into_response()
        }
    }
}

async fn read_control(State(stand): State<Arc<Stand>>) -> Json<Value> {
    let control = stand.control.read().unwrap_or_else(|e| e.into_inner()).clone();
    let by_slug = stand.by_slug.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut slugs: Vec<&String> = stand.problems.keys().collect();
    slugs.sort();
    Json(json!({ "mode": control.mode, "latency_ms": control.latency_ms, "slugs": slugs,
                 "calls": stand.calls.load(Ordering::SeqCst), "by_slug": by_slug }))
}

async fn write_control(
    State(stand): State<Arc<Stand>>,
    Json(control): Json<Control>,
) -> StatusCode {
    *stand.control.write().unwrap_or_else(|e| e.into_inner()) = control;
    StatusCode::NO_CONTENT
}

/// FNV-1a: a stable hash, so a slug's tags and rate are the same on every run.
fn hash(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The problems as LeetCode's `question` objects, by slug.
fn problems() -> HashMap<String, Value> {
    PROBLEMS
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (id, slug, level) = (fields.next()?, fields.next()?, fields.next()?);
            let h = hash(slug);
            let (difficulty, low, span) = match level {
                "E" => ("Easy", 45.0, 35.0),
                "M" => ("Medium", 30.0, 35.0),
                _ => ("Hard", 18.0, 32.0),
            };
            let rate = low + (h % 1000) as f64 / 1000.0 * span;
            let tags: Vec<Value> = (0..1 + (h >> 10) % 3)
                .map(|i| TAGS[((h >> (16 + 4 * i)) % TAGS.len() as u64) as usize])
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|(name, slug)| json!({ "name": name, "slug": slug }))
                .collect();
            let stats = json!({
                "totalAccepted": format!("{}K", 100 + h % 9000),
                "totalSubmission": format!("{}K", 300 + h % 20000),
                "acRate": format!("{rate:.1}%"),
            });
            let question = json!({
                "questionId": id,
                "title": title(slug),
                "difficulty": difficulty,
                "topicTags": tags,
                "stats": stats.to_string(),
            });
            Some((slug.to_owned(), question))
        })
        .collect()
}

/// `two-sum-ii-input-array-is-sorted` → `Two Sum Ii Input Array Is Sorted`.
fn title(slug: &str) -> String {
    slug.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_hundred_problems_answer_in_leetcodes_shape() {
        let problems = problems();
        assert!(problems.len() >= 300, "{}", problems.len());
        let two_sum = &problems["two-sum"];
        assert_eq!(two_sum["title"], "Two Sum");
        assert_eq!(two_sum["difficulty"], "Easy");
        let stats: Value = serde_json::from_str(two_sum["stats"].as_str().unwrap()).unwrap();
        assert!(stats["acRate"].as_str().unwrap().ends_with('%'));
        assert!(!two_sum["topicTags"].as_array().unwrap().is_empty());
    }
}
