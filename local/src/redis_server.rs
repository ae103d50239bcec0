//! A private `redis-server` for a local run: from `PATH`, on a free loopback port, with no
//! persistence, stopped when the handle drops (and, on Linux, when this process dies however it
//! dies).

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a private Redis could not be started.
#[derive(Debug)]
pub enum StartError {
    /// `redis-server` is not on `PATH`.
    Missing,
    Failed(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str(MISSING_MESSAGE),
            Self::Failed(why) => write!(f, "could not start redis-server: {why}"),
        }
    }
}

impl std::error::Error for StartError {}

/// What to tell someone who has neither `redis-server` nor `REDIS_URL`.
pub const MISSING_MESSAGE: &str = "\
redis-server was not found on PATH, and REDIS_URL is not set.
bcast-local needs a Redis. Either install redis-server and run again
(it starts a private one on a free port and stops it on exit):
    Debian/Ubuntu:  sudo apt-get install -y redis-server
    macOS:          brew install redis
    Fedora:         sudo dnf install -y redis
or point it at a Redis you already run:
    REDIS_URL=redis://127.0.0.1:6379 cargo run -p bcast-local -- serve";

/// A running private `redis-server`.
pub struct PrivateRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn free_port() -> Result<u16, StartError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StartError::Failed(format!("no free loopback port: {e}")))
}

impl PrivateRedis {
    /// Starts `redis-server` and waits until it answers `PING`. Call it from the main thread:
    /// on Linux the server is told to stop when the thread that started it ends.
    pub fn start() -> Result<Self, StartError> {
        let mut last = StartError::Failed("no attempt".into());
        for _ in 0..5 {
            match Self::try_start() {
                Ok(server) => return Ok(server),
                Err(StartError::Missing) => return Err(StartError::Missing),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn try_start() -> Result<Self, StartError> {
        let port = free_port()?;
        let dir =
            std::env::temp_dir().join(format!("bcast-local-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::Failed(format!("{}: {e}", dir.display())))?;
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--loglevel", "warning", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        stop_with_parent(&mut command);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(StartError::Missing);
            }
            Err(e) => return Err(StartError::Failed(e.to_string())),
        };
        let mut server = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = server.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(StartError::Failed(format!(
                    "redis-server exited with {status}: {}",
                    stderr.trim()
                )));
            }
            if ping(port) {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(StartError::Failed(
            "redis-server did not answer within 10 s".into(),
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server and removes its directory.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis on the loopback `port` answers `PING`.
pub fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && stream
            .read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

/// Asks Linux to kill the child when the thread that spawned it ends, so a private Redis never
/// outlives a `bcast-local` that was killed with SIGKILL.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_command: &mut Command) {}
