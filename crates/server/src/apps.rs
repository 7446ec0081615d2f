//! Each app's wiring, one module per app with the same shape: its ports on the embedded backend
//! and on the distributed one, its HTTP sub-state, and its background jobs. `startup` lists
//! each app once per backend.

pub mod auctions;
pub mod cinema;
pub mod deals;
pub mod ratings;
pub mod social;
