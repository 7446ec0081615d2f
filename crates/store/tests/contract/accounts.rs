//! Users and refresh-token families.

use chrono::NaiveDate;
use surge_store::StoreError;
use surge_store::accounts::{NewRefreshToken, NewUser, ProfilePatch, Rotation};
use uuid::Uuid;

use crate::support::{Backend, HOUR, MINUTE, t};

contract!(
    signing_up_stores_the_user_and_refuses_a_second_account_for_the_same_email,
    a_profile_patch_sets_keeps_and_clears_each_field,
    rotating_a_refresh_token_spends_it_and_continues_its_family,
    revoked_families_are_listed_by_when_they_were_revoked,
    presenting_a_spent_refresh_token_revokes_its_whole_family,
    expired_and_unknown_refresh_tokens_are_invalid,
    logging_out_revokes_only_the_family_of_the_presented_token,
    concurrent_rotations_of_one_token_let_exactly_one_through,
    roles_are_granted_and_revoked_by_email_for_existing_accounts_only,
);

fn new_user(email: &str, nickname: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        nickname: nickname.to_owned(),
        // Sub-microsecond digits are cut on the way in, the same on both backends.
        created_at: t(1_234_567) + chrono::Duration::nanoseconds(890),
    }
}

async fn signing_up_stores_the_user_and_refuses_a_second_account_for_the_same_email(b: &Backend) {
    let ada = new_user("ada@surge.test", "ada");
    let created = b.users.create(ada.clone()).await.unwrap();
    assert_eq!(created.id, ada.id);
    assert_eq!(created.email.as_deref(), Some("ada@surge.test"));
    assert_eq!(created.nickname, "ada");
    assert_eq!(
        (created.phone.clone(), created.birthday, created.about.clone()),
        (None, None, None)
    );
    assert_eq!(created.created_at, t(1_234_567));

    let again = b.users.create(new_user("ada@surge.test", "impostor")).await;
    assert!(matches!(again, Err(StoreError::Conflict("email"))), "{again:?}");

    assert_eq!(b.users.get(ada.id).await.unwrap(), Some(created.clone()));
    assert_eq!(b.users.get(Uuid::now_v7()).await.unwrap(), None);

    let credentials = b.users.credentials_by_email("ada@surge.test").await.unwrap().unwrap();
    assert_eq!(credentials.user, created);
    assert_eq!(credentials.password_hash.as_deref(), Some(ada.password_hash.as_str()));
    assert!(b.users.credentials_by_email("nobody@surge.test").await.unwrap().is_none());
}

async fn a_profile_patch_sets_keeps_and_clears_each_field(b: &Backend) {
    let id = b.user("grace").await;
    let birthday = NaiveDate::from_ymd_opt(1906, 12, 9).unwrap();

    let set = ProfilePatch {
        nickname: Some("amazing grace".to_owned()),
        birthday: Some(Some(birthday)),
        about: Some(Some("Wrote the first compiler.".to_owned())),
    };
    let user = b.users.update_profile(id, set, t(HOUR)).await.unwrap().unwrap();
    assert_eq!(user.nickname, "amazing grace");
    assert_eq!(user.birthday, Some(birthday));
    assert_eq!(user.about.as_deref(), Some("Wrote the first compiler."));

    let keep = ProfilePatch { about: Some(Some("Admiral.".to_owned())), ..Default::default() };
    let user = b.users.update_profile(id, keep, t(2 * HOUR)).await.unwrap().unwrap();
    assert_eq!(user.nickname, "amazing grace");
    assert_eq!(user.birthday, Some(birthday));
    assert_eq!(user.about.as_deref(), Some("Admiral."));

    let clear = ProfilePatch { nickname: None, birthday: Some(None), about: Some(None) };
    let user = b.users.update_profile(id, clear, t(3 * HOUR)).await.unwrap().unwrap();
    assert_eq!(user.nickname, "amazing grace");
    assert_eq!((user.birthday, user.about.clone()), (None, None));
    assert_eq!(b.users.get(id).await.unwrap(), Some(user));

    let nobody = b.users.update_profile(Uuid::now_v7(), ProfilePatch::default(), t(HOUR)).await;
    assert_eq!(nobody.unwrap(), None);
}

