//! Login tokens: JWTs minted by the application's own backend after it authenticated a user.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use bcast_shared::config::{ConfigError, LoginTokenConfig};
use bcast_shared::http::ApiError;
use bcast_shared::{Account, ClientNames};

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// The longest `jti` remembered.
const MAX_JTI_LEN: usize = 256;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    client: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// Mints an HS256 login token the way an application's backend would: for local runs, tests
/// and examples.
pub fn mint(
    secret: &str,
    client: &str,
    account_id: &str,
    exp: u64,
    jti: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        sub: account_id.to_owned(),
        client: client.to_owned(),
        exp,
        jti: jti.map(str::to_owned),
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes())?,
    )
}

/// What a valid login token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginClaims {
    pub account: Account,
    /// The token id with its `exp`, when the token is single-use.
    pub jti: Option<(String, u64)>,
}

/// Verifies login tokens with the configured keys.
pub struct TokenVerifier {
    keys: Vec<(DecodingKey, Validation)>,
    max_age_secs: u64,
    clients: ClientNames,
}

fn validation(algorithms: &[Algorithm]) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms.to_vec();
    v.set_required_spec_claims(&["exp", "sub"]);
    v.validate_exp = true;
    v.validate_nbf = true;
    v.validate_aud = false;
    v.leeway = LEEWAY_SECS;
    v
}

impl TokenVerifier {
    /// Keys from the configuration: HS256 with the shared secret, RS256 or ES256 with the public
    /// key. At least one is required.
    pub fn new(login: &LoginTokenConfig, clients: ClientNames) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = &login.secret {
            if secret.expose().len() < 32 {
                return Err(ConfigError {
                    variable: "LOGIN_TOKEN_SECRET",
                    reason: "must be at least 32 bytes".into(),
                });
            }
            let key =
                DecodingKey::from_secret(secret.expose().as_bytes()).map_err(|e| ConfigError {
                    variable: "LOGIN_TOKEN_SECRET",
                    reason: e.to_string(),
                })?;
            keys.push((key, validation(&[Algorithm::HS256])));
        }
        if let Some(pem) = &login.public_key_pem {
            let pem = pem.replace("\\n", "\n");
            let key = if let Ok(k) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                (k, validation(&[Algorithm::RS256]))
            } else if let Ok(k) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                (k, validation(&[Algorithm::ES256]))
            } else {
                return Err(ConfigError {
                    variable: "LOGIN_TOKEN_PUBLIC_KEY",
                    reason: "not an RSA or EC (P-256) public key in PEM".into(),
                });
            };
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(ConfigError {
                variable: "LOGIN_TOKEN_SECRET",
                reason: "set LOGIN_TOKEN_SECRET, LOGIN_TOKEN_SECRET_ARN or LOGIN_TOKEN_PUBLIC_KEY"
                    .into(),
            });
        }
        Ok(Self {
            keys,
            max_age_secs: login.max_age_secs,
            clients,
        })
    }

    /// Checks the signature, `exp` (required, at most the configured lifetime ahead) and the
    /// claims. `now` is Unix seconds.
    pub fn verify(&self, token: &str, now: u64) -> Result<LoginClaims, ApiError> {
        let bad = |why: &str| ApiError::Unauthorized(format!("invalid login token: {why}"));
        if token.len() > 8192 {
            return Err(bad("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        let (key, validation) = self
            .keys
            .iter()
            .find(|(_, v)| v.algorithms.contains(&header.alg))
            .ok_or_else(|| bad("unsupported algorithm"))?;
        let claims = decode::<Claims>(token, key, validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => bad("expired"),
                    ErrorKind::ImmatureSignature => bad("not valid yet"),
                    ErrorKind::MissingRequiredClaim(c) => bad(&format!("missing claim {c}")),
                    ErrorKind::InvalidSignature => bad("bad signature"),
                    _ => bad("malformed"),
                }
            })?
            .claims;
        if claims.exp > now + self.max_age_secs + LEEWAY_SECS {
            return Err(bad(&format!(
                "exp is more than {} s ahead",
                self.max_age_secs
            )));
        }
        let account = Account::parse(&self.clients, &claims.client, &claims.sub)
            .map_err(|e| ApiError::invalid(format!("login token: {e}")))?;
        let jti = match claims.jti {
            Some(j) if j.is_empty() || j.len() > MAX_JTI_LEN => {
                return Err(bad("jti too long or empty"))
            }
            Some(j) => Some((j, claims.exp)),
            None => None,
        };
        Ok(LoginClaims { account, jti })
    }
}
