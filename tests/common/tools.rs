//! Where the real components the tests (and benches) run are, and how to
//! reach them: binaries from the Debian packages or `cargo install`, a free
//! loopback port, an HTTP client that ignores proxies. A missing component
//! fails the test with how to get it; nothing is skipped.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `name` on PATH or in cargo's bin directory.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        dirs.push(Path::new(&home).join("bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// `name`, or a failure that says which Debian package brings it.
pub fn require_binary(name: &str, package: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| {
        panic!(
            "required binary `{name}` was not found on PATH ({}); install the Debian package \
             `{package}` (scripts/test does this with apt-get)",
            std::env::var("PATH").unwrap_or_default()
        )
    })
}

/// The Kafka-compatible broker `tansu`.
pub fn tansu() -> PathBuf {
    find_binary("tansu").unwrap_or_else(|| {
        panic!(
            "the Kafka broker `tansu` is not on PATH; install it with \
             `cargo install tansu --features dynostore --locked` (scripts/test does this)"
        )
    })
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// An HTTP client for loopback servers: no proxy, a 10 s timeout.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}
