//! Images on S3 (`objects.url = s3://bucket/prefix`), against moto, an S3-compatible server the
//! test starts (`moto_server`, PyPI `moto[server]`, installed by `scripts/test.sh`): an image
//! uploaded through one replica is served by the other, nothing lands in the replicas' own
//! directory, and an upload whose row cannot be written leaves no object behind.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::distributed::deployment::Deployment;
use crate::helpers::{PNG, expect_json, string};
use crate::process::free_port;

const BUCKET: &str = "surge-images";

/// A `moto_server` on a free loopback port; stopped on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    async fn start() -> Moto {
        surge_engine::outbound::install_crypto_provider();
        let binary = std::env::var("SURGE_TEST_MOTO").map(PathBuf::from).unwrap_or_else(|_| {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .map(|dir| dir.join("moto_server"))
                .find(|p| p.is_file())
                .expect("moto_server is not installed; scripts/test.sh installs moto[server]")
        });
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while reqwest::get(&moto.url).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Makes a bucket (moto takes unsigned requests).
    async fn create_bucket(&self, bucket: &str) {
        let made = reqwest::Client::new().put(format!("{}/{bucket}", self.url)).send().await;
        assert!(made.unwrap().status().is_success(), "cannot create the bucket");
    }

    /// The keys in `bucket`.
    async fn keys(&self, bucket: &str) -> Vec<String> {
        let listing = reqwest::get(format!("{}/{bucket}?list-type=2", self.url)).await.unwrap();
        let xml = listing.text().await.unwrap();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_image_on_s3_is_served_by_every_replica_and_a_failed_upload_leaves_nothing() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let redis_url = surge_testkit::required(surge_testkit::REDIS_URL_VAR);
    let mut deployment = Deployment::empty(redis_url).await;
    for _ in 0..2 {
        deployment
            .add_replica(|command| {
                command
                    .env("SURGE_OBJECTS__URL", format!("s3://{BUCKET}/test"))
                    .env("SURGE_OBJECTS__ENDPOINT", &moto.url)
                    .env("SURGE_OBJECTS__ALLOW_HTTP", "true")
                    // The rest as AWS's tools take it: from the environment.
                    .env("AWS_ACCESS_KEY_ID", "surge-test")
                    .env("AWS_SECRET_ACCESS_KEY", "surge-test-secret")
                    .env("AWS_REGION", "us-east-1");
            })
            .await;
    }
    let (first, second) = (&deployment.replicas[0].api, &deployment.replicas[1].api);
    let user = first.signup().await;
    let uploaded = first.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
    let id = string(&expect_json(uploaded, 201).await["id"]);

    let served = second.get(&format!("/images/{id}")).await;
    assert_eq!(served.status(), 200, "{}", deployment.logs());
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let keys = moto.keys(BUCKET).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("test/") && keys[0].contains(&id), "{keys:?}");
    let local = deployment.data_dir().join("objects");
    assert!(!local.exists(), "nothing is kept in {}", local.display());

    // The object is written first, then its row: a row that cannot be written (refused here
    // by a trigger) means the object goes again.
    sqlx::query(
        "create function refuse_images() returns trigger language plpgsql as
         $$ begin raise exception 'refused by the test'; end $$",
    )
    .execute(&deployment.pool)
    .await
    .unwrap();
    sqlx::query("create trigger refuse_images before insert on images for each row execute function refuse_images()")
        .execute(&deployment.pool)
        .await
        .unwrap();
    let refused = second.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
    assert!(refused.status().is_server_error(), "{}", refused.status());
    assert_eq!(moto.keys(BUCKET).await, keys, "the failed upload's object is gone");
}

#[tokio::test]
async fn a_replica_keeping_images_in_its_own_directory_says_so_at_start_up() {
    let redis_url = surge_testkit::required(surge_testkit::REDIS_URL_VAR);
    let mut deployment = Deployment::empty(redis_url).await;
    deployment.add_replica(|_| {}).await;
    let logs = deployment.logs();
    assert!(logs.contains("images are kept in a local directory"), "{logs}");
}
