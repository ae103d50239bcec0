//! Every file in `events/` replayed through the real handler against a real redis-server, with
//! its outcome asserted. The table must name every file, so a new event cannot go untested.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bcast_shared::{Account, ClientNames};
use common::{Reply, Service};

enum Outcome {
    Http(u16, Option<&'static str>),
    /// The message ids reported as failed.
    Sqs(&'static [&'static str]),
}

use Outcome::{Http, Sqs};

const EXPECTED: &[(&str, Outcome)] = &[
    (
        "fetch/broadcasts-bad-cursor.v2.json",
        Http(400, Some("invalid_request")),
    ),
    (
        "fetch/broadcasts-key-in-query.v2.json",
        Http(400, Some("invalid_request")),
    ),
    (
        "fetch/broadcasts-no-key.v2.json",
        Http(401, Some("unauthorized")),
    ),
    ("fetch/broadcasts.v1.json", Http(200, None)),
    ("fetch/broadcasts.v2.json", Http(200, None)),
    (
        "heartbeat/heartbeat-bad-body.v2.json",
        Http(400, Some("invalid_request")),
    ),
    ("heartbeat/heartbeat.v1.json", Http(200, None)),
    ("heartbeat/heartbeat.v2.json", Http(200, None)),
    (
        "heartbeat/presence-bad-client.v2.json",
        Http(400, Some("invalid_request")),
    ),
    ("heartbeat/presence.v2.json", Http(200, None)),
    (
        "login/login-bad-token.v2.json",
        Http(401, Some("unauthorized")),
    ),
    (
        "login/login-no-token.v2.json",
        Http(401, Some("unauthorized")),
    ),
    ("login/login.v1.json", Http(201, None)),
    ("login/login.v2.json", Http(201, None)),
    (
        "login/logout-bad-key.v2.json",
        Http(401, Some("client_key_invalid")),
    ),
    ("login/logout.v2.json", Http(204, None)),
    (
        "login/revoke-sessions-bad-account.v2.json",
        Http(400, Some("invalid_request")),
    ),
    ("login/revoke-sessions.v2.json", Http(204, None)),
    ("login/unknown-route.v2.json", Http(404, Some("not_found"))),
    (
        "publish/publish-bad-client.v2.json",
        Http(400, Some("invalid_request")),
    ),
    ("publish/publish-batch.v2.json", Http(200, None)),
    (
        "publish/publish-missing-data.v2.json",
        Http(400, Some("invalid_request")),
    ),
    (
        "publish/publish-not-json.v2.json",
        Http(415, Some("unsupported_media_type")),
    ),
    ("publish/publish.v1.json", Http(200, None)),
    ("publish/publish.v2.json", Http(200, None)),
    (
        "publish/sqs-batch.json",
        Sqs(&["2e1424d4-f796-459a-8184-9c92662be6da"]),
    ),
];

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn event_files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            event_files(&path, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".json") {
            out.insert(format!("{prefix}{name}"));
        }
    }
}

#[test]
fn every_event_file_has_an_expected_outcome() {
    let mut files = BTreeSet::new();
    event_files(&events_dir(), "", &mut files);
    let listed: BTreeSet<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(files, listed, "events/ and the table differ");
}

#[tokio::test]
async fn every_event_file_replays_with_its_outcome() {
    let service = Service::start(&[]);
    for (file, outcome) in EXPECTED {
        let function = file.split('/').next().unwrap();
        let text = std::fs::read_to_string(events_dir().join(file)).unwrap();
        // Fixtures never hold a working credential; the test makes them.
        let text = text
            .replace("${LOGIN_TOKEN}", &service.token("wp", "123456"))
            .replace("${CLIENT_KEY}", &service.client_key("wp", "123456").await);
        let response = service.invoke(function, &text).await;
        match outcome {
            Http(status, code) => {
                let reply = Reply::from(&response);
                assert_eq!(reply.status, *status, "{file}: {reply:?}");
                reply.check_envelope();
                if let Some(code) = code {
                    assert_eq!(reply.code(), *code, "{file}");
                }
            }
            Sqs(failed) => {
                let ids: Vec<&str> = response["batchItemFailures"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{file}: {response}"))
                    .iter()
                    .map(|f| f["itemIdentifier"].as_str().unwrap())
                    .collect();
                assert_eq!(ids, *failed, "{file}");
            }
        }
    }
    // The SQS batch's valid message and its redelivery were stored once, keyed by message id.
    let account = Account::parse(&ClientNames::default(), "wp", "123456").unwrap();
    let page = service.store.read(&account, None, None).await.unwrap();
    let from_sqs: Vec<_> = page
        .events
        .iter()
        .filter(|e| e.id == "059f36b4-87a3-44ab-83d2-661975830a7d")
        .collect();
    assert_eq!(from_sqs.len(), 1);
}
