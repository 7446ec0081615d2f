//! A small W3C WebDriver client for the browser tests: Debian's `chromedriver` started on a
//! free loopback port, headless Chromium sessions, and the dozen commands the tests use, over
//! the HTTP client the other tests already use. (A full client crate would bring its own HTTP
//! and TLS stacks for what is a handful of JSON calls to a local process.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a test waits for something to appear on a page.
pub const WAIT: Duration = Duration::from_secs(10);

/// The W3C key for the element id in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver`; stopped on drop.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts `chromedriver` (`SURGE_TEST_CHROMEDRIVER`, else from `PATH`) on a free port.
    pub async fn start() -> Driver {
        let binary = std::env::var("SURGE_TEST_CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|_| on_path("chromedriver"));
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}); scripts/test.sh installs it", binary.display())
            });
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            profiles: tempfile::tempdir().expect("a profile dir"),
        };
        let started = Instant::now();
        loop {
            let status = driver.http.get(format!("{}/status", driver.url)).send().await;
            if let Ok(status) = status
                && status.status().is_success()
            {
                return driver;
            }
            assert!(started.elapsed() < WAIT, "chromedriver did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium window of `width`×`height`.
    pub async fn browser(&self, width: u32, height: u32) -> Browser {
        let chromium = std::env::var("SURGE_TEST_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|_| on_path("chromium"));
        let profile = tempfile::tempdir_in(self.profiles.path()).expect("a profile").keep();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--lang=en-US",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let answer = call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/session", self.url),
            Some(capabilities),
        )
        .await;
        let id = answer["sessionId"].as_str().expect("a session id").to_owned();
        let browser =
            Browser { http: self.http.clone(), session: format!("{}/session/{id}", self.url) };
        browser
            .command(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({"implicit": 0, "pageLoad": 30_000, "script": 10_000})),
            )
            .await;
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name` in the first `PATH` directory that has it (chromedriver wants an absolute path).
fn on_path(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not installed; scripts/test.sh installs chromium and chromium-driver")
        })
}

/// One WebDriver command; panics with the driver's message when it fails.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let request = http.request(method.clone(), url);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{method} {url}: {status} {answer}");
    answer["value"].clone()
}

/// One browser window (a WebDriver session); closed with [`Browser::quit`].
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        call(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    async fn try_command(&self, method: reqwest::Method, path: &str, body: Value) -> Option<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.session))
            .json(&body)
            .send()
            .await
            .ok()?;
        let ok = response.status().is_success();
        let answer: Value = response.json().await.ok()?;
        ok.then(|| answer["value"].clone())
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .try_command(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(id) = found.as_ref().and_then(|v| v[ELEMENT].as_str()) {
                return id.to_owned();
            }
            if started.elapsed() >= WAIT {
                let page = self.try_command(reqwest::Method::POST, "/execute/sync",
                    json!({"script": "return location.href + ' | ' + document.body.innerText", "args": []})).await;
                panic!("no element matches {css:?}; the page: {page:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether an element matches `css` right now.
    pub async fn has(&self, css: &str) -> bool {
        let found = self
            .try_command(
                reqwest::Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found.and_then(|v| v.as_array().map(|a| !a.is_empty())).unwrap_or(false)
    }

    /// Clicks the first element matching `css`, finding it again if the page re-rendered it.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", |id| (format!("/element/{id}/click"), json!({}))).await;
    }

    /// Clears the field matching `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, "clear", |id| (format!("/element/{id}/clear"), json!({}))).await;
        self.on_element(css, "type into", |id| {
            (format!("/element/{id}/value"), json!({"text": text}))
        })
        .await;
    }

    /// Runs one element command on `css`'s element, retrying (within [`WAIT`]) when the element
    /// went stale or is not ready yet.
    async fn on_element(&self, css: &str, what: &str, command: impl Fn(&str) -> (String, Value)) {
        let started = Instant::now();
        loop {
            let id = self.find(css).await;
            let (path, body) = command(&id);
            if self.try_command(reqwest::Method::POST, &path, body).await.is_some() {
                return;
            }
            assert!(started.elapsed() < WAIT, "could not {what} {css:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses keys in whatever has the focus (`\u{E004}` is Tab, `\u{E007}` Enter).
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|key| {
                [
                    json!({"type": "keyDown", "value": key.to_string()}),
                    json!({"type": "keyUp", "value": key.to_string()}),
                ]
            })
            .collect();
        self.command(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// The visible text of the first element matching `css`, if one does (read in one script
    /// run, so a page re-rendering meanwhile cannot leave a stale element behind).
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let script =
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
        let text = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": script, "args": [css]})),
            )
            .await;
        text.as_str().map(str::to_owned)
    }

    /// Waits up to [`WAIT`] until the text of `css` satisfies `wanted`; answers that text.
    pub async fn wait_text(&self, css: &str, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text_of(css).await;
            if let Some(text) = &text
                && wanted(text)
            {
                return text.clone();
            }
            if started.elapsed() >= WAIT {
                match text {
                    Some(text) => panic!("{css:?} never showed {what}; it shows {text:?}"),
                    None => panic!("{css:?} never appeared (waiting for {what})"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page (its `return` value comes back).
    pub async fn execute(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Saves a PNG of the window at `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot dir");
        }
        std::fs::write(path, bytes).expect("the screenshot");
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

/// Where screenshots go: `target/browser-screenshots/` (or `SURGE_TEST_SCREENSHOTS`).
pub fn screenshot_path(name: &str) -> PathBuf {
    let dir = std::env::var("SURGE_TEST_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots")
    });
    dir.join(format!("{name}.png"))
}
