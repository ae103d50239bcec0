//! A loopback TCP proxy that can delay every chunk it forwards: slow Redis on demand.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Forwards `127.0.0.1:<port>` to a target port, sleeping [`DelayProxy::set_delay`] before
/// passing on each chunk in either direction. Stopped (listener and every connection) on drop.
pub struct DelayProxy {
    port: u16,
    target: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl DelayProxy {
    /// Starts forwarding to `127.0.0.1:target`, with no delay yet.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("proxy: cannot bind a loopback port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy: {e}"))
            .port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let target = Arc::new(AtomicU64::new(u64::from(target)));
        let stop = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let acceptor = {
            let (delay_ms, stop, streams) = (delay_ms.clone(), stop.clone(), streams.clone());
            let target = target.clone();
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let port = target.load(Ordering::SeqCst) as u16;
                    let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let pairs = [
                        (client.try_clone(), server.try_clone()),
                        (server.try_clone(), client.try_clone()),
                    ];
                    if let Ok(mut list) = streams.lock() {
                        list.extend(client.try_clone());
                        list.extend(server.try_clone());
                    }
                    for pair in pairs {
                        if let (Ok(from), Ok(to)) = pair {
                            let delay_ms = delay_ms.clone();
                            thread::spawn(move || pump(from, to, &delay_ms));
                        }
                    }
                }
            })
        };
        Self {
            port,
            target,
            delay_ms,
            stop,
            streams,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends new connections to `port` from now on; open ones stay where they are, as after a
    /// DNS switch of a primary endpoint.
    pub fn set_target(&self, port: u16) {
        self.target.store(u64::from(port), Ordering::SeqCst);
    }

    /// Delay applied from now on to every chunk forwarded.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, delay_ms: &AtomicU64) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            thread::sleep(Duration::from_millis(delay));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        if let Ok(list) = self.streams.lock() {
            for s in list.iter() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
