//! Uploaded-image metadata.

use surge_store::images::ImageRecord;
use uuid::Uuid;

use crate::support::{Backend, t};

contract!(an_image_is_read_back_and_only_its_owner_owns_it);

async fn an_image_is_read_back_and_only_its_owner_owns_it(b: &Backend) {
    let owner = b.user("painter").await;
    let stranger = b.user("stranger").await;
    let record = ImageRecord {
        id: Uuid::now_v7(),
        owner_id: owner,
        content_type: "image/webp".to_owned(),
        bytes: 123_456,
        created_at: t(987_654),
    };
    b.images.create(record.clone()).await.unwrap();
    assert_eq!(b.images.get(record.id).await.unwrap(), Some(record.clone()));
    assert_eq!(b.images.get(Uuid::now_v7()).await.unwrap(), None);

    let second = b.image(owner).await;
    let theirs = b.image(stranger).await;
    let unknown = Uuid::now_v7();

    let mut owned = b.images.owned_by(owner, &[theirs, second, unknown, record.id]).await.unwrap();
    owned.sort();
    let mut expected = vec![record.id, second];
    expected.sort();
    assert_eq!(owned, expected);
    assert_eq!(
        b.images.owned_by(stranger, &[record.id, second]).await.unwrap(),
        Vec::<Uuid>::new()
    );
    assert_eq!(b.images.owned_by(owner, &[]).await.unwrap(), Vec::<Uuid>::new());
}
