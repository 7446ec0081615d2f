//! After a storm: does each auction's stored history agree with what the bench was told?
//!
//! The contract promises that every 201 is a stored bid, that `seq` counts accepted bids from 1
//! with no gaps, that each accepted bid beats the previous one, and that `current_price` is the
//! highest accepted bid. The bench knows how many 201s it got per auction, so it can check all of
//! that from the outside.

use anyhow::Result;

use crate::api::{self, AuctionView, BidView};
use crate::client::Endpoint;
use crate::report::Check;

/// What the bench saw for one auction during the storm (warm-up included).
#[derive(Clone, Debug)]
pub struct AuctionTally {
    /// Index in the run, for labels.
    pub index: usize,
    /// The auction's id.
    pub id: String,
    /// Number of 201 answers.
    pub accepted: u64,
    /// Requests that got no answer, so they may or may not have been accepted.
    pub unknown: u64,
}

/// Reads every auction and its full bid history and checks the invariants.
pub async fn verify(endpoint: &Endpoint, tallies: &[AuctionTally]) -> Result<Vec<Check>> {
    let mut conn = endpoint.connect().await?;
    let mut checks = Vec::new();
    for tally in tallies {
        let label = format!("auction {} ({})", tally.index, tally.id);
        let view = api::get_auction(&mut conn, endpoint, &tally.id).await?;
        let max_pages = (tally.accepted + tally.unknown) / 100 + 10;
        let mut bids = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = api::bids_page(&mut conn, endpoint, &tally.id, cursor.as_deref()).await?;
            pages += 1;
            bids.extend(page.items);
            cursor = page.next_cursor;
            if cursor.is_none() || pages >= max_pages {
                break;
            }
        }
        if cursor.is_some() {
            checks.push(Check::new(
                format!("{label}: bid list ends"),
                false,
                format!("still a next_cursor after {pages} pages of 100 ({} bids)", bids.len()),
            ));
        }
        checks.extend(check_auction(&label, tally, &view, &bids));
    }
    Ok(checks)
}

