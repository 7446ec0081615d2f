//! Access tokens (EdDSA JWT, short-lived) and refresh tokens (random, stored hashed).

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use surge_engine::clock::Clock;
use uuid::Uuid;

/// File the embedded deployment generates its signing key into.
pub const GENERATED_KEY_FILE: &str = "jwt-signing-key.pem";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Not valid before (seconds); Surge does not set it, but honours it when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: Uuid,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The session (refresh-token family) the token was issued for: when it is revoked, the
    /// token stops working before its `exp` (see [`super::sessions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// Signs and verifies access tokens; mints refresh tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    settings: TokenSettings,
    clock: Arc<dyn Clock>,
    /// Verified tokens by their text. An Ed25519 verify costs more than a whole bid; a hit
    /// skips it. Expiry is still checked against the clock on every use.
    verified: moka::sync::Cache<String, Arc<Claims>>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the JWT signing key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the JWT signing key {path} is not an Ed25519 PKCS#8 PEM key: {detail}")]
    Parse { path: String, detail: String },
    #[error("cannot write the generated JWT signing key {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Loads an Ed25519 PKCS#8 PEM key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let shown = path.display().to_string();
    let pem = std::fs::read_to_string(path)
        .map_err(|source| KeyError::Read { path: shown.clone(), source })?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| KeyError::Parse { path: shown, detail: e.to_string() })
}

/// Loads the key from `path`, generating it (mode 0600) first if the file does not exist.
pub fn load_or_generate_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    if path.exists() {
        return load_signing_key(path);
    }
    let shown = path.display().to_string();
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| KeyError::Parse { path: shown.clone(), detail: e.to_string() })?;
    write_private(path, pem.as_bytes())
        .map_err(|source| KeyError::Write { path: shown, source })?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

impl TokenService {
    pub fn new(key: &SigningKey, settings: TokenSettings, clock: Arc<dyn Clock>) -> Self {
        let pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("an in-memory Ed25519 key always encodes");
        let encoding =
            EncodingKey::from_ed_pem(pem.as_bytes()).expect("PKCS#8 PEM from ed25519-dalek");
        let public = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
        let decoding = DecodingKey::from_ed_components(&public).expect("base64url of 32 bytes");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        // Expiry is checked against the injected clock, not the system time.
        validation.validate_exp = false;
        validation.required_spec_claims =
            ["exp", "iss", "aud", "sub"].iter().map(|s| (*s).to_owned()).collect();
        let verified = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(settings.access_ttl.to_std().unwrap_or_default())
            .build();
        Self { encoding, decoding, validation, settings, clock, verified }
    }

    pub fn access_ttl(&self) -> Duration {
        self.settings.access_ttl
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.settings.access_ttl.num_seconds()
    }

    pub fn refresh_ttl(&self) -> Duration {
        self.settings.refresh_ttl
    }

    /// Signs a new access token for `user_id` in `session` (a refresh-token family; `None`
    /// only for tokens minted outside a login, by tools and tests).
    pub fn issue_access(&self, user_id: Uuid, session: Option<Uuid>, roles: Vec<String>) -> String {
        let now = self.clock.now();
        let claims = Claims {
            sub: user_id,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            iat: now.timestamp(),
            exp: (now + self.settings.access_ttl).timestamp(),
            nbf: None,
            jti: Uuid::now_v7(),
            roles,
            sid: session,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.encoding)
            .expect("signing with a valid Ed25519 key cannot fail")
    }

    /// The claims of a valid, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Arc<Claims>> {
        let now = self.clock.now().timestamp();
        let current = |claims: &Claims| claims.exp > now && claims.nbf.is_none_or(|nbf| nbf <= now);
        if let Some(claims) = self.verified.get(token) {
            return current(&claims).then_some(claims);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let claims = Arc::new(data.claims);
        if !current(&claims) {
            return None;
        }
        self.verified.insert(token.to_owned(), claims.clone());
        Some(claims)
    }

    /// A new random refresh token (256 bits) and the hash to store.
    pub fn mint_refresh(&self) -> (String, Vec<u8>) {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_refresh(&token);
        (token, hash)
    }
}

/// Refresh tokens are looked up by their SHA-256: a database leak does not leak sessions.
pub fn hash_refresh(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use surge_engine::clock::ManualClock;

    use super::*;

    fn service(clock: Arc<ManualClock>, issuer: &str) -> TokenService {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let settings = TokenSettings {
            issuer: issuer.into(),
            audience: "surge-api".into(),
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
        };
        TokenService::new(&key, settings, clock)
    }

    #[test]
    fn a_fresh_token_verifies_and_expires_after_its_ttl() {
        let clock = Arc::new(ManualClock::new());
        let tokens = service(clock.clone(), "surge");
        let user = Uuid::now_v7();
        let token = tokens.issue_access(user, None, vec![]);
        assert_eq!(tokens.verify(&token).unwrap().sub, user);
        clock.advance(Duration::minutes(16));
        assert!(tokens.verify(&token).is_none());
    }

    #[test]
    fn tokens_from_another_issuer_or_tampered_are_refused() {
        let clock = Arc::new(ManualClock::new());
        let ours = service(clock.clone(), "surge");
        let theirs = service(clock, "elsewhere");
        let token = theirs.issue_access(Uuid::now_v7(), None, vec![]);
        assert!(ours.verify(&token).is_none());
        let mut tampered = ours.issue_access(Uuid::now_v7(), None, vec![]);
        tampered.push('x');
        assert!(ours.verify(&tampered).is_none());
    }

    /// `exp` and `nbf` are both checked against the server's clock (jsonwebtoken's own checks
    /// use the system time, so they are off).
    #[test]
    fn a_token_is_refused_before_its_not_before_time() {
        let clock = Arc::new(ManualClock::new());
        let tokens = service(clock.clone(), "surge");
        let now = clock.now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            iss: "surge".into(),
            aud: "surge-api".into(),
            iat: now,
            exp: now + 7200,
            nbf: Some(now + 3600),
            jti: Uuid::now_v7(),
            roles: vec![],
            sid: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &tokens.encoding)
            .unwrap();
        assert!(tokens.verify(&token).is_none(), "a token is not valid before its nbf");
        clock.advance(Duration::minutes(61));
        assert!(tokens.verify(&token).is_some());
    }

    #[test]
    fn a_generated_key_is_written_once_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("surge-key-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(GENERATED_KEY_FILE);
        let first = load_or_generate_signing_key(&path).unwrap();
        let second = load_or_generate_signing_key(&path).unwrap();
        assert_eq!(first.to_bytes(), second.to_bytes());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
