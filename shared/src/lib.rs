//! `bcast-shared`: everything the four bcast functions share.
//!
//! Configuration ([`config`]), key naming ([`keys`]), cursors and client keys, the product's
//! types ([`domain`]), and the Redis store ([`store`]) whose operations are each one Lua script
//! ([`scripts`]) and one round trip, on a single node or a Redis Cluster alike, and the HTTP
//! side the functions share ([`http`]: the problem+json error type, request parsing, routing).

pub mod aws;
pub mod client_key;
pub mod config;
pub mod cursor;
pub mod domain;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod scripts;
pub mod store;
pub mod telemetry;

pub use client_key::ClientKey;
pub use config::Config;
pub use cursor::Cursor;
pub use keys::{Account, AccountId, Client, ClientNames, EventId};
pub use store::{Connection, PublishError, SessionError, Store, StoreError};