/// The invariant checks for one auction, given its bid list as returned (newest first).
pub fn check_auction(
    label: &str,
    tally: &AuctionTally,
    view: &AuctionView,
    newest_first: &[BidView],
) -> Vec<Check> {
    let n = newest_first.len() as u64;
    let mut checks = Vec::new();

    let count_ok = tally.accepted <= n && n <= tally.accepted + tally.unknown;
    let mut detail = format!("{n} bids listed, {} answered 201", tally.accepted);
    if tally.unknown > 0 {
        detail.push_str(&format!(", {} unanswered (may or may not count)", tally.unknown));
    }
    checks.push(Check::new(format!("{label}: bids == 201s"), count_ok, detail));

    checks.push(Check::new(
        format!("{label}: bid_count matches the list"),
        view.bid_count == n,
        format!("bid_count {}, listed {n}", view.bid_count),
    ));

    let order_break = newest_first.windows(2).position(|w| w[0].seq <= w[1].seq);
    checks.push(Check::new(
        format!("{label}: listed newest first"),
        order_break.is_none(),
        match order_break {
            None => "seq strictly decreasing down the list".to_owned(),
            Some(i) => format!(
                "item {i} has seq {} but item {} has seq {}",
                newest_first[i].seq,
                i + 1,
                newest_first[i + 1].seq
            ),
        },
    ));

    let mut by_seq: Vec<&BidView> = newest_first.iter().collect();
    by_seq.sort_by_key(|b| b.seq);

    let gap = by_seq
        .iter()
        .enumerate()
        .find(|(i, b)| b.seq != *i as u64 + 1)
        .map(|(i, b)| (i as u64 + 1, b.seq));
    checks.push(Check::new(
        format!("{label}: seqs are exactly 1..{n}"),
        gap.is_none(),
        match gap {
            None => format!("{n} seqs, no gaps or duplicates"),
            Some((want, got)) => format!("expected seq {want}, found {got}"),
        },
    ));

    let first_too_low = by_seq
        .first()
        .filter(|b| b.amount < view.starting_price)
        .map(|b| format!("first bid {} below starting price {}", b.amount, view.starting_price));
    let not_increasing = by_seq.windows(2).find(|w| w[1].amount <= w[0].amount).map(|w| {
        format!(
            "seq {} amount {} not above seq {} amount {}",
            w[1].seq, w[1].amount, w[0].seq, w[0].amount
        )
    });
    let problem = first_too_low.or(not_increasing);
    checks.push(Check::new(
        format!("{label}: amounts strictly increase with seq"),
        problem.is_none(),
        problem.unwrap_or_else(|| "every bid beats the one before".to_owned()),
    ));

    let highest = by_seq.iter().map(|b| b.amount).max();
    let want = highest.unwrap_or(view.starting_price);
    checks.push(Check::new(
        format!("{label}: current_price == highest bid"),
        view.current_price == want,
        format!("current_price {}, highest bid {want}", view.current_price),
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bids(pairs: &[(u64, i64)]) -> Vec<BidView> {
        pairs.iter().map(|&(seq, amount)| BidView { seq, amount }).collect()
    }

    fn tally(accepted: u64, unknown: u64) -> AuctionTally {
        AuctionTally { index: 0, id: "a".into(), accepted, unknown }
    }

    fn view(current_price: i64, bid_count: u64) -> AuctionView {
        AuctionView { current_price, starting_price: 100, bid_count }
    }

    fn failed(checks: &[Check]) -> Vec<String> {
        checks.iter().filter(|c| !c.passed).map(|c| c.name.clone()).collect()
    }

    #[test]
    fn a_consistent_history_passes_every_check() {
        let list = bids(&[(3, 130), (2, 120), (1, 100)]);
        let checks = check_auction("x", &tally(3, 0), &view(130, 3), &list);
        assert_eq!(checks.len(), 6);
        assert!(failed(&checks).is_empty(), "{checks:?}");
    }

    #[test]
    fn an_auction_without_bids_keeps_its_starting_price() {
        let checks = check_auction("x", &tally(0, 0), &view(100, 0), &[]);
        assert!(failed(&checks).is_empty(), "{checks:?}");
    }

    #[test]
    fn a_lost_acknowledged_bid_fails_the_count() {
        let list = bids(&[(2, 120), (1, 100)]);
        let checks = check_auction("x", &tally(3, 0), &view(120, 2), &list);
        assert_eq!(failed(&checks), vec!["x: bids == 201s"]);
    }

    #[test]
    fn unanswered_requests_widen_the_allowed_count() {
        let list = bids(&[(2, 120), (1, 100)]);
        let checks = check_auction("x", &tally(1, 1), &view(120, 2), &list);
        assert!(failed(&checks).is_empty(), "{checks:?}");
    }

    #[test]
    fn gaps_duplicates_and_order_are_caught() {
        let list = bids(&[(3, 130), (1, 100), (1, 100)]);
        let checks = check_auction("x", &tally(3, 0), &view(130, 3), &list);
        assert_eq!(
            failed(&checks),
            vec![
                "x: listed newest first",
                "x: seqs are exactly 1..3",
                "x: amounts strictly increase with seq",
            ]
        );
    }

    #[test]
    fn a_stale_current_price_is_caught() {
        let list = bids(&[(2, 120), (1, 100)]);
        let checks = check_auction("x", &tally(2, 0), &view(100, 2), &list);
        assert_eq!(failed(&checks), vec!["x: current_price == highest bid"]);
    }

    #[test]
    fn a_first_bid_below_the_starting_price_is_caught() {
        let list = bids(&[(2, 120), (1, 99)]);
        let checks = check_auction("x", &tally(2, 0), &view(120, 2), &list);
        assert_eq!(failed(&checks), vec!["x: amounts strictly increase with seq"]);
    }
}
