//! Likes and collects: the count answered by every mark is the count stored, a second like or
//! a take-back of nothing changes nothing, and the two kinds of mark count apart — one at a
//! time on both backends, and as the embedded writer's batch on SQLite.

use surge_core::social::ArticleStatus;
use surge_store::ledger::SqliteLedger;
use surge_store::social::sqlite::MarkRequest;
use surge_store::social::{Mark, NewArticle};
use uuid::Uuid;

use crate::support::{Backend, SECOND, t};

contract!(each_mark_answers_the_stored_count_and_a_repeat_changes_nothing);

/// A published article by a new author.
async fn published(b: &Backend) -> Uuid {
    let author = b.user("author").await;
    let id = Uuid::now_v7();
    let article = NewArticle {
        id,
        author_id: author,
        title: "Marks".into(),
        content: String::new(),
        created_at: t(0),
    };
    b.articles.create(article).await.unwrap();
    b.articles.set_status(id, author, ArticleStatus::Published, t(SECOND)).await.unwrap();
    id
}

async fn each_mark_answers_the_stored_count_and_a_repeat_changes_nothing(b: &Backend) {
    let id = published(b).await;
    let (ann, bob) = (b.user("ann").await, b.user("bob").await);
    let a = &b.articles;

    let steps = [
        (Mark::Like, ann, true, 1),
        (Mark::Like, ann, true, 1),
        (Mark::Like, bob, true, 2),
        (Mark::Collect, bob, true, 1),
        (Mark::Like, ann, false, 1),
        (Mark::Like, ann, false, 1),
        (Mark::Collect, ann, false, 1),
        (Mark::Like, ann, true, 2),
    ];
    for (n, (mark, user, on, expected)) in steps.into_iter().enumerate() {
        let answered = a.mark(mark, id, user, on, t(2 * SECOND)).await.unwrap();
        assert_eq!(answered, expected, "step {n}: {mark:?} by {user} on={on}");
        let stored = a.get(id).await.unwrap().unwrap();
        let stored = match mark {
            Mark::Like => stored.like_count,
            Mark::Collect => stored.collect_count,
        };
        assert_eq!(stored, expected, "step {n}: the stored count");
    }
    assert_eq!(a.marks_of(id, ann).await.unwrap(), (true, false));
    assert_eq!(a.marks_of(id, bob).await.unwrap(), (true, true));
}

#[tokio::test]
async fn a_batch_of_marks_is_played_in_order_and_only_the_difference_written() {
    crate::support::on_sqlite(|b| async move {
        let id = published(&b).await;
        let (ann, bob, cy) = (b.user("ann").await, b.user("bob").await, b.user("cy").await);
        b.articles.mark(Mark::Like, id, cy, true, t(SECOND)).await.unwrap();
        let (writer, draft) = (b.user("writer").await, Uuid::now_v7());
        let article = NewArticle {
            id: draft,
            author_id: writer,
            title: "Draft".into(),
            content: String::new(),
            created_at: t(0),
        };
        b.articles.create(article).await.unwrap();
        let pool = b.sqlite_pool().unwrap();
        let mut ledger = SqliteLedger::new(pool.acquire().await.unwrap().detach());
        let like = |user, on| MarkRequest { mark: Mark::Like, article: id, user, on };
        let requests = [
            like(ann, true),
            like(ann, true),
            like(cy, true),
            like(bob, true),
            like(ann, false),
            MarkRequest { mark: Mark::Collect, article: id, user: bob, on: true },
            like(cy, false),
            like(ann, true),
            MarkRequest { mark: Mark::Like, article: Uuid::now_v7(), user: ann, on: true },
            MarkRequest { mark: Mark::Like, article: draft, user: ann, on: true },
            MarkRequest { mark: Mark::Like, article: draft, user: writer, on: true },
        ];
        ledger.begin().await.unwrap();
        let answers = ledger.articles().apply_marks(&requests, t(2 * SECOND)).await.unwrap();
        ledger.commit().await.unwrap();
        // The unknown article and someone else's draft: no answer, nothing written.
        let expected = [
            Some(2),
            Some(2),
            Some(2),
            Some(3),
            Some(2),
            Some(1),
            Some(1),
            Some(2),
            None,
            None,
            Some(1),
        ];
        assert_eq!(answers, expected);

        let stored = b.articles.get(id).await.unwrap().unwrap();
        assert_eq!((stored.like_count, stored.collect_count), (2, 1));
        assert_eq!(b.articles.marks_of(id, ann).await.unwrap(), (true, false));
        assert_eq!(b.articles.marks_of(id, bob).await.unwrap(), (true, true));
        assert_eq!(b.articles.marks_of(id, cy).await.unwrap(), (false, false));
        assert_eq!(b.articles.marks_of(draft, ann).await.unwrap(), (false, false));
        assert_eq!(b.articles.get(draft).await.unwrap().unwrap().like_count, 1);
    })
    .await;
}
