//! Surge's HTTP API, exercised end to end: every test starts its own server on port 0 with a
//! fresh data dir and talks to it over HTTP. One binary; one module per area.

mod accounts;
mod auctions;
mod bids;
mod binary;
mod cinema;
mod connections;
mod crash;
mod deal_events;
mod deals;
mod demo;
mod distributed;
mod errors;
mod helpers;
mod images;
mod oidc;
mod operations;
mod pagination;
mod process;
mod race;
mod ratings;
mod sms;
mod social;
mod sse;
mod storm;
