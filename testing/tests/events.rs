//! Every file in `events/` replayed through the real handler against a real redis-server, with
//! its outcome asserted. The table must name every file, so a new event cannot go untested.

mod common;

use std::collections::BTreeSet;

use bcast_shared::{Account, ClientNames};
use common::{Reply, Service};

use bcast_testing::fixtures::{event_files, events_dir, Http, Sqs, EXPECTED};

#[test]
fn every_event_file_has_an_expected_outcome() {
    let files = event_files();
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