/// A token of `family` for `user`, identified by `hash`, expiring an hour after `t(0)`.
fn token(user_id: Uuid, family_id: Uuid, hash: &[u8]) -> NewRefreshToken {
    NewRefreshToken {
        id: Uuid::now_v7(),
        family_id,
        user_id,
        token_hash: hash.to_vec(),
        expires_at: t(HOUR),
        created_at: t(0),
    }
}

/// The next token of a rotation: family and user are deliberately wrong, the store must take
/// them from the spent token.
fn next_token(hash: &[u8]) -> NewRefreshToken {
    token(Uuid::nil(), Uuid::nil(), hash)
}

async fn rotating_a_refresh_token_spends_it_and_continues_its_family(b: &Backend) {
    let user = b.user("alan").await;
    let family_id = Uuid::now_v7();
    b.tokens.insert(token(user, family_id, b"first")).await.unwrap();

    let rotated = b.tokens.rotate(b"first", next_token(b"second"), t(MINUTE)).await.unwrap();
    assert_eq!(rotated, Rotation::Rotated { user_id: user, family_id });
    let rotated = b.tokens.rotate(b"second", next_token(b"third"), t(2 * MINUTE)).await.unwrap();
    assert_eq!(rotated, Rotation::Rotated { user_id: user, family_id });

    // The third token is in the first one's family: revoking through it ends the first too.
    let revoked = b.tokens.revoke_family_of(b"third", t(3 * MINUTE)).await.unwrap();
    assert_eq!(revoked, Some(family_id));
    let first = b.tokens.rotate(b"first", next_token(b"x"), t(4 * MINUTE)).await.unwrap();
    assert_eq!(first, Rotation::Invalid);
    assert_eq!(b.tokens.revoke_family_of(b"unknown", t(4 * MINUTE)).await.unwrap(), None);
}

async fn revoked_families_are_listed_by_when_they_were_revoked(b: &Backend) {
    let user = b.user("rosa").await;
    let (early, late, live) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    b.tokens.insert(token(user, early, b"early")).await.unwrap();
    b.tokens.insert(token(user, late, b"late")).await.unwrap();
    b.tokens.insert(token(user, live, b"live")).await.unwrap();
    b.tokens.revoke_family_of(b"early", t(MINUTE)).await.unwrap();
    b.tokens.revoke_family_of(b"late", t(3 * MINUTE)).await.unwrap();

    let listed = b.tokens.revoked_since(t(0)).await.unwrap();
    assert!(listed.contains(&(early, t(MINUTE))), "{listed:?}");
    assert!(listed.contains(&(late, t(3 * MINUTE))), "{listed:?}");
    assert!(listed.iter().all(|(family, _)| *family != live), "{listed:?}");
    let recent = b.tokens.revoked_since(t(2 * MINUTE)).await.unwrap();
    assert!(recent.contains(&(late, t(3 * MINUTE))), "{recent:?}");
    assert!(recent.iter().all(|(family, _)| *family != early), "{recent:?}");
}

async fn presenting_a_spent_refresh_token_revokes_its_whole_family(b: &Backend) {
    let user = b.user("mallory").await;
    let (family_id, other_family) = (Uuid::now_v7(), Uuid::now_v7());
    b.tokens.insert(token(user, family_id, b"a1")).await.unwrap();
    b.tokens.insert(token(user, other_family, b"other-device")).await.unwrap();

    let rotated = b.tokens.rotate(b"a1", next_token(b"a2"), t(MINUTE)).await.unwrap();
    assert_eq!(rotated, Rotation::Rotated { user_id: user, family_id });

    let reused = b.tokens.rotate(b"a1", next_token(b"stolen"), t(2 * MINUTE)).await.unwrap();
    assert_eq!(reused, Rotation::ReuseDetected { family_id });
    // Nothing was issued for the reuse, and the newest token of the family is dead too.
    let stolen = b.tokens.rotate(b"stolen", next_token(b"s2"), t(3 * MINUTE)).await.unwrap();
    assert_eq!(stolen, Rotation::Invalid);
    let newest = b.tokens.rotate(b"a2", next_token(b"a3"), t(3 * MINUTE)).await.unwrap();
    assert_eq!(newest, Rotation::Invalid);
    // Once revoked, the spent token is merely invalid.
    let again = b.tokens.rotate(b"a1", next_token(b"a4"), t(4 * MINUTE)).await.unwrap();
    assert_eq!(again, Rotation::Invalid);

    // Another family of the same user is untouched.
    let other = b.tokens.rotate(b"other-device", next_token(b"o2"), t(5 * MINUTE)).await.unwrap();
    assert_eq!(other, Rotation::Rotated { user_id: user, family_id: other_family });
}

