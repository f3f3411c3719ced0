//! A real browser for the board's tests: headless Chromium (Debian package
//! `chromium`) driven over WebDriver by chromedriver (`chromium-driver`),
//! both on loopback. A small W3C WebDriver client over reqwest: no extra
//! crate. Missing binaries fail the test with the package to install.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use super::procs::Proc;
use super::tools::{free_port, require_binary};

/// The key W3C WebDriver names element references with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one Chromium session.
pub struct Browser {
    _driver: Proc,
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width` ×
    /// `height` CSS pixels.
    pub async fn start(dir: &Path, width: u32, height: u32) -> Browser {
        let chromium = require_binary("chromium", "chromium");
        let driver = require_binary("chromedriver", "chromium-driver");
        let port = free_port();
        let mut cmd = Command::new(driver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg("--log-level=WARNING")
            // Local time is not UTC, so the board's local times show.
            .env("TZ", "Asia/Kolkata");
        let proc = Proc::spawn(&format!("chromedriver-{port}"), cmd, dir);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start: {}",
                proc.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = dir.join(format!("chromium-profile-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-proxy-server", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
                    "--force-device-scale-factor=1", "--lang=en-US",
                    format!("--user-data-dir={}", profile.display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}\n{}", proc.log_tail()))
            .to_string();
        Browser {
            _driver: proc,
            http,
            session,
            base,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let r = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let v: Value = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        v["value"].clone()
    }

    async fn try_cmd(&self, path: &str, body: Value) -> Result<Value, String> {
        let v = self.cmd("POST", path, Some(body)).await;
        match v.get("error") {
            Some(e) => Err(format!("{e}: {}", v["message"])),
            None => Ok(v),
        }
    }

    pub async fn goto(&self, url: &str) {
        let v = self.cmd("POST", "/url", Some(json!({"url": url}))).await;
        assert!(v.get("error").is_none(), "navigate to {url}: {v}");
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The page's HTML now.
    pub async fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The element `css` selects, once there (within 10 s).
    pub async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            match self
                .try_cmd("/element", json!({"using": "css selector", "value": css}))
                .await
            {
                Ok(v) => return v[ELEMENT].as_str().expect("element id").to_string(),
                Err(e) if started.elapsed() > Duration::from_secs(10) => {
                    panic!(
                        "no element {css}: {e}\npage: {}",
                        self.source().await.chars().take(4000).collect::<String>()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        let v = self
            .cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
        assert!(v.get("error").is_none(), "click {css}: {v}");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        let v = self
            .cmd(
                "POST",
                &format!("/element/{e}/value"),
                Some(json!({"text": text})),
            )
            .await;
        assert!(v.get("error").is_none(), "type into {css}: {v}");
    }

    /// The visible text of the element `css` selects.
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Runs a script in the page; its return value.
    pub async fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Presses keys on the focused element (WebDriver key actions).
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        let v = self
            .cmd(
                "POST",
                "/actions",
                Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
            )
            .await;
        assert!(v.get("error").is_none(), "keys {keys}: {v}");
    }

    /// Marks the page now shown, for [`Browser::wait_new_page`]: after a
    /// click that submits a form whose answer shows the same text again,
    /// waiting for that text would find it on the old page.
    pub async fn mark_page(&self) {
        self.script("document.documentElement.dataset.testOldPage = '1'")
            .await;
    }

    /// Waits (within `within`) until a page without the mark has loaded.
    pub async fn wait_new_page(&self, within: Duration) {
        let started = Instant::now();
        loop {
            let v = self
                .script(
                    "return document.readyState === 'complete' \
                     && !document.documentElement.dataset.testOldPage",
                )
                .await;
            if v.as_bool() == Some(true) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "no new page loaded within {within:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (within `within`) until the page's text contains `needle`.
    pub async fn wait_text(&self, needle: &str, within: Duration) {
        let started = Instant::now();
        loop {
            let body = self.script("return document.body.innerText").await;
            if body.as_str().is_some_and(|b| b.contains(needle)) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "the page never showed {needle:?} within {within:?}; it shows:\n{}",
                body.as_str().unwrap_or("")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("screenshot base64"))
            .expect("PNG")
    }

    pub async fn quit(self) {
        let _ = self.cmd("DELETE", "", None).await;
    }
}
