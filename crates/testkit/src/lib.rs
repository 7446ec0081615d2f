//! What Surge's test suites share: the PostgreSQL and Redis set-ups `scripts/test.sh` starts
//! (named by environment variables), and scratch databases on that PostgreSQL.
//!
//! A missing variable fails the test that needs it: a test never passes silently because a
//! service was not there.

use sqlx::Connection;
use uuid::Uuid;

/// The PostgreSQL server (an admin URL) to create scratch databases on.
pub const DATABASE_URL_VAR: &str = "SURGE_TEST_DATABASE_URL";
/// A single Redis node.
pub const REDIS_URL_VAR: &str = "SURGE_TEST_REDIS_URL";
/// A three-master Redis Cluster, as comma-separated node URLs.
pub const REDIS_CLUSTER_URLS_VAR: &str = "SURGE_TEST_REDIS_CLUSTER_URLS";

/// libfaketime's multi-threaded library (Debian's `faketime` package), for replicas started
/// with a skewed clock.
pub const FAKETIME_LIB_VAR: &str = "SURGE_TEST_FAKETIME_LIB";

/// The value of `variable`, or a panic that says how to get it.
pub fn required(variable: &str) -> String {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{variable} is not set: run scripts/test.sh, which starts PostgreSQL, a Redis node \
             and a Redis Cluster, installs libfaketime, and sets it"
        ),
    }
}

/// The node URLs in `variable` (comma-separated).
pub fn redis_urls(variable: &str) -> Vec<String> {
    required(variable)
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(String::from)
        .collect()
}

/// A database of its own for one test, on the server [`DATABASE_URL_VAR`] points at.
pub struct ScratchDatabase {
    admin_url: String,
    pub name: String,
    /// Connects to the scratch database.
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create() -> Self {
        let admin_url = required(DATABASE_URL_VAR);
        let name = format!("surge_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
            panic!("{DATABASE_URL_VAR}: cannot connect to {admin_url}: {error}")
        });
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#)))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self { admin_url, name, url }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop_best_effort(&self) {
        let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await else { return };
        let name = &self.name;
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            r#"drop database if exists "{name}" with (force)"#
        )))
        .execute(&mut admin)
        .await;
        if let Err(error) = dropped {
            eprintln!("could not drop test database {name}: {error}");
        }
        admin.close().await.ok();
    }
}

/// `url` with its database (the path) replaced by `name`, keeping any query string.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// The seats user number `user` asks for in a seat rush on a 5 × 5 screening: a row of `A`–`E`
/// and 1 to 5 consecutive seats in it, pseudo-random but the same on every run, so the API test
/// and the benchmark rush alike.
pub fn seat_rush_pick(user: usize) -> Vec<String> {
    let mut state = (user as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = |n: u64| {
        state ^= state >> 29;
        state = state.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        state ^= state >> 32;
        state % n
    };
    let row = char::from(b'A' + next(5) as u8);
    let count = 1 + next(5) as u8;
    let first = 1 + next(u64::from(6 - count)) as u8;
    (first..first + count).map(|col| format!("{row}{col}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scratch_database_replaces_only_the_path_of_the_admin_url() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/postgres", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://u:p@h:1", "x"), "postgres://u:p@h:1/x");
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }

    #[test]
    fn seat_rush_picks_are_one_to_five_consecutive_seats_of_one_row() {
        for user in 0..2_000 {
            let seats = seat_rush_pick(user);
            assert!((1..=5).contains(&seats.len()));
            let row = &seats[0][..1];
            assert!(seats.iter().all(|seat| &seat[..1] == row && ("A".."F").contains(&row)));
            let cols: Vec<u8> = seats.iter().map(|seat| seat[1..].parse().unwrap()).collect();
            assert!(cols.windows(2).all(|pair| pair[1] == pair[0] + 1));
            assert!(cols[cols.len() - 1] <= 5);
        }
    }
}