async fn expired_and_unknown_refresh_tokens_are_invalid(b: &Backend) {
    let user = b.user("eve").await;
    b.tokens.insert(token(user, Uuid::now_v7(), b"old")).await.unwrap();
    b.tokens.insert(token(user, Uuid::now_v7(), b"edge")).await.unwrap();

    let late = b.tokens.rotate(b"old", next_token(b"n1"), t(HOUR + 1)).await.unwrap();
    assert_eq!(late, Rotation::Invalid);
    // Expiry is exclusive: at `expires_at` the token is already dead.
    let edge = b.tokens.rotate(b"edge", next_token(b"n2"), t(HOUR)).await.unwrap();
    assert_eq!(edge, Rotation::Invalid);
    let unknown = b.tokens.rotate(b"never-issued", next_token(b"n3"), t(0)).await.unwrap();
    assert_eq!(unknown, Rotation::Invalid);
    // A refused rotation stored nothing.
    let n1 = b.tokens.rotate(b"n1", next_token(b"n4"), t(0)).await.unwrap();
    assert_eq!(n1, Rotation::Invalid);
}

async fn logging_out_revokes_only_the_family_of_the_presented_token(b: &Backend) {
    let user = b.user("bob").await;
    let phone_family = Uuid::now_v7();
    b.tokens.insert(token(user, Uuid::now_v7(), b"laptop")).await.unwrap();
    b.tokens.insert(token(user, phone_family, b"phone")).await.unwrap();

    b.tokens.revoke_family_of(b"laptop", t(MINUTE)).await.unwrap();
    b.tokens.revoke_family_of(b"never-issued", t(MINUTE)).await.unwrap();

    let laptop = b.tokens.rotate(b"laptop", next_token(b"l2"), t(2 * MINUTE)).await.unwrap();
    assert_eq!(laptop, Rotation::Invalid);
    let phone = b.tokens.rotate(b"phone", next_token(b"p2"), t(2 * MINUTE)).await.unwrap();
    assert_eq!(phone, Rotation::Rotated { user_id: user, family_id: phone_family });
}

async fn concurrent_rotations_of_one_token_let_exactly_one_through(b: &Backend) {
    let user = b.user("racer").await;
    b.tokens.insert(token(user, Uuid::now_v7(), b"shared")).await.unwrap();

    let mut racers = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let tokens = b.tokens.clone();
        racers.spawn(async move {
            tokens.rotate(b"shared", next_token(&[b'n', i]), t(MINUTE)).await.unwrap()
        });
    }
    let outcomes = racers.join_all().await;
    let rotated = outcomes.iter().filter(|o| matches!(o, Rotation::Rotated { .. })).count();
    let reused = outcomes.iter().filter(|o| matches!(o, Rotation::ReuseDetected { .. })).count();
    let invalid = outcomes.iter().filter(|o| **o == Rotation::Invalid).count();
    // The racers take turns: the first spends the token, the second finds it spent and revokes
    // the family, the rest find it revoked.
    assert_eq!((rotated, reused, invalid), (1, 1, 6), "{outcomes:?}");
    // Whoever won, its new token died with the family.
    for i in 0..8u8 {
        let next = b.tokens.rotate(&[b'n', i], next_token(b"z"), t(2 * MINUTE)).await.unwrap();
        assert_eq!(next, Rotation::Invalid);
    }
}

async fn roles_are_granted_and_revoked_by_email_for_existing_accounts_only(b: &Backend) {
    let ada = b.users.create(new_user("ada@surge.test", "ada")).await.unwrap();
    assert!(b.users.roles(ada.id).await.unwrap().is_empty(), "signing up grants nothing");

    b.users.set_role("ada@surge.test", "admin", true, t(1)).await.unwrap();
    b.users.set_role("ada@surge.test", "admin", true, t(2)).await.unwrap();
    assert_eq!(b.users.roles(ada.id).await.unwrap(), ["admin"]);

    let nobody = b.users.set_role("nobody@surge.test", "admin", true, t(3)).await;
    assert!(matches!(nobody, Err(StoreError::NotFound)), "{nobody:?}");

    b.users.set_role("ada@surge.test", "admin", false, t(4)).await.unwrap();
    assert!(b.users.roles(ada.id).await.unwrap().is_empty());
}
