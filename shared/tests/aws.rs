//! The AWS wiring: ElastiCache IAM tokens checked against botocore, secrets loaded through the
//! real Secrets Manager SDK from a local moto server, and IAM credentials reaching a real
//! redis-server as AUTH.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use bcast_shared::aws::{load_secrets, IamAuth, IamTokenRequest};
use bcast_shared::domain::NewEvent;
use bcast_shared::{Account, ClientNames, Store};
use bcast_testing::{config, RedisServer};
use serde_json::value::RawValue;

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success())
}

fn require_python(module: &str, package: &str) {
    assert!(
        python_has(module),
        "this test needs Python's {package}: pip install '{package}' (.ci/aws.sh does)"
    );
}

/// botocore's presigned `connect` URL for the same inputs, at the same instant.
fn botocore_token(req: &IamTokenRequest, creds: (&str, &str, Option<&str>), at: u64) -> String {
    let script = r#"
import sys, datetime
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
ak, sk, token, region, cache, user, serverless, at = sys.argv[1:9]
fixed = datetime.datetime.fromtimestamp(int(at), datetime.timezone.utc).replace(tzinfo=None)
botocore.auth.get_current_datetime = lambda *a, **k: fixed
params = {"Action": "connect", "User": user}
if serverless == "1":
    params["ResourceType"] = "ServerlessCache"
request = AWSRequest(method="GET", url="http://%s/" % cache, params=params)
botocore.auth.SigV4QueryAuth(Credentials(ak, sk, token or None), "elasticache", region, expires=900).add_auth(request)
print(request.prepare().url[len("http://"):])
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            creds.0,
            creds.1,
            creds.2.unwrap_or(""),
            &req.region,
            &req.cache_name,
            &req.user,
            if req.serverless { "1" } else { "0" },
            &at.to_string(),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Host and path, and the query parameters sorted: the order of parameters in a URL is free,
/// the signature is not.
fn normalized(token: &str) -> (String, Vec<String>) {
    let (base, query) = token.split_once('?').unwrap();
    let mut params: Vec<String> = query.split('&').map(str::to_owned).collect();
    params.sort();
    (base.to_owned(), params)
}

#[test]
fn iam_tokens_match_botocore() {
    require_python("botocore", "botocore");
    let at = 1_796_328_000; // 2026-12-03T20:00:00Z
    for (serverless, session) in [(false, None), (true, Some("FQoGZXIvYXdzEXAMPLETOKEN//+="))] {
        let req = IamTokenRequest {
            user: "bcast-functions".into(),
            cache_name: "my-cache".into(),
            serverless,
            region: "eu-west-1".into(),
        };
        let creds = (
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session,
        );
        let ours = req
            .sign(
                &Credentials::new(creds.0, creds.1, creds.2.map(str::to_owned), None, "test"),
                UNIX_EPOCH + Duration::from_secs(at),
            )
            .unwrap();
        let theirs = botocore_token(&req, creds, at);
        assert_eq!(
            normalized(&ours),
            normalized(&theirs),
            "ours {ours}\ntheirs {theirs}"
        );
        assert!(ours.starts_with("my-cache/?"));
        assert!(ours.contains("X-Amz-Expires=900"));
        assert_eq!(ours.contains("ResourceType=ServerlessCache"), serverless);
        assert!(ours.contains(
            "X-Amz-Credential=AKIDEXAMPLE%2F20261203%2Feu-west-1%2Felasticache%2Faws4_request"
        ));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A local Secrets Manager: moto's server, stopped on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Self {
        require_python("moto.server", "moto[server]");
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn sdk(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.url)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "test",
            )))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https(),
            )
            .build()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn secrets_load_through_the_sdk_once() {
    let moto = Moto::start();
    let sdk = moto.sdk();
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let login = client
        .create_secret()
        .name("bcast/login")
        .secret_string("a-login-token-secret-of-at-least-32-bytes")
        .send()
        .await
        .unwrap();
    let redis = client
        .create_secret()
        .name("bcast/redis")
        .secret_string(r#"{"username":"bcast","password":"redis-pass"}"#)
        .send()
        .await
        .unwrap();

    let mut cfg = config(
        "redis://127.0.0.1:1",
        &[
            ("LOGIN_TOKEN_SECRET_ARN", login.arn().unwrap()),
            ("REDIS_AUTH_SECRET_ARN", redis.arn().unwrap()),
        ],
    );
    load_secrets(&sdk, &mut cfg).await.unwrap();
    assert_eq!(
        cfg.login.secret.as_ref().unwrap().expose(),
        "a-login-token-secret-of-at-least-32-bytes"
    );
    assert_eq!(cfg.redis.password.as_ref().unwrap().expose(), "redis-pass");
    assert_eq!(cfg.redis.username.as_deref(), Some("bcast"));
    assert!(
        !format!("{cfg:?}").contains("redis-pass"),
        "Debug hides secrets"
    );

    // A missing secret is a clear error naming it, not a panic.
    let mut missing = config(
        "redis://127.0.0.1:1",
        &[("LOGIN_TOKEN_SECRET_ARN", "bcast/nope")],
    );
    let err = load_secrets(&sdk, &mut missing).await.unwrap_err();
    assert!(err.to_string().contains("bcast/nope"), "{err}");
}

#[tokio::test]
async fn a_loaded_redis_password_authenticates() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "s3cret-pass"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut cfg = config(&server.url(), &[]);
    let store = Store::open(&cfg).unwrap();
    assert!(
        store.read(&account(), None, None).await.is_err(),
        "no password, no access"
    );
    cfg.redis.password = Some(bcast_shared::config::Secret::new("s3cret-pass"));
    let store = Store::open(&cfg).unwrap();
    store.read(&account(), None, None).await.unwrap();
}

fn account() -> Account {
    Account::parse(&ClientNames::default(), "api", "iam").unwrap()
}

#[tokio::test]
async fn iam_tokens_reach_redis_as_auth() {
    let server = RedisServer::start();
    let mut admin = server.connection().await;
    // A user that takes any password stands in for ElastiCache checking the token; the
    // default user is switched off so only an AUTH as that user gets in.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "bcast-functions", "on", "nopass", "~*", "+@all"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "default", "off"])
        .query_async(&mut admin)
        .await
        .unwrap();

    let cfg = config(&server.url(), &[]);
    let iam = IamAuth::new(
        IamTokenRequest {
            user: "bcast-functions".into(),
            cache_name: "local".into(),
            serverless: true,
            region: "eu-west-1".into(),
        },
        SharedCredentialsProvider::new(Credentials::new("AKID", "SECRET", None, None, "test")),
    );
    let store = Store::open_with(&cfg, Some(iam)).unwrap();
    store
        .publish(vec![NewEvent {
            account: account(),
            id: None,
            data: RawValue::from_string("1".into()).unwrap(),
        }])
        .await
        .unwrap();
    assert_eq!(
        store
            .read(&account(), None, None)
            .await
            .unwrap()
            .events
            .len(),
        1
    );

    let without = Store::open(&cfg).unwrap();
    assert!(without.read(&account(), None, None).await.is_err());
}
