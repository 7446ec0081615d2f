//! SMS login across replicas: a code asked for through one replica logs in through another,
//! and an SMS a killed replica queued is delivered by the other.

use serde_json::json;

use super::deployment::Deployment;
use crate::helpers::expect_json;
use crate::sms::{Behaviour, Webhook, unique_phone};

async fn deployment_on(provider: &Webhook) -> Deployment {
    let mut deployment =
        Deployment::empty(surge_testkit::required(surge_testkit::REDIS_URL_VAR)).await;
    for _ in 0..2 {
        let url = provider.url();
        deployment
            .add_replica(move |command| {
                command
                    .env("SURGE_SMS__PROVIDERS", url)
                    .env("SURGE_SMS__TIMEOUT_MS", "300")
                    .env("SURGE_SMS__RETRY_BASE_MS", "100")
                    .env("SURGE_SMS__MAX_ATTEMPTS", "50");
            })
            .await;
    }
    deployment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sent_through_one_replica_logs_in_through_another() {
    let provider = Webhook::start(Behaviour::Deliver).await;
    let deployment = deployment_on(&provider).await;
    let phone = unique_phone();
    let asked =
        deployment.api(0).post_json("/auth/sms/code", None, &json!({ "phone": phone })).await;
    expect_json(asked, 202).await;
    let again =
        deployment.api(1).post_json("/auth/sms/code", None, &json!({ "phone": phone })).await;
    assert_eq!(again.status(), 429, "the minute between codes holds on every replica");
    let code = provider.code_for(&phone, 1).await;
    let body = json!({ "phone": phone, "code": code });
    let session = deployment.api(1).post_json("/auth/sms/login", None, &body).await;
    assert_eq!(expect_json(session, 200).await["user"]["phone"], phone.as_str());
    let reused = deployment.api(0).post_json("/auth/sms/login", None, &body).await;
    assert_eq!(reused.status(), 401, "used once, on any replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_queued_by_a_killed_replica_is_delivered_by_another() {
    let provider = Webhook::start(Behaviour::Fail).await;
    let mut deployment = deployment_on(&provider).await;
    let phone = unique_phone();
    let asked =
        deployment.api(0).post_json("/auth/sms/code", None, &json!({ "phone": phone })).await;
    expect_json(asked, 202).await;
    deployment.replicas[0].kill();
    provider.set(Behaviour::Deliver);
    let code = provider.code_for(&phone, 1).await;
    let body = json!({ "phone": phone, "code": code });
    let session = deployment.api(1).post_json("/auth/sms/login", None, &body).await;
    expect_json(session, 200).await;
}
