//! `bcast-local serve` end to end: the binary, real HTTP, a real redis-server.

mod support;

use std::time::Duration;

use bcast_testing::RedisServer;
use serde_json::json;
use support::{command, eventually, listening, Serve};

#[test]
fn serves_every_route_through_the_functions() {
    let redis = RedisServer::start();
    let server = Serve::start(|cmd| {
        cmd.env("REDIS_URL", redis.url());
    });
    assert!(server.banner.contains("(REDIS_URL)"));
    assert!(server.url.starts_with("http://127.0.0.1:"));

    // The token printed in the banner logs in (the README's curl session).
    let token = server.banner_token();
    let login = server.request(
        "POST",
        "/login",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(login.status, 201, "{login:?}");
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let body = login.json();
    assert_eq!(body["account_id"], "demo");
    assert_eq!(body["client"], "wp");
    let key = body["client_key"].as_str().expect("client_key").to_owned();

    let published = server.request(
        "POST",
        "/publish",
        &[("Content-Type", "application/json")],
        r#"{"client":"wp","account_id":"demo","data":{"hello":"world"},"id":"e1"}"#,
    );
    assert_eq!(published.status, 200, "{published:?}");
    assert_eq!(published.json()["results"][0]["key"], "bcast:wpdemo");

    let fetched = server.request(
        "GET",
        "/broadcasts?limit=10",
        &[("Authorization", &format!("Bearer {key}"))],
        "",
    );
    assert_eq!(fetched.status, 200, "{fetched:?}");
    let page = fetched.json();
    assert_eq!(page["events"][0]["data"], json!({"hello": "world"}));
    assert_eq!(page["events"][0]["id"], "e1");
    assert_eq!(page["missed"], false);
    let key = page["client_key"].as_str().expect("next key").to_owned();

    let beat = server.request(
        "POST",
        "/heartbeat",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
        ],
        &json!({"cursor": page["cursor"]}).to_string(),
    );
    assert_eq!(beat.status, 200, "{beat:?}");
    assert_eq!(beat.json()["pending"], 0);
    let key = beat.json()["client_key"].as_str().expect("key").to_owned();

    let presence = server.request("GET", "/presence/wp/demo", &[], "");
    assert_eq!(presence.status, 200);
    assert_eq!(presence.json()["online"], 1);

    // Errors are the functions' problem+json, headers included.
    let reused = server.request(
        "GET",
        "/broadcasts",
        &[("Authorization", "Bearer nonsense")],
        "",
    );
    assert_eq!(reused.status, 401);
    assert_eq!(
        reused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        reused.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(reused.json()["code"], "client_key_invalid");
    let not_json = server.request(
        "POST",
        "/publish",
        &[("Content-Type", "text/plain")],
        "hello",
    );
    assert_eq!(not_json.status, 415);
    let unknown = server.request("GET", "/nope", &[], "");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "not_found");
    let wrong_method = server.request("GET", "/publish", &[], "");
    assert_eq!(wrong_method.status, 405);

    let logout = server.request(
        "POST",
        "/logout",
        &[("Authorization", &format!("Bearer {key}"))],
        "",
    );
    assert_eq!(logout.status, 204);
    let revoke = server.request("DELETE", "/sessions/wp/demo", &[], "");
    assert_eq!(revoke.status, 204);

    // The demo page, its script and the JS client.
    let page = server.request("GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'self'")));
    assert!(page.body.contains("/demo.js"));
    let client = server.request("GET", "/bcast.js", &[], "");
    assert!(client.body.contains("export class BcastClient"));

    // Login tokens for the demo page and tests.
    let minted = server.request(
        "POST",
        "/_local/token",
        &[("Content-Type", "application/json")],
        r#"{"client":"app","account_id":"x1","ttl":60}"#,
    );
    assert_eq!(minted.status, 201, "{minted:?}");
    assert_eq!(minted.json()["expires_in"], 60);
    let bad = server.request(
        "POST",
        "/_local/token",
        &[],
        r#"{"client":"tv","account_id":"x1"}"#,
    );
    assert_eq!(bad.status, 400);
    let long = server.request(
        "POST",
        "/_local/token",
        &[],
        r#"{"client":"app","account_id":"x1","ttl":3600}"#,
    );
    assert_eq!(long.status, 400);

    // One JSON log line per request on stderr, without keys or tokens.
    std::thread::sleep(Duration::from_millis(100));
    let logs = server.stderr();
    assert!(logs.contains(r#""route":"GET /broadcasts""#), "{logs}");
    assert!(!logs.contains(&token));
    assert!(!logs.contains(&key));
}

#[test]
fn ctrl_c_stops_the_server_and_its_private_redis_server() {
    let mut server = Serve::start(|_| {});
    let port = server.redis_port().expect("a private redis-server");
    assert!(listening(port));
    let up = server.request("GET", "/presence/wp/demo", &[], "");
    assert_eq!(up.status, 200);
    let status = server.stop(libc::SIGINT);
    assert_eq!(status.code(), Some(0));
    assert!(!listening(port), "the private redis-server outlived serve");
    assert!(server.stderr().contains("private redis-server is stopped"));
}

#[test]
fn the_private_redis_server_dies_with_a_killed_serve() {
    let mut server = Serve::start(|_| {});
    let port = server.redis_port().expect("a private redis-server");
    assert!(listening(port));
    server.stop(libc::SIGKILL);
    assert!(
        eventually(Duration::from_secs(5), || !listening(port)),
        "the private redis-server outlived a killed serve"
    );
}

#[test]
fn without_redis_server_or_redis_url_it_says_what_to_do() {
    let empty = std::env::temp_dir().join(format!("bcast-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("dir");
    let out = command()
        .args(["serve", "--port", "0"])
        .env("PATH", &empty)
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(out.status.code().is_some(), "it exits, it is not killed");
    assert!(stderr.contains("redis-server was not found"), "{stderr}");
    assert!(stderr.contains("apt-get install"), "{stderr}");
    assert!(stderr.contains("REDIS_URL="), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn the_development_secret_is_loud_and_kept_on_loopback() {
    let redis = RedisServer::start();
    let server = Serve::start(|cmd| {
        cmd.env("REDIS_URL", redis.url());
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(server
        .stderr()
        .contains("WARNING: LOGIN_TOKEN_SECRET is not set"));
    drop(server);

    let out = command()
        .args(["serve", "--port", "0", "--host", "0.0.0.0"])
        .env("REDIS_URL", redis.url())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to listen"));

    // With a secret of its own, it serves on every interface and prints no warning.
    let server = Serve::start(|cmd| {
        cmd.args(["--host", "0.0.0.0"])
            .env("REDIS_URL", redis.url())
            .env(
                "LOGIN_TOKEN_SECRET",
                "an-own-login-secret-of-at-least-32-bytes",
            );
    });
    assert_eq!(
        server.request("GET", "/presence/wp/demo", &[], "").status,
        200
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(!server.stderr().contains("WARNING"));
}

#[test]
fn a_redis_that_does_not_answer_gives_503_with_retry_after() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let server = Serve::start(|cmd| {
        cmd.env("REDIS_URL", format!("redis://127.0.0.1:{closed}"));
    });
    let token = server.banner_token();
    let login = server.request(
        "POST",
        "/login",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    );
    assert_eq!(login.status, 503);
    assert_eq!(login.header("retry-after"), Some("1"));
    assert_eq!(login.json()["code"], "unavailable");
    assert!(server.stderr().contains("does not answer yet"));
}
