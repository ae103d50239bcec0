//! The publish function: `POST /publish` (backend-facing) and the SQS publish queue both store
//! events for accounts.
//!
//! One Lambda takes both triggers. `lambda_http` only understands API Gateway events, so the
//! function runs on `lambda_runtime` with the raw payload and looks at it: an SQS batch goes to
//! [`handle_sqs`], anything else is read as an API Gateway request and goes through the same
//! `lambda_http` request types to [`handle`].

use std::time::Instant;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bcast_shared::domain::{NewEvent, Published, MAX_BATCH};
use bcast_shared::http::{self, ApiError, InvalidEvent, RequestLog, Route};
use bcast_shared::metrics::Metrics;
use bcast_shared::{Account, ClientNames, Config, EventId, Store};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

const ROUTES: [Route; 1] = [Route {
    method: Method::POST,
    pattern: &["publish"],
    name: "POST /publish",
}];

/// State built once per cold start.
pub struct App {
    store: Store,
    clients: ClientNames,
    max_event_bytes: usize,
}

impl App {
    pub fn new(config: &Config, store: Store) -> Self {
        Self {
            store,
            clients: config.clients.clone(),
            max_event_bytes: config.events.max_event_bytes,
        }
    }

    /// The largest body that can be valid: a full batch of full events, plus room for the
    /// envelope and escaping.
    fn body_limit(&self) -> usize {
        MAX_BATCH * (self.max_event_bytes + 512) + 4096
    }
}

/// `data` is any JSON value, `null` included, so presence is what counts.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    client: String,
    account_id: String,
    data: Box<RawValue>,
    #[serde(default)]
    id: Option<String>,
}

/// One event, or a batch under `events`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    #[serde(default)]
    events: Option<Vec<EventBody>>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    #[serde(default)]
    id: Option<String>,
}

impl PublishBody {
    /// The events, and whether they came as a batch under `events`.
    fn into_events(self) -> Result<(Vec<EventBody>, bool), ApiError> {
        match self {
            PublishBody {
                events: Some(events),
                client: None,
                account_id: None,
                data: None,
                id: None,
            } => Ok((events, true)),
            PublishBody {
                events: Some(_), ..
            } => Err(ApiError::invalid(
                "give either one event or a batch under \"events\", not both",
            )),
            PublishBody {
                client: Some(client),
                account_id: Some(account_id),
                data: Some(data),
                id,
                ..
            } => Ok((
                vec![EventBody {
                    client,
                    account_id,
                    data,
                    id,
                }],
                false,
            )),
            _ => Err(ApiError::invalid(
                "an event needs \"client\", \"account_id\" and \"data\"",
            )),
        }
    }
}

/// Checks a whole publish body before anything is written. Events without an id get
/// `default_id` (an SQS message id, so a redelivery is idempotent), followed by `:<index>` in a
/// batch.
pub fn parse_events(
    app: &App,
    body: PublishBodyText<'_>,
    default_id: Option<&str>,
) -> Result<Vec<NewEvent>, ApiError> {
    let parsed: PublishBody = match body {
        PublishBodyText::Request(req) => http::json_body(req, app.body_limit())?
            .ok_or_else(|| ApiError::invalid("a JSON body is required"))?,
        PublishBodyText::Text(text) => {
            if text.len() > app.body_limit() {
                return Err(ApiError::PayloadTooLarge(
                    "message body over the limit".into(),
                ));
            }
            http::parse_json(text.as_bytes())?
        }
    };
    let (events, batch) = parsed.into_events()?;
    if events.is_empty() {
        return Err(ApiError::invalid("\"events\" is empty"));
    }
    if events.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "a batch holds at most {MAX_BATCH} events, not {}",
            events.len()
        )));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |msg: String| {
                if batch {
                    format!("events[{i}]: {msg}")
                } else {
                    msg
                }
            };
            let account = Account::parse(&app.clients, &e.client, &e.account_id)
                .map_err(|err| ApiError::invalid(at(err.to_string())))?;
            let id = match (e.id, default_id) {
                (Some(id), _) => Some(id),
                (None, Some(base)) if batch => Some(format!("{base}:{i}")),
                (None, base) => base.map(str::to_owned),
            };
            let id = id
                .map(|id| EventId::parse(&id).map_err(|err| ApiError::invalid(at(err.to_string()))))
                .transpose()?;
            let bytes = e.data.get().len();
            if bytes > app.max_event_bytes {
                return Err(ApiError::PayloadTooLarge(at(format!(
                    "data is {bytes} bytes, over the limit of {}",
                    app.max_event_bytes
                ))));
            }
            Ok(NewEvent {
                account,
                id,
                data: e.data,
            })
        })
        .collect()
}

