//! `bcast-local invoke` replays every file in `events/` with its expected outcome, the way a
//! developer runs it: the binary, on the file as committed, with the placeholders filled in.

mod support;

use std::process::Output;

use bcast_testing::RedisServer;
use serde_json::Value;
use support::command;

use bcast_testing::fixtures::{Http, Sqs, EXPECTED};

/// `bcast-local invoke <function> --event events/<file>` with `extra` arguments.
fn invoke(redis: Option<&RedisServer>, file: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let function = file.split('/').next().unwrap_or("");
    let mut cmd = command();
    cmd.args(["invoke", function, "--event", &format!("events/{file}")])
        .args(extra);
    if let Some(redis) = redis {
        cmd.env("REDIS_URL", redis.url());
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run bcast-local invoke")
}

fn response(out: &Output, file: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{file}: exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{file}: not JSON ({e}): {stdout}"))
}

fn status_and_code(response: &Value) -> (u64, Option<String>) {
    let status = response["statusCode"].as_u64().unwrap_or(0);
    let code = response["body"]
        .as_str()
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .and_then(|b| b["code"].as_str().map(str::to_owned));
    (status, code)
}

#[test]
fn every_event_file_replays_with_its_outcome() {
    let redis = RedisServer::start();
    for (file, outcome) in EXPECTED {
        let out = invoke(Some(&redis), file, &[], &[]);
        let response = response(&out, file);
        match outcome {
            Http(status, code) => {
                let (got, got_code) = status_and_code(&response);
                assert_eq!(got, u64::from(*status), "{file}: {response}");
                if let Some(code) = code {
                    assert_eq!(got_code.as_deref(), Some(*code), "{file}: {response}");
                }
                let headers = &response["headers"];
                let headers = if headers.as_object().is_some_and(|h| !h.is_empty()) {
                    headers.clone()
                } else {
                    response["multiValueHeaders"].clone()
                };
                let cache = headers["cache-control"].clone();
                assert!(
                    cache == "no-store" || cache == serde_json::json!(["no-store"]),
                    "{file}: {response}"
                );
            }
            Sqs(failed) => {
                let ids: Vec<&str> = response["batchItemFailures"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{file}: {response}"))
                    .iter()
                    .filter_map(|f| f["itemIdentifier"].as_str())
                    .collect();
                assert_eq!(ids, *failed, "{file}");
            }
        }
    }
    // The SQS message and its redelivery were stored once, in the Redis REDIS_URL named.
    let mut conn = redis.client().get_connection().expect("redis");
    let events: Vec<String> = redis::cmd("ZRANGE")
        .arg("bcast:wp123456")
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .expect("ZRANGE");
    let from_sqs = events
        .iter()
        .filter(|e| e.contains("059f36b4-87a3-44ab-83d2-661975830a7d"))
        .count();
    assert_eq!(from_sqs, 1, "{events:?}");
}

#[test]
fn without_redis_url_it_runs_on_a_private_redis_server() {
    let out = invoke(None, "login/login.v2.json", &[], &[]);
    assert_eq!(status_and_code(&response(&out, "login")).0, 201);
}

#[test]
fn placeholders_come_from_the_environment_or_stay_with_no_fill() {
    let redis = RedisServer::start();
    // --no-fill sends the placeholder itself, which is no token.
    let out = invoke(Some(&redis), "login/login.v2.json", &["--no-fill"], &[]);
    assert_eq!(
        status_and_code(&response(&out, "no-fill")),
        (401, Some("unauthorized".into()))
    );
    // LOGIN_TOKEN and CLIENT_KEY from the environment are used as given.
    let out = invoke(
        Some(&redis),
        "login/login.v2.json",
        &[],
        &[("LOGIN_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA")],
    );
    assert_eq!(status_and_code(&response(&out, "env token")).0, 401);
    let out = invoke(
        Some(&redis),
        "fetch/broadcasts.v2.json",
        &[],
        &[("CLIENT_KEY", "AQJ3cARkZW1vAAAA")],
    );
    assert_eq!(
        status_and_code(&response(&out, "env key")),
        (401, Some("client_key_invalid".into()))
    );
    // A value that would break out of the JSON string is refused before anything runs.
    let out = invoke(
        Some(&redis),
        "login/login.v2.json",
        &[],
        &[("LOGIN_TOKEN", "x\", \"y")],
    );
    assert!(!out.status.success());
    // --client/--account choose whose fresh session fills ${CLIENT_KEY}.
    let out = invoke(
        Some(&redis),
        "heartbeat/heartbeat.v2.json",
        &["--client", "app", "--account", "acct-7"],
        &[],
    );
    assert_eq!(status_and_code(&response(&out, "account")).0, 200);
    let mut conn = redis.client().get_connection().expect("redis");
    let online: u64 = redis::cmd("ZCARD")
        .arg("{bcast:appacct-7}:presence")
        .query(&mut conn)
        .expect("ZCARD");
    assert_eq!(online, 1);
}

#[test]
fn an_event_the_function_cannot_take_is_an_error() {
    let redis = RedisServer::start();
    // An SQS batch is no API Gateway event for the fetch function.
    let mut cmd = command();
    let out = cmd
        .args([
            "invoke",
            "fetch",
            "--event",
            "events/publish/sqs-batch.json",
        ])
        .env("REDIS_URL", redis.url())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an API Gateway request event"));
    let out = command()
        .args(["invoke", "fetch", "--event", "events/nope.json"])
        .env("REDIS_URL", redis.url())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = command()
        .args(["invoke", "sqs", "--event", "events/publish/sqs-batch.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown function"));
}

#[test]
fn token_prints_a_token_the_login_function_accepts() {
    let out = command()
        .args(["token", "--client", "api", "--account", "42", "--ttl", "60"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("development secret"));
    let redis = RedisServer::start();
    let out = invoke(
        Some(&redis),
        "login/login.v2.json",
        &[],
        &[("LOGIN_TOKEN", &token)],
    );
    let reply = response(&out, "token");
    assert_eq!(status_and_code(&reply).0, 201);
    let body: Value = serde_json::from_str(reply["body"].as_str().unwrap_or("")).expect("body");
    assert_eq!(
        (body["client"].as_str(), body["account_id"].as_str()),
        (Some("api"), Some("42"))
    );

    // A configured secret signs instead; the development one is then refused.
    let own = "an-own-login-secret-of-at-least-32-bytes";
    let out = command()
        .args(["token", "--client", "api", "--account", "42"])
        .env("LOGIN_TOKEN_SECRET", own)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("development secret"));
    let own_token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = invoke(
        Some(&redis),
        "login/login.v2.json",
        &[],
        &[("LOGIN_TOKEN", &token), ("LOGIN_TOKEN_SECRET", own)],
    );
    assert_eq!(status_and_code(&response(&out, "dev token")).0, 401);
    let out = invoke(
        Some(&redis),
        "login/login.v2.json",
        &[],
        &[("LOGIN_TOKEN", &own_token), ("LOGIN_TOKEN_SECRET", own)],
    );
    assert_eq!(status_and_code(&response(&out, "own token")).0, 201);

    // Bad input: a longer life than the functions accept, an unknown client.
    for args in [
        [
            "token",
            "--client",
            "api",
            "--account",
            "42",
            "--ttl",
            "301",
        ]
        .as_slice(),
        ["token", "--client", "tv", "--account", "42"].as_slice(),
        ["token", "--client", "api", "--account", "a{b}"].as_slice(),
    ] {
        let out = command().args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}
