//! The demo's articles: 300 by the three demo users, published over the past week (a few left
//! as drafts), liked by them and twelve demo readers, so the top-liked and hot lists show
//! something at once.

use chrono::{DateTime, Duration, Utc};
use surge_core::accounts::UserRef;
use surge_core::social::ArticleStatus;
use surge_store::accounts::{NewUser, UserStore};
use surge_store::social::{ArticleStore, Mark, NewArticle};
use uuid::Uuid;

const ARTICLES: usize = 300;
const READERS: usize = 12;
const TOPICS: [&str; 10] = [
    "flash sales",
    "seat maps",
    "last-minute deals",
    "auction sniping",
    "rate limits",
    "hot keys",
    "cache stampedes",
    "idempotent likes",
    "durable jobs",
    "SMS codes",
];

/// Seeds the articles and the readers (who share the demo password `hash`); returns how many
/// articles were made.
pub async fn seed(
    store: &dyn ArticleStore,
    users: &dyn UserStore,
    authors: &[UserRef],
    hash: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut likers: Vec<Uuid> = authors.iter().map(|a| a.id).collect();
    for n in 1..=READERS {
        let reader = users
            .create(NewUser {
                id: Uuid::now_v7(),
                email: format!("reader{n}@surge.test"),
                password_hash: hash.to_owned(),
                nickname: format!("reader{n}"),
                created_at: now,
            })
            .await?;
        likers.push(reader.id);
    }
    for n in 0..ARTICLES {
        let author = &authors[n % authors.len()];
        let topic = TOPICS[n % TOPICS.len()];
        let id = Uuid::now_v7();
        let written =
            now - Duration::minutes((ARTICLES - n) as i64 * 7 * 24 * 60 / ARTICLES as i64);
        store
            .create(NewArticle {
                id,
                author_id: author.id,
                title: format!("Notes on {topic}, part {}", n / TOPICS.len() + 1),
                content: format!(
                    "{} writes about {topic}: what happens when everyone arrives at once, and \
                     what keeps the answer right when they do.",
                    author.nickname
                ),
                created_at: written,
            })
            .await?;
        if n % 10 == 9 {
            continue; // a draft
        }
        store.set_status(id, author.id, ArticleStatus::Published, written).await?;
        let likes = (n * 7 + n / 13) % (likers.len() + 1);
        for liker in &likers[..likes] {
            store.mark(Mark::Like, id, *liker, true, written).await?;
        }
    }
    Ok(ARTICLES)
}
