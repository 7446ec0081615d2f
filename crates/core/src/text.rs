//! Text rules shared by every app's search.

/// Unicode case folding for title search, done in Rust so both backends fold alike (SQLite's
/// `lower()` only folds ASCII, PostgreSQL's depends on the cluster's locale).
pub fn fold(text: &str) -> String {
    text.to_lowercase()
}
