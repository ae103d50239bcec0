//! The AWS side of a cold start: secrets from Secrets Manager, and ElastiCache IAM
//! authentication tokens for the Redis connection.
//!
//! Everything here runs once per cold start (secrets) or once per Redis (re)connect (tokens);
//! nothing on the request path.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use futures::Stream;
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use redis::RedisResult;
use thiserror::Error;

use crate::config::{Config, Secret};
use crate::store::StoreError;
use crate::Store;

/// Something AWS would not give us at cold start.
#[derive(Debug, Error)]
pub enum AwsError {
    #[error("secret {arn}: {reason}")]
    Secret { arn: String, reason: String },
    #[error("ElastiCache IAM token: {0}")]
    Token(String),
    #[error("no AWS region configured (AWS_REGION)")]
    NoRegion,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The SDK configuration from the environment (region, credentials, endpoint overrides such
/// as `AWS_ENDPOINT_URL`), with a rustls/ring HTTP client.
pub async fn sdk_config() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// Reads one secret's string. A JSON secret with a `password` field (the shape of
/// ElastiCache user secrets) gives that field and its `username`.
async fn secret_value(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<(Option<String>, Secret), AwsError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| AwsError::Secret {
            arn: arn.to_owned(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    let text = output.secret_string().ok_or_else(|| AwsError::Secret {
        arn: arn.to_owned(),
        reason: "not a string secret".into(),
    })?;
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(text) {
        if let Some(password) = fields.get("password").and_then(|p| p.as_str()) {
            let username = fields
                .get("username")
                .and_then(|u| u.as_str())
                .map(str::to_owned);
            return Ok((username, Secret::new(password)));
        }
    }
    Ok((None, Secret::new(text)))
}

/// Loads the secrets the configuration names by ARN (`LOGIN_TOKEN_SECRET_ARN`,
/// `REDIS_AUTH_SECRET_ARN`) into it. A secret given directly in the environment wins.
pub async fn load_secrets(sdk: &SdkConfig, config: &mut Config) -> Result<(), AwsError> {
    let wanted = (config.login.secret.is_none() && config.login.secret_arn.is_some())
        || (config.redis.password.is_none() && config.redis.auth_secret_arn.is_some());
    if !wanted {
        return Ok(());
    }
    let client = aws_sdk_secretsmanager::Client::new(sdk);
    if config.login.secret.is_none() {
        if let Some(arn) = config.login.secret_arn.clone() {
            config.login.secret = Some(secret_value(&client, &arn).await?.1);
        }
    }
    if config.redis.password.is_none() {
        if let Some(arn) = config.redis.auth_secret_arn.clone() {
            let (username, password) = secret_value(&client, &arn).await?;
            config.redis.password = Some(password);
            if config.redis.username.is_none() {
                config.redis.username = username;
            }
        }
    }
    Ok(())
}

/// How long a token is valid; ElastiCache allows at most 15 minutes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// How often a live connection re-authenticates with a fresh token: well within a token's
/// lifetime, and it keeps the connection past ElastiCache's 12-hour limit for IAM connections.
const REAUTH_EVERY: Duration = Duration::from_secs(600);

/// What an ElastiCache IAM token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamTokenRequest {
    /// The ElastiCache user id the functions connect as.
    pub user: String,
    /// The replication group or serverless cache name.
    pub cache_name: String,
    /// Serverless caches need `ResourceType=ServerlessCache`.
    pub serverless: bool,
    pub region: String,
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl IamTokenRequest {
    /// The token: a SigV4-presigned `connect` request (service `elasticache`, 15 minutes),
    /// without its `http://` scheme, used as the AUTH password.
    pub fn sign(&self, credentials: &Credentials, at: SystemTime) -> Result<String, AwsError> {
        let bad = |e: &dyn std::fmt::Display| AwsError::Token(e.to_string());
        let mut url = format!(
            "http://{}/?Action=connect&User={}",
            self.cache_name,
            query_escape(&self.user)
        );
        if self.serverless {
            url.push_str("&ResourceType=ServerlessCache");
        }
        let identity = credentials.clone().into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(TOKEN_LIFETIME);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("elasticache")
            .time(at)
            .settings(settings)
            .build()
            .map_err(|e| bad(&e))?
            .into();
        let signable =
            SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|e| bad(&e))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| bad(&e))?.into_parts();
        let mut request = http::Request::builder()
            .method("GET")
            .uri(&url)
            .body(())
            .map_err(|e| bad(&e))?;
        instructions.apply_to_request_http1x(&mut request);
        let signed = request.uri().to_string();
        Ok(signed.strip_prefix("http://").unwrap_or(&signed).to_owned())
    }
}

/// Redis credentials for ElastiCache IAM authentication: a fresh token for every
/// (re)connect, and a new one every few minutes for live connections to re-AUTH with.
#[derive(Clone)]
pub struct IamAuth {
    request: Arc<IamTokenRequest>,
    credentials: SharedCredentialsProvider,
}

impl IamAuth {
    pub fn new(request: IamTokenRequest, credentials: SharedCredentialsProvider) -> Self {
        Self {
            request: Arc::new(request),
            credentials,
        }
    }

    async fn fresh(&self) -> RedisResult<BasicAuth> {
        let fail = |why: String| {
            redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "IAM token", why))
        };
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let token = self
            .request
            .sign(&credentials, SystemTime::now())
            .map_err(|e| fail(e.to_string()))?;
        Ok(BasicAuth::new(self.request.user.clone(), token))
    }
}

impl StreamingCredentialsProvider for IamAuth {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let auth = self.clone();
        Box::pin(futures::stream::unfold(true, move |first| {
            let auth = auth.clone();
            async move {
                if !first {
                    tokio::time::sleep(REAUTH_EVERY).await;
                }
                Some((auth.fresh().await, false))
            }
        }))
    }
}

/// The store a Lambda uses: secrets loaded, IAM authentication wired when configured. Only
/// touches AWS when the configuration asks for it.
pub async fn open_store(config: &mut Config) -> Result<Store, AwsError> {
    let needs_aws = config.login.secret_arn.is_some()
        || config.redis.auth_secret_arn.is_some()
        || config.redis.iam_user.is_some();
    if !needs_aws {
        return Ok(Store::open(config)?);
    }
    let sdk = sdk_config().await;
    load_secrets(&sdk, config).await?;
    let iam = match (&config.redis.iam_user, &config.redis.iam_cache_name) {
        (Some(user), Some(cache_name)) => {
            let region = sdk.region().ok_or(AwsError::NoRegion)?.to_string();
            let credentials = sdk
                .credentials_provider()
                .ok_or_else(|| AwsError::Token("no AWS credentials".into()))?;
            Some(IamAuth::new(
                IamTokenRequest {
                    user: user.clone(),
                    cache_name: cache_name.clone(),
                    serverless: config.redis.iam_serverless,
                    region,
                },
                credentials,
            ))
        }
        _ => None,
    };
    Ok(Store::open_with(config, iam)?)
}