/// Where a publish body comes from.
pub enum PublishBodyText<'a> {
    Request(&'a Request),
    Text(&'a str),
}

#[derive(Serialize)]
struct PublishResponse {
    results: Vec<Published>,
}

/// Serves one API Gateway request.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let mut log = RequestLog::start("publish");
    let result = match http::route(&req, &ROUTES) {
        Err(e) => Err(e),
        Ok(_) => publish(app, &req, &mut log).await,
    };
    log.finish("POST /publish", result)
}

async fn publish(
    app: &App,
    req: &Request,
    log: &mut RequestLog,
) -> Result<Response<Body>, ApiError> {
    http::query(req)?;
    let events = parse_events(app, PublishBodyText::Request(req), None)?;
    log.account = events.first().map(|e| e.account.to_string());
    let results = log.redis(app.store.publish(events)).await?;
    count_published(&mut log.metrics, &results);
    Ok(http::json(StatusCode::OK, &PublishResponse { results }))
}

/// Stores each message of an SQS batch and reports the ones that failed, so only those are
/// retried (and, after the queue's redrive limit, land in the dead-letter queue). A malformed
/// message fails alone.
pub async fn handle_sqs(app: &App, batch: SqsEvent) -> SqsBatchResponse {
    let outcomes =
        futures::future::join_all(batch.records.iter().map(|m| publish_message(app, m))).await;
    let mut response = SqsBatchResponse::default();
    for (message, ok) in batch.records.iter().zip(outcomes) {
        if !ok {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

async fn publish_message(app: &App, message: &SqsMessage) -> bool {
    let started = Instant::now();
    let mut log = RequestLog::start("publish");
    let message_id = message.message_id.as_deref().unwrap_or("");
    let result = async {
        if message_id.is_empty() {
            return Err(ApiError::invalid("SQS message without a messageId"));
        }
        let body = message.body.as_deref().unwrap_or("");
        let events = parse_events(app, PublishBodyText::Text(body), Some(message_id))?;
        log.account = events.first().map(|e| e.account.to_string());
        let results = log.redis(app.store.publish(events)).await?;
        count_published(&mut log.metrics, &results);
        Ok(())
    }
    .await;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Err(ApiError::Unavailable) = result {
        log.metrics.count("RedisErrors", 1);
    }
    log.emit_metrics();
    let account = log.account.as_deref();
    match result {
        Ok(()) => {
            tracing::info!(
                route = "SQS",
                message_id,
                duration_ms,
                account,
                status = "stored",
                "message"
            );
            true
        }
        Err(e) => {
            tracing::warn!(route = "SQS", message_id, duration_ms, error = e.code(), detail = %e, "message failed");
            false
        }
    }
}

fn count_published(metrics: &mut Metrics, results: &[Published]) {
    let duplicates = results.iter().filter(|r| r.duplicate).count() as u64;
    metrics.count("Published", results.len() as u64 - duplicates);
    metrics.count("Duplicates", duplicates);
}

/// Just enough of a payload to tell an SQS batch from an API Gateway request.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "Records", default)]
    records: Vec<ProbeRecord>,
}

#[derive(Deserialize)]
struct ProbeRecord {
    #[serde(rename = "eventSource", default)]
    event_source: Option<String>,
}

/// Runs the function on one raw Lambda payload and returns its JSON response.
pub async fn invoke(app: &App, payload: &str) -> Result<serde_json::Value, InvalidEvent> {
    let is_sqs = serde_json::from_str::<Probe>(payload).is_ok_and(|p| {
        !p.records.is_empty()
            && p.records
                .iter()
                .all(|r| r.event_source.as_deref() == Some("aws:sqs"))
    });
    if is_sqs {
        let batch: SqsEvent =
            serde_json::from_str(payload).map_err(|e| InvalidEvent::new(e.to_string()))?;
        let response = handle_sqs(app, batch).await;
        return serde_json::to_value(response).map_err(|e| InvalidEvent::new(e.to_string()));
    }
    http::invoke(payload, |req| handle(app, req)).await
}
