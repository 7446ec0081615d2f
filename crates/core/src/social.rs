//! Social: articles and who may see them, and the hot score. Likes, collects and read counts
//! are kept by `surge-store::social` and `surge-engine::social`.

use uuid::Uuid;

use crate::validation::{FieldErrors, char_len};

pub const TITLE_MAX: usize = 200;
pub const CONTENT_MAX: usize = 100_000;
/// The most articles a ranking lists.
pub const RANKING_MAX: u32 = 100;
/// The hot list looks at articles published within this many days.
pub const HOT_WINDOW_DAYS: i64 = 7;

/// Where an article is in its life: only `published` ones are shown to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArticleStatus {
    Draft,
    Published,
    /// Withdrawn by its author: like a draft, seen by the author alone.
    Private,
}

impl ArticleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ArticleStatus::Draft => "draft",
            ArticleStatus::Published => "published",
            ArticleStatus::Private => "private",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(ArticleStatus::Draft),
            "published" => Some(ArticleStatus::Published),
            "private" => Some(ArticleStatus::Private),
            _ => None,
        }
    }
}

/// An article's title (trimmed) and content, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidArticle {
    pub title: String,
    pub content: String,
}

/// A title of 1–200 characters (after trimming) and a content of at most 100,000: the same
/// rules on create and on edit.
pub fn validate_article(title: &str, content: &str) -> Result<ValidArticle, FieldErrors> {
    let mut errors = FieldErrors::new();
    let title = title.trim();
    if title.is_empty() || char_len(title) > TITLE_MAX {
        errors.add("title", format!("must be 1 to {TITLE_MAX} characters"));
    }
    if char_len(content) > CONTENT_MAX {
        errors.add("content", format!("must be at most {CONTENT_MAX} characters"));
    }
    errors.into_result(ValidArticle { title: title.to_owned(), content: content.to_owned() })
}

/// Published articles are for everyone; drafts and withdrawn ones for their author alone.
pub fn visible_to(status: ArticleStatus, author: Uuid, viewer: Option<Uuid>) -> bool {
    status == ArticleStatus::Published || viewer == Some(author)
}

/// `(likes − 1) / (age_hours + 2)^1.8`: likes count, age wears them down.
pub fn hot_score(likes: i64, age_hours: f64) -> f64 {
    (likes as f64 - 1.0) / (age_hours.max(0.0) + 2.0).powf(1.8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded_and_content_is_bounded() {
        assert_eq!(validate_article("  Hi  ", "").unwrap().title, "Hi");
        assert!(validate_article("   ", "x").unwrap_err().contains("title"));
        assert!(validate_article(&"é".repeat(200), "").is_ok());
        assert!(validate_article(&"é".repeat(201), "").is_err());
        assert!(validate_article("t", &"x".repeat(100_001)).unwrap_err().contains("content"));
    }

    #[test]
    fn only_the_author_sees_drafts_and_withdrawn_articles() {
        let (author, other) = (Uuid::now_v7(), Uuid::now_v7());
        for status in [ArticleStatus::Draft, ArticleStatus::Private] {
            assert!(visible_to(status, author, Some(author)));
            assert!(!visible_to(status, author, Some(other)));
            assert!(!visible_to(status, author, None));
        }
        assert!(visible_to(ArticleStatus::Published, author, None));
    }

    #[test]
    fn the_hot_score_follows_the_formula() {
        assert_eq!(hot_score(1, 5.0), 0.0);
        assert!((hot_score(11, 0.0) - 10.0 / 2f64.powf(1.8)).abs() < 1e-12);
        assert!(hot_score(100, 1.0) > hot_score(100, 10.0));
    }
}
