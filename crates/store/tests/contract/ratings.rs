//! LeetCode problems: saved and read back exactly, "no such problem" remembered, and pages by
//! rating (either way), tag and range that neither skip nor repeat.

use surge_core::ratings::{Problem, Tag};
use surge_store::ratings::{ProblemCursor, ProblemFilter};

use crate::support::{Backend, SECOND, t};

contract!(
    a_problem_reads_back_as_saved_and_a_missing_slug_is_remembered,
    pages_follow_rating_then_slug_with_tag_and_range
);

fn problem(slug: &str, rating: i32, tags: &[&str]) -> Problem {
    Problem {
        slug: slug.to_owned(),
        question_id: "7".to_owned(),
        title: format!("Title of {slug}"),
        difficulty: "Medium".to_owned(),
        ac_rate: 0.4321,
        rating,
        tags: tags
            .iter()
            .map(|tag| Tag { name: tag.to_uppercase(), slug: (*tag).to_owned() })
            .collect(),
        fetched_at: t(123_456),
    }
}

async fn a_problem_reads_back_as_saved_and_a_missing_slug_is_remembered(b: &Backend) {
    let p = &b.problems;
    let saved = problem("two-sum", 2000, &["array", "hash-table"]);
    p.save(&saved).await.unwrap();
    assert_eq!(p.get("two-sum").await.unwrap(), Some(saved.clone()));
    assert_eq!(p.get("three-sum").await.unwrap(), None);

    let refetched = Problem { rating: 1500, tags: vec![], fetched_at: t(SECOND), ..saved.clone() };
    p.save(&refetched).await.unwrap();
    assert_eq!(p.get("two-sum").await.unwrap(), Some(refetched));
    let by_tag = ProblemFilter { tag: Some("array".into()), ..Default::default() };
    assert!(p.page(&by_tag, None, 10).await.unwrap().is_empty(), "its old tags are gone");

    assert_eq!(p.missing_until("nope").await.unwrap(), None);
    p.remember_missing("nope", t(600 * SECOND)).await.unwrap();
    assert_eq!(p.missing_until("nope").await.unwrap(), Some(t(600 * SECOND)));
    p.remember_missing("two-sum", t(700 * SECOND)).await.unwrap();
    assert_eq!(p.get("two-sum").await.unwrap(), None, "withdrawn upstream");
    p.save(&saved).await.unwrap();
    assert_eq!(p.missing_until("two-sum").await.unwrap(), None, "found again");
}

async fn pages_follow_rating_then_slug_with_tag_and_range(b: &Backend) {
    let p = &b.problems;
    let mut all = Vec::new();
    for n in 0..30 {
        let tags: &[&str] = if n % 3 == 0 { &["graph", "tree"] } else { &["array"] };
        let saved = problem(&format!("p-{n:02}"), 1400 + (n % 7) * 100, tags);
        p.save(&saved).await.unwrap();
        all.push(saved);
    }
    all.sort_by(|a, b| (a.rating, &a.slug).cmp(&(b.rating, &b.slug)));
    let walk = |filter: ProblemFilter| async move {
        let mut seen = Vec::new();
        let mut after: Option<ProblemCursor> = None;
        loop {
            let page = p.page(&filter, after.as_ref(), 4).await.unwrap();
            if page.is_empty() {
                return seen;
            }
            let last = page.last().unwrap();
            after = Some(ProblemCursor { rating: last.rating, slug: last.slug.clone() });
            seen.extend(page.into_iter().map(|problem| problem.slug));
        }
    };
    let slugs = |list: &[&Problem]| list.iter().map(|p| p.slug.clone()).collect::<Vec<_>>();
    assert_eq!(walk(ProblemFilter::default()).await, slugs(&all.iter().collect::<Vec<_>>()));
    let descending = ProblemFilter { descending: true, ..Default::default() };
    assert_eq!(walk(descending).await, slugs(&all.iter().rev().collect::<Vec<_>>()));
    let tree = ProblemFilter {
        tag: Some("tree".into()),
        min_rating: Some(1500),
        max_rating: Some(1800),
        ..Default::default()
    };
    let expected: Vec<&Problem> = all
        .iter()
        .filter(|p| p.tags.iter().any(|t| t.slug == "tree") && (1500..=1800).contains(&p.rating))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(walk(tree).await, slugs(&expected));
    let tree_desc =
        ProblemFilter { tag: Some("tree".into()), descending: true, ..Default::default() };
    let expected: Vec<&Problem> =
        all.iter().rev().filter(|p| p.tags.iter().any(|t| t.slug == "tree")).collect();
    assert_eq!(walk(tree_desc).await, slugs(&expected));
}
