//! Outbound HTTP: how the server builds a client for calling out (the LeetCode upstream, SMS
//! webhooks). reqwest is built with rustls but without a crypto provider of its own (sqlx's
//! ring and reqwest's default aws-lc would be two), so the ring provider is installed here,
//! once per process, before any client is built.

use std::time::Duration;

/// Installs the process-wide TLS provider (ring) every `reqwest::Client` in the process needs;
/// building a client before it panics. Calling it again is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client whose every call (connecting included) ends within `timeout`, naming Surge and its
/// version as its user agent.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("surge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| error.to_string())
}
