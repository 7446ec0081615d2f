//! Typed calls for the few Surge endpoints the scenarios set up and verify with.
//!
//! Only the fields the bench reads are declared; Surge's responses carry more, and unknown JSON
//! fields are ignored on purpose so the bench keeps working as the API grows.

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::client::{Conn, Endpoint};

/// Base path of Surge's JSON API.
pub const API: &str = "/api/v1";
/// Password of every account the bench creates (within the contract's 8–128 characters).
const PASSWORD: &str = "surge-bench-password";

/// A signed-up account the bench acts as.
#[derive(Clone, Debug)]
pub struct Account {
    /// Bearer token for 🔒 endpoints.
    pub access_token: String,
}

#[derive(Deserialize)]
struct AuthResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// A bid as returned by `POST …/bids` and listed by `GET …/bids`.
#[derive(Clone, Debug, Deserialize)]
pub struct BidView {
    /// Position of the bid among the auction's accepted bids, from 1.
    pub seq: u64,
    /// The bid amount in minor units.
    pub amount: i64,
}

/// The body of a 201 from `POST /auctions/{id}/bids`.
#[derive(Debug, Deserialize)]
pub struct PlacedBid {
    /// The accepted bid.
    pub bid: BidView,
}

/// The parts of `GET /auctions/{id}` the invariant checks compare against.
#[derive(Clone, Debug, Deserialize)]
pub struct AuctionView {
    /// Highest accepted bid, or the starting price while there is none.
    pub current_price: i64,
    /// Price the first bid must reach.
    pub starting_price: i64,
    /// Number of accepted bids.
    pub bid_count: u64,
}

/// One page of a list endpoint.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Cursor for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// Signs up a new account and returns its id and access token.
pub async fn signup(
    conn: &mut Conn,
    endpoint: &Endpoint,
    email: &str,
    nickname: &str,
) -> Result<Account> {
    let body = json!({ "email": email, "password": PASSWORD, "nickname": nickname });
    let req = endpoint.request(
        Method::POST,
        &format!("{API}/auth/signup"),
        None,
        Some(Bytes::from(body.to_string())),
    )?;
    let reply = conn.send(req).await?.expect(StatusCode::CREATED, &format!("signup of {email}"))?;
    let auth: AuthResponse = reply.json()?;
    Ok(Account { access_token: auth.access_token })
}

/// Logs an existing bench account in (every bench account has the bench password).
pub async fn login(conn: &mut Conn, endpoint: &Endpoint, email: &str) -> Result<Account> {
    let body = json!({ "email": email, "password": PASSWORD });
    let req = endpoint.request(
        Method::POST,
        &format!("{API}/auth/login"),
        None,
        Some(Bytes::from(body.to_string())),
    )?;
    let reply = conn.send(req).await?.expect(StatusCode::OK, &format!("login of {email}"))?;
    let auth: AuthResponse = reply.json()?;
    Ok(Account { access_token: auth.access_token })
}

/// Creates a live auction that ends in an hour, starting at `starting_price` with increment 1.
pub async fn create_auction(
    conn: &mut Conn,
    endpoint: &Endpoint,
    seller: &Account,
    title: &str,
    starting_price: i64,
) -> Result<String> {
    let ends_at = rfc3339(Utc::now() + chrono::Duration::hours(1));
    let body = json!({
        "title": title,
        "starting_price": starting_price,
        "min_increment": 1,
        "ends_at": ends_at,
    });
    let req = endpoint.request(
        Method::POST,
        &format!("{API}/auctions"),
        Some(&seller.access_token),
        Some(Bytes::from(body.to_string())),
    )?;
    let reply = conn.send(req).await?.expect(StatusCode::CREATED, "creating an auction")?;
    let created: Created = reply.json()?;
    Ok(created.id)
}

/// Reads one auction.
pub async fn get_auction(conn: &mut Conn, endpoint: &Endpoint, id: &str) -> Result<AuctionView> {
    let req = endpoint.request(Method::GET, &format!("{API}/auctions/{id}"), None, None)?;
    conn.send(req).await?.expect(StatusCode::OK, &format!("reading auction {id}"))?.json()
}

/// Reads one page (up to 100 bids, newest first) of an auction's bid history.
pub async fn bids_page(
    conn: &mut Conn,
    endpoint: &Endpoint,
    id: &str,
    cursor: Option<&str>,
) -> Result<Page<BidView>> {
    let mut path = format!("{API}/auctions/{id}/bids?limit=100");
    if let Some(cursor) = cursor {
        path.push_str("&cursor=");
        path.push_str(&percent_encode(cursor));
    }
    let req = endpoint.request(Method::GET, &path, None, None)?;
    conn.send(req)
        .await?
        .expect(StatusCode::OK, &format!("listing bids of auction {id}"))?
        .json()
        .context("bid page")
}

/// The JSON body of a bid.
pub fn bid_body(amount: i64) -> Bytes {
    Bytes::from(format!("{{\"amount\":{amount}}}"))
}

/// Formats a time the way the contract wants it: RFC 3339, UTC, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Percent-encodes an opaque cursor for a query string (everything but RFC 3986 unreserved).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_percent_encoded() {
        assert_eq!(percent_encode("abc-_.~9"), "abc-_.~9");
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn times_are_rfc3339_utc_with_z() {
        let t = DateTime::parse_from_rfc3339("2026-11-21T09:30:00.123+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc3339(t), "2026-11-21T09:30:00Z");
    }

    #[test]
    fn bid_bodies_are_json() {
        let v: serde_json::Value = serde_json::from_slice(&bid_body(105)).unwrap();
        assert_eq!(v, json!({ "amount": 105 }));
    }
}
