//! The LeetCode GraphQL client: one `questionData` query per slug, with a timeout, an outbound
//! rate limit shared by every replica (waited for up to half the timeout, so an answer comes
//! within 1.5 timeouts), and honest parsing — `{"data":{"question":null}}` is
//! "no such problem", and anything unexpected is an error, never a made-up problem.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use surge_core::ratings::{Tag, parse_ac_rate};

use super::{Fetched, Upstream, UpstreamError, UpstreamProblem};
use crate::ratelimit::{Decision, Quota, RateLimiter};

/// LeetCode's public GraphQL endpoint: `ratings.upstream_url`'s default.
pub const LEETCODE_GRAPHQL: &str = "https://leetcode.com/graphql";

/// The query, asking only for what a problem's rating needs.
const QUESTION_QUERY: &str = "query questionData($titleSlug: String!) {
  question(titleSlug: $titleSlug) { questionId title difficulty topicTags { name slug } stats }
}";

/// The rate-limit key every replica's outbound calls share.
const RATE_KEY: &str = "ratings-upstream";

pub struct LeetCode {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
    limiter: Arc<dyn RateLimiter>,
    quota: Quota,
}

impl LeetCode {
    /// `per_second` calls at most, across every replica sharing `limiter`.
    pub fn new(
        url: String,
        timeout: Duration,
        per_second: u32,
        limiter: Arc<dyn RateLimiter>,
    ) -> Result<Self, UpstreamError> {
        let client = crate::outbound::client(timeout).map_err(UpstreamError::Unreachable)?;
        Ok(Self { client, url, timeout, limiter, quota: Quota::new(per_second.max(1), 1000) })
    }

    /// Waits for the outbound limit up to half the timeout; `Busy` past that. The call itself
    /// then gets the whole timeout: a call cut short by the wait before it would be a call
    /// made for nothing (the upstream answers, nobody listens, the job asks again).
    async fn wait_for_turn(&self, started: Instant) -> Result<(), UpstreamError> {
        loop {
            let decision = self
                .limiter
                .acquire(self.quota, RATE_KEY)
                .await
                .map_err(|error| UpstreamError::Unreachable(error.to_string()))?;
            let Decision::Denied { retry_after_ms } = decision else { return Ok(()) };
            let wait = Duration::from_millis(retry_after_ms.max(1) as u64);
            if started.elapsed() + wait >= self.timeout / 2 {
                return Err(UpstreamError::Busy);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[async_trait]
impl Upstream for LeetCode {
    async fn fetch(&self, slug: &str) -> Result<Fetched, UpstreamError> {
        let started = Instant::now();
        self.wait_for_turn(started).await?;
        let body = json!({
            "operationName": "questionData",
            "variables": { "titleSlug": slug },
            "query": QUESTION_QUERY,
        });
        let call = async {
            let response = self
                .client
                .post(&self.url)
                .header(reqwest::header::REFERER, format!("https://leetcode.com/problems/{slug}/"))
                .json(&body)
                .send()
                .await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        };
        let (status, bytes) = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(error)) if error.is_timeout() => return Err(UpstreamError::Timeout),
            Ok(Err(error)) => return Err(UpstreamError::Unreachable(error.to_string())),
            Ok(Ok(answer)) => answer,
        };
        if !status.is_success() {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        parse_answer(&bytes)
    }
}

#[derive(Deserialize)]
struct Answer {
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    /// Present and null: the upstream says there is no such problem.
    question: Option<Question>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Question {
    question_id: String,
    title: String,
    difficulty: String,
    topic_tags: Vec<Tag>,
    /// A JSON document inside a string: `{"acRate": "55.7%", …}`.
    stats: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    ac_rate: String,
}

/// Reads an answer body: a problem, "no such problem", or garbage (an error).
pub fn parse_answer(body: &[u8]) -> Result<Fetched, UpstreamError> {
    let garbage = |why: &str| UpstreamError::Garbage(why.to_owned());
    let answer: Answer =
        serde_json::from_slice(body).map_err(|_| garbage("the answer is not the expected JSON"))?;
    let data = answer.data.ok_or_else(|| garbage("the answer has no data"))?;
    let Some(question) = data.question else { return Ok(Fetched::Missing) };
    let stats: Stats = serde_json::from_str(&question.stats)
        .map_err(|_| garbage("the problem's stats are not the expected JSON"))?;
    let ac_rate = parse_ac_rate(&stats.ac_rate)
        .ok_or_else(|| garbage("the problem's acceptance rate is not a percentage"))?;
    if question.title.trim().is_empty() || question.difficulty.trim().is_empty() {
        return Err(garbage("the problem has no title or difficulty"));
    }
    Ok(Fetched::Found(UpstreamProblem {
        question_id: question.question_id,
        title: question.title,
        difficulty: question.difficulty,
        ac_rate,
        tags: question.topic_tags,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_read_with_its_rate_as_a_fraction_and_its_tags() {
        let body = br#"{"data":{"question":{"questionId":"1","title":"Two Sum","difficulty":"Easy",
            "topicTags":[{"name":"Array","slug":"array"},{"name":"Hash Table","slug":"hash-table"}],
            "stats":"{\"totalAccepted\": \"15M\", \"acRate\": \"55.7%\"}"}}}"#;
        let Ok(Fetched::Found(problem)) = parse_answer(body) else { panic!("not found") };
        assert_eq!(problem.title, "Two Sum");
        assert_eq!(problem.ac_rate, 0.557);
        assert_eq!(problem.tags[1], Tag { name: "Hash Table".into(), slug: "hash-table".into() });
    }

    #[test]
    fn a_null_question_means_no_such_problem_not_a_made_up_rating() {
        assert!(matches!(parse_answer(br#"{"data":{"question":null}}"#), Ok(Fetched::Missing)));
        let with_errors = br#"{"errors":[{"message":"no"}],"data":{"question":null}}"#;
        assert!(matches!(parse_answer(with_errors), Ok(Fetched::Missing)));
    }

    #[test]
    fn anything_else_is_garbage() {
        for body in [
            &b"<html>challenge</html>"[..],
            br#"{"data":null}"#,
            br#"{"errors":[{"message":"rate limited"}]}"#,
            br#"{"data":{"question":{"questionId":"1","title":"T","difficulty":"Easy","topicTags":[],"stats":"{}"}}}"#,
            br#"{"data":{"question":{"questionId":"1","title":"T","difficulty":"Easy","topicTags":[],"stats":"{\"acRate\":\"x\"}"}}}"#,
            br#"{"data":{"question":{"questionId":"1","title":"","difficulty":"Easy","topicTags":[],"stats":"{\"acRate\":\"5%\"}"}}}"#,
        ] {
            assert!(matches!(parse_answer(body), Err(UpstreamError::Garbage(_))), "{body:?}");
        }
    }
}
