//! Helpers for the bcast-local tests: the binary, a running `serve`, a tiny HTTP client.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bcast-local");

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `bcast-local` with a clean environment for bcast: none of the functions' variables leak in
/// from the machine running the tests.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars() {
        const PREFIXES: [&str; 10] = [
            "REDIS_",
            "BCAST_",
            "LOGIN_",
            "CLIENT_KEY",
            "ROTATION",
            "HEARTBEAT_",
            "PRESENCE_",
            "RATE_LIMIT",
            "SESSION_",
            "RUST_LOG",
        ];
        if PREFIXES.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(repo());
    cmd
}

/// A running `bcast-local serve --port 0`.
pub struct Serve {
    pub child: Child,
    pub url: String,
    pub addr: String,
    /// Everything printed on stdout up to "Press Ctrl-C".
    pub banner: String,
    stderr: mpsc::Receiver<String>,
}

impl Serve {
    pub fn start(configure: impl FnOnce(&mut Command)) -> Self {
        let mut cmd = command();
        cmd.args(["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        configure(&mut cmd);
        let mut child = cmd.spawn().expect("spawn bcast-local");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (btx, brx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut banner = String::new();
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                banner.push_str(&line);
                banner.push('\n');
                if line.starts_with("Press Ctrl-C") {
                    let _ = btx.send(banner.clone());
                    break;
                }
            }
            for _ in lines {}
        });
        let banner = match brx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let errors: Vec<String> = rx.try_iter().collect();
                panic!("bcast-local serve did not start: {}", errors.join("\n"));
            }
        };
        let url = banner
            .lines()
            .find_map(|l| l.strip_prefix("bcast-local is listening on "))
            .expect("the URL line")
            .trim()
            .to_owned();
        let addr = url.trim_start_matches("http://").to_owned();
        Self {
            child,
            url,
            addr,
            banner,
            stderr: rx,
        }
    }

    /// The private redis-server's port from the banner.
    pub fn redis_port(&self) -> Option<u16> {
        self.banner
            .lines()
            .find_map(|l| l.split("redis-server on 127.0.0.1:").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
    }

    /// The login token printed in the banner.
    pub fn banner_token(&self) -> String {
        self.banner
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("eyJ"))
            .expect("a token in the banner")
            .to_owned()
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        http(&self.addr, method, path, headers, body)
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop(&mut self, signal: i32) -> ExitStatus {
        send_signal(&self.child, signal);
        wait(&mut self.child, Duration::from_secs(10))
    }

    /// What was written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn send_signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill failed");
}

pub fn wait(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether something listens on the loopback `port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits until `check` holds, for at most `timeout`.
pub fn eventually(timeout: Duration, check: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    check()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}
