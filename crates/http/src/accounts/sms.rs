//! SMS-code login: ask for a code for a phone (E.164), then log in with it; the first login
//! makes the account. Codes come from the operating system's CSPRNG and are kept only as a hash
//! keyed by a server secret and bound to the phone (a leaked table does not give the codes
//! away by hashing the million candidates); one live code per phone, shared by every replica
//! through the database. Delivery is `surge_engine::sms`: queued as a durable job before the
//! 202, so a code asked for while every provider fails still arrives once one recovers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use surge_core::sms::{
    MAX_WRONG_TRIES, code_from, code_ttl, message_text, resend_after, valid_code, valid_phone,
};
use surge_core::validation::FieldErrors;
use surge_engine::sms::{SmsMessage, SmsSender};
use surge_store::sms::{Checked, Issued, SmsCodeStore};
use utoipa::ToSchema;
use uuid::Uuid;

use super::open_session;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;

/// The SMS login's ports and secret.
pub struct SmsLogin {
    pub codes: Arc<dyn SmsCodeStore>,
    pub sender: Arc<SmsSender>,
    /// Keys the code hashes (derived from the token signing key, which every replica shares).
    pub secret: [u8; 32],
}

impl SmsLogin {
    /// `secret_seed`: secret bytes every replica shares (the signing key's).
    pub fn new(codes: Arc<dyn SmsCodeStore>, sender: Arc<SmsSender>, secret_seed: &[u8]) -> Self {
        let secret = Sha256::new()
            .chain_update(b"surge/sms-code-hash/v1")
            .chain_update(secret_seed)
            .finalize()
            .into();
        Self { codes, sender, secret }
    }

    fn hash(&self, phone: &str, code: &str) -> Vec<u8> {
        Sha256::new()
            .chain_update(self.secret)
            .chain_update(phone.as_bytes())
            .chain_update(b"\0")
            .chain_update(code.as_bytes())
            .finalize()
            .to_vec()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// E.164: `+` and 8–15 digits, the first not 0 (`+821012345678`).
    pub phone: String,
}

/// The code is stored and its SMS queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeSent {
    /// Seconds the code lives.
    pub expires_in: i64,
    /// Seconds before another code for this phone may be asked for.
    pub resend_after: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SmsLoginRequest {
    pub phone: String,
    /// The six digits of the SMS.
    pub code: String,
}

fn retry_after(at: DateTime<Utc>, now: DateTime<Utc>) -> ApiError {
    let secs = (at - now).num_milliseconds().max(1).div_euclid(1000) + 1;
    ApiError::RateLimited { retry_after_secs: secs as u64 }
}

/// Send a login code to a phone. 202 once the code is stored and its SMS queued (also while
/// every provider is failing: the SMS is retried until one takes it).
#[utoipa::path(post, path = "/api/v1/auth/sms/code", tag = "accounts", request_body = CodeRequest,
    responses((status = 202, body = CodeSent),
        (status = 422, description = "not an E.164 phone number"),
        (status = 429, description = "a code for this phone was sent less than 60 s ago; `Retry-After`")))]
pub async fn send_code(
    State(state): State<AppState>,
    Json(request): Json<CodeRequest>,
) -> ApiResult<Response> {
    if !valid_phone(&request.phone) {
        return Err(ApiError::field("phone", "must be an E.164 number: + and 8 to 15 digits"));
    }
    let sms = &state.sms;
    let code = code_from(OsRng.next_u32());
    let now = state.clock.now();
    let expires_at = now + code_ttl();
    let hash = sms.hash(&request.phone, &code);
    match sms.codes.issue(&request.phone, &hash, now, expires_at, resend_after()).await? {
        Issued::TooSoon { retry_at } => Err(retry_after(retry_at, now)),
        Issued::Stored => {
            let message = SmsMessage {
                id: Uuid::now_v7(),
                to: request.phone.clone(),
                text: message_text(&code),
                code,
                expires_at,
            };
            sms.sender.queue(&message).await?;
            let sent = CodeSent {
                expires_in: code_ttl().num_seconds(),
                resend_after: resend_after().num_seconds(),
            };
            Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
        }
    }
}

/// Log in with the code of an SMS; the first login with a phone makes its account.
#[utoipa::path(post, path = "/api/v1/auth/sms/login", tag = "accounts", request_body = SmsLoginRequest,
    responses((status = 200, body = super::Session),
        (status = 401, description = "`invalid_code`: wrong, expired, already used, or none sent"),
        (status = 422, description = "not an E.164 phone, or not six digits"),
        (status = 429, description = "three wrong tries killed the code; ask for a new one after `Retry-After`")))]
pub async fn login(
    State(state): State<AppState>,
    Json(request): Json<SmsLoginRequest>,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    if !valid_phone(&request.phone) {
        errors.add("phone", "must be an E.164 number: + and 8 to 15 digits");
    }
    if !valid_code(&request.code) {
        errors.add("code", "must be six digits");
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let sms = &state.sms;
    let now = state.clock.now();
    let hash = sms.hash(&request.phone, &request.code);
    let checked =
        sms.codes.check(&request.phone, &hash, now, MAX_WRONG_TRIES, resend_after()).await?;
    match checked {
        Checked::Accepted => {
            let digits = &request.phone[request.phone.len().saturating_sub(4)..];
            let nickname = format!("user{digits}");
            let user = state
                .users
                .find_or_create_by_phone(&request.phone, Uuid::now_v7(), &nickname, now)
                .await?;
            open_session(&state, user, StatusCode::OK).await
        }
        Checked::Dead { retry_at } => Err(retry_after(retry_at, now)),
        Checked::Wrong { .. } | Checked::NoCode => Err(ApiError::Unauthorized {
            code: "invalid_code",
            message: "the code is wrong, expired or already used".into(),
        }),
    }
}
