//! The Surge server: configuration, command line, wiring and background workers.
//!
//! # Layout
//! - [`admin`]: `surge admin grant|revoke EMAIL`.
//! - [`apps`]: each app's wiring (ports per backend, HTTP sub-state, background jobs).
//! - [`config`]: layered settings (defaults → `surge.toml` → `SURGE_…` env → flags).
//! - [`startup`]: [`startup::Application`] builds every port, binds, and runs until stopped.
//! - [`demo`]: `--demo` seed data.
//! - [`objects`]: where uploaded images are kept (a directory or S3).
//! - [`telemetry`]: logs, pretty or JSON.

pub mod admin;
pub mod apps;
pub mod config;
pub mod demo;
pub mod objects;
pub mod sms;
pub mod startup;
pub mod telemetry;

pub use config::Settings;
pub use startup::Application;
