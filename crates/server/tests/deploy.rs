//! The deployment files (`Dockerfile`, `deploy/compose.yaml`, `deploy/kubernetes/`) against the
//! real configuration: every `SURGE_…` variable they set names a setting that exists (the
//! server ignores unknown ones, so a renamed key would silently stop working there), and the
//! values they spell out load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use surge::config::{Overrides, Settings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every deployment file: the Dockerfile, compose, and each Kustomize YAML.
fn deployment_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("Dockerfile"), repo().join("deploy/compose.yaml")];
    let mut dirs = vec![repo().join("deploy/kubernetes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files
}

/// `SURGE_…` names in `text`, with the value when the line spells one out (`NAME=value`,
/// `NAME: value`); `None` when it comes from elsewhere (a Secret, the pod's name).
fn surge_variables(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("SURGE_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = tail[..end].to_owned();
            let after = tail[end..].trim_start();
            let value = after
                .strip_prefix('=')
                .or_else(|| after.strip_prefix(':'))
                .map(|v| v.trim().trim_end_matches('\\').trim().trim_matches('"').to_owned())
                .filter(|v| !v.is_empty());
            // "SURGE_…" alone is prose about the prefix.
            if name.len() > "SURGE_".len() {
                found.push((name, value));
            }
            rest = &tail[end..];
        }
    }
    found
}

/// Whether `SURGE_A__B_C` names a setting: `a.b_c` in the settings' own shape.
fn is_setting(name: &str) -> bool {
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    let path = name.trim_start_matches("SURGE_").to_lowercase();
    let mut at = &defaults;
    for key in path.split("__") {
        match at.get(key) {
            Some(inner) => at = inner,
            None => return false,
        }
    }
    true
}

#[test]
// figment's Jail closures return figment's own (large) error type; nothing to shrink here.
#[allow(clippy::result_large_err)]
fn every_surge_variable_in_the_deployment_files_is_a_setting() {
    let mut values = BTreeMap::new();
    let mut seen = 0;
    for file in deployment_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (name, value) in surge_variables(&text) {
            assert!(is_setting(&name), "{}: {name} is not a Surge setting", file.display());
            seen += 1;
            if let Some(value) = value {
                values.insert(name, value);
            }
        }
    }
    assert!(seen >= 10, "the files set Surge's variables ({seen} found)");
    // The values they spell out load, all together.
    figment::Jail::expect_with(|jail| {
        for (name, value) in &values {
            jail.set_env(name, value);
        }
        let settings = Settings::load(None, Overrides::default())
            .unwrap_or_else(|e| panic!("the deployment files' values do not load: {e}"));
        assert_eq!(settings.listen.port(), 8080);
        Ok(())
    });
}

#[test]
fn the_check_catches_a_name_that_is_not_a_setting() {
    assert!(is_setting("SURGE_HTTP__TRUSTED_PROXIES"));
    assert!(is_setting("SURGE_JWT_SIGNING_KEY_FILE"));
    assert!(!is_setting("SURGE_HTTP__TRUSTED_PROXY"));
    assert!(!is_setting("SURGE_ADMIN_EMAILS"));
    let found =
        surge_variables("      - SURGE_LISTEN=0.0.0.0:8080\n    SURGE_REDIS_URL: redis://r:6379");
    assert_eq!(
        found,
        vec![
            ("SURGE_LISTEN".into(), Some("0.0.0.0:8080".into())),
            ("SURGE_REDIS_URL".into(), Some("redis://r:6379".into())),
        ]
    );
}

/// Every `.rs` file under `crates/*/src`, concatenated.
fn sources() -> String {
    let mut text = String::new();
    let mut dirs = vec![repo().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("tests") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    text
}

#[test]
fn every_metric_on_the_dashboard_is_one_surge_exports() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/surge-dashboard.json")).unwrap(),
    )
    .unwrap();
    let code = sources();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (name, _) in surge_variables(&expr.to_uppercase()) {
                let metric = name.to_lowercase();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| metric.strip_suffix(suffix))
                    .unwrap_or(&metric);
                assert!(
                    code.contains(&format!("\"{base}\"")),
                    "panel {:?} reads {metric}, which Surge does not export",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "{checked} metrics checked");
}
