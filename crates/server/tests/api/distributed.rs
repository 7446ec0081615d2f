//! The distributed deployment as operators run it: several real `surge serve` processes on one
//! PostgreSQL and one Redis, with replicas killed, paused and cut off from their dependencies.
//!
//! Every storm ends with the same check: PostgreSQL holds exactly the acknowledged bids — none
//! lost, none duplicated, seqs gap-free, final price = the highest stored bid, which is at
//! least the highest acknowledged one — and nothing went to the dead-letter table.

mod clocks;
mod deal_events;
mod deployment;
mod faults;
mod objects;
mod order_rush;
mod order_saga;
mod ratings;
mod replicas;
mod seat_rush;
mod sms;
mod social;
mod startup;
