//! The sample events in `events/` and what each one must produce: one table for every test
//! that replays them (the handlers in-process, and `bcast-local invoke`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What a function answers to one event file.
pub enum Outcome {
    Http(u16, Option<&'static str>),
    /// The message ids reported as failed.
    Sqs(&'static [&'static str]),
}

pub use Outcome::{Http, Sqs};

pub const EXPECTED: &[(&str, Outcome)] = &[
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

/// The `events/` folder of the repository.
pub fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// Every `.json` file below `events/`, as `function/file.json`.
pub fn event_files() -> BTreeSet<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}/"), out);
            } else if name.ends_with(".json") {
                out.insert(format!("{prefix}{name}"));
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(&events_dir(), "", &mut files);
    files
}
