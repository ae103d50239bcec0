//! A minimal stand-in for the Lambda runtime API on loopback, to time cold starts: a function
//! process is started with the Lambda environment pointing here; it is ready when it asks for
//! its first event (`GET /2018-06-01/runtime/invocation/next`). That event is then answered
//! and the time to the posted response is the first reply.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Medians over the runs.
#[derive(Clone, Copy, Debug)]
pub struct ColdStart {
    /// Process start to the first `GET …/invocation/next`.
    pub ready: Duration,
    /// Process start to the first posted response.
    pub first_reply: Duration,
}

/// What the runtime stand-in saw from one process.
enum Seen {
    Next,
    Response,
    Error(String),
}

/// Reads one HTTP/1.1 request: (method, path, body).
async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some((method, path, body))
}

async fn respond(
    stream: &mut BufReader<TcpStream>,
    status: &str,
    headers: &[(&str, String)],
    body: &str,
) {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    let _ = stream.get_mut().write_all(out.as_bytes()).await;
}

/// Serves one connection: the first `next` gets `event`, later ones are left hanging (the
/// process is killed by then).
async fn serve(stream: TcpStream, event: String, tx: tokio::sync::mpsc::UnboundedSender<Seen>) {
    let mut reader = BufReader::new(stream);
    let mut served = false;
    while let Some((method, path, body)) = read_request(&mut reader).await {
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let _ = tx.send(Seen::Next);
            if served {
                // Hold the connection like the real API does between invocations.
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
            served = true;
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                + 30_000;
            respond(
                &mut reader,
                "200 OK",
                &[
                    ("lambda-runtime-aws-request-id", "bench-1".into()),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:eu-west-1:123456789012:function:bench".into(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000".into(),
                    ),
                ],
                &event,
            )
            .await;
        } else if method == "POST" && path.ends_with("/response") {
            let _ = tx.send(Seen::Response);
            respond(&mut reader, "202 Accepted", &[], "{}").await;
        } else if method == "POST" && path.contains("/error") {
            let _ = tx.send(Seen::Error(String::from_utf8_lossy(&body).into_owned()));
            respond(&mut reader, "202 Accepted", &[], "{}").await;
        } else {
            respond(&mut reader, "404 Not Found", &[], "{}").await;
        }
    }
}

/// The first event for each binary: one that does real work against Redis where it can.
fn first_event(name: &str) -> String {
    let request = |method: &str, path: &str, body: serde_json::Value| {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {
                "accountId": "123456789012", "apiId": "bench", "domainName": "bench.local",
                "domainPrefix": "bench", "requestId": "bench", "routeKey": "$default",
                "stage": "$default", "time": "04/Dec/2026:20:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "bench"}
            },
            "body": body.to_string(),
            "isBase64Encoded": false
        })
        .to_string()
    };
    match name {
        "publish" => request(
            "POST",
            "/publish",
            json!({"client": "wp", "account_id": "cold", "data": {"cold": true}}),
        ),
        // Without credentials these answer 401 after parsing; login and fetch/heartbeat with
        // a real key would need state from an earlier run.
        "login" => request("POST", "/login", json!({})),
        "fetch" => request("GET", "/broadcasts", json!(null)),
        "heartbeat" => request("POST", "/heartbeat", json!({})),
        _ => json!({"hello": "world"}).to_string(),
    }
}

async fn one_run(binary: &Path, name: &str, redis_url: &str, secret: &str) -> ColdStart {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = listener.local_addr().expect("addr").to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let event = first_event(name);
    let acceptor = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, event.clone(), tx.clone()));
        }
    });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "eu-west-1")
        .env("REDIS_URL", redis_url)
        .env("LOGIN_TOKEN_SECRET", secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let mut ready = None;
    let mut first_reply = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while first_reply.is_none() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Seen::Next)) => {
                ready.get_or_insert(started.elapsed());
            }
            Ok(Some(Seen::Response)) => first_reply = Some(started.elapsed()),
            Ok(Some(Seen::Error(e))) => panic!("{name} reported an error: {e}"),
            Ok(None) | Err(_) => panic!("{name} did not take its first event within 20 s"),
        }
    }
    let _ = child.kill().await;
    acceptor.abort();
    ColdStart {
        ready: ready.expect("ready before reply"),
        first_reply: first_reply.expect("a reply"),
    }
}

/// Starts `binary` `runs` times and returns the medians.
pub async fn cold_starts(
    binary: &Path,
    name: &str,
    redis_url: &str,
    secret: &str,
    runs: usize,
) -> ColdStart {
    let mut ready = Vec::new();
    let mut reply = Vec::new();
    // One unmeasured run warms the page cache.
    one_run(binary, name, redis_url, secret).await;
    for _ in 0..runs.max(1) {
        let c = one_run(binary, name, redis_url, secret).await;
        ready.push(c.ready);
        reply.push(c.first_reply);
    }
    ready.sort();
    reply.sort();
    ColdStart {
        ready: ready[ready.len() / 2],
        first_reply: reply[reply.len() / 2],
    }
}
