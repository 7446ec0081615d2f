//! The real `surge` binary: what it leaves on disk (the data dir holds emails, password and token
//! hashes and uploads, so nothing in it is readable by other users of the machine), and its
//! `admin` subcommand run beside a serving process.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::helpers::{PNG, expect_error, expect_json};
use crate::process::ServerProcess;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_dir_and_every_file_in_it_are_private() {
    let parent = tempfile::Builder::new().prefix("surge-files-").tempdir().unwrap();
    let data_dir = parent.path().join("data");
    let log_dir = tempfile::Builder::new().prefix("surge-files-logs-").tempdir().unwrap();
    let mut server = ServerProcess::start(&data_dir, log_dir.path(), "files");
    server.wait_until_healthy().await;
    let user = server.api.signup().await;
    let upload = server.api.upload_image(&user.access_token, PNG.to_vec(), "image/png").await;
    expect_json(upload, 201).await;

    assert_eq!(mode(&data_dir), 0o700, "the data dir");
    let mut files = Vec::new();
    let mut dirs = vec![data_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                dirs.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files.push(path);
            }
        }
    }
    let names: Vec<String> =
        files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n == "surge.db"), "{names:?}");
    assert!(files.iter().any(|p| p.parent().unwrap().ends_with("objects/images")), "{names:?}");
}

/// `surge admin grant|revoke` on the data dir of a running server: the role is the account's
/// from its next token, never from signing up, and only an existing account can get it.
#[tokio::test]
async fn admin_rights_are_granted_and_revoked_by_the_admin_command_while_serving() {
    let data_dir = tempfile::Builder::new().prefix("surge-admin-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-admin-logs-").tempdir().unwrap();
    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "admin");
    server.wait_until_healthy().await;
    let api = &server.api;
    let boss = api.signup_user("boss@surge.test", crate::helpers::PASSWORD, "boss").await;
    let admin = |action: &str, email: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
            .args(["admin", action, email, "--data-dir"])
            .arg(data_dir.path())
            .env("SURGE_LOG_FORMAT", "json")
            .output()
            .expect("could not run surge admin")
    };
    let theater = json!({"name": "Hall 1", "rows": 5, "cols": 5});

    let unknown = admin("grant", "nobody@surge.test");
    assert!(!unknown.status.success(), "granting a missing account must fail");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account"));

    let granted = admin("grant", "Boss@Surge.test");
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));
    let before = api.post_json("/admin/theaters", Some(&boss.access_token), &theater).await;
    expect_error(before, 403, "forbidden").await;
    let boss = api.login_again(&boss).await;
    let created = api.post_json("/admin/theaters", Some(&boss.access_token), &theater).await;
    expect_json(created, 201).await;

    let revoked = admin("revoke", "boss@surge.test");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let refreshed = expect_json(api.refresh(&boss.refresh_token).await, 200).await;
    assert_eq!(refreshed["user"]["roles"], json!([]));
}

/// `surge healthcheck` (the container image's health check): 0 while the server at the
/// configured port answers, an error once nothing listens there.
#[tokio::test]
async fn the_healthcheck_command_follows_the_server() {
    let data_dir = tempfile::Builder::new().prefix("surge-health-").tempdir().unwrap();
    let log_dir = tempfile::Builder::new().prefix("surge-health-logs-").tempdir().unwrap();
    let mut server = ServerProcess::start(data_dir.path(), log_dir.path(), "health");
    server.wait_until_healthy().await;
    let listen = server.api.root_url("").trim_start_matches("http://").to_owned();
    let check = |listen: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_surge"))
            .arg("healthcheck")
            .env("SURGE_LISTEN", listen)
            .env("SURGE_LOG_FORMAT", "json")
            .output()
            .expect("could not run surge healthcheck")
    };
    let healthy = check(&listen);
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    // Listening on every address: the check asks the loopback one.
    let any = listen.replace("127.0.0.1", "0.0.0.0");
    assert!(check(&any).status.success());
    server.terminate().await;
    assert!(!check(&listen).status.success(), "nothing listens any more");
}
