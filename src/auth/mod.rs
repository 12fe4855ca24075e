//! Who may call what: bearer tokens with roles, checked without actix.
//!
//! - Roles: `ingest` (log uploads only), `read`, `operator` (read + acknowledge, resolve,
//!   silence, approve), `admin` (everything, uploads included).
//! - Tokens are known only by their SHA-256: static ones from `[auth] tokens`, run-time ones
//!   from the `api_tokens` table, and the bootstrap `FAULTLINE_ADMIN_TOKEN`. A presented token
//!   is hashed and compared with every known hash in constant time.
//! - Optional JWTs (HS256 / RS256) from an identity provider carry their role in a claim.
//! - Tokens are never logged; [`Principal`] carries a name, never the token.

pub mod access;
pub mod settings;

use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub use settings::{AuthSettings, JwtSettings, RateLimitSettings, Secret, StaticToken};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Read,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ingest, Role::Read, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a holder of `self` may call an endpoint that requires `required`.
    /// `ingest` grants uploads only; `read` < `operator` < `admin`; `admin` grants all.
    pub fn grants(self, required: Role) -> bool {
        match (self, required) {
            (Role::Admin, _) => true,
            (Role::Ingest, r) => r == Role::Ingest,
            (_, Role::Ingest) => false,
            (have, need) => have >= need,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name, or the JWT's `sub`.
    pub name: String,
    pub role: Role,
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// `[auth] tokens` in the config file.
    Static,
    /// A row of `api_tokens`.
    Stored,
    /// `FAULTLINE_ADMIN_TOKEN`.
    Bootstrap,
    Jwt,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown or revoked token")]
    UnknownToken,
    #[error("invalid JWT: {0}")]
    Jwt(String),
    #[error("the JWT names no Faultline role in its `{0}` claim")]
    NoRole(String),
}

/// The name every token has: 1 to 64 of `A-Z a-z 0-9 . _ @ -` (what the OpenAPI schema of
/// `POST /api/tokens` says too). Plain characters keep audit fields and logs unambiguous; no
/// `:` so that no token can pose as a JWT subject (`jwt:<sub>`).
pub fn valid_token_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// The name of the `FAULTLINE_ADMIN_TOKEN` principal (reserved).
pub const BOOTSTRAP_NAME: &str = "bootstrap-admin";

/// SHA-256 of a token, as stored and configured.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// 64 hex digits (either case) as 32 bytes.
pub fn parse_hex_sha256(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A new random token: `flt_` + 43 URL-safe base64 characters (256 random bits).
pub fn generate_token() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "flt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[derive(Debug, Clone)]
struct KnownToken {
    hash: [u8; 32],
    name: String,
    role: Role,
    kind: PrincipalKind,
}

/// The tokens and JWT keys requests are checked against. Run-time tokens are replaced with
/// [`Authenticator::set_stored`] whenever `api_tokens` changes.
pub struct Authenticator {
    fixed: Vec<KnownToken>,
    stored: RwLock<Stored>,
    jwt: Option<JwtVerifier>,
}

/// Run-time tokens, and the hashes revoked through this engine: a refresh that read the
/// table just before a revocation committed cannot bring a revoked token back.
#[derive(Default)]
struct Stored {
    active: Vec<KnownToken>,
    revoked: std::collections::HashSet<[u8; 32]>,
}

impl Authenticator {
    /// The configured tokens, `FAULTLINE_ADMIN_TOKEN` (`settings.admin_token`) and the JWT key.
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let mut fixed = Vec::new();
        for t in &settings.tokens {
            let hash = parse_hex_sha256(&t.sha256)
                .ok_or_else(|| anyhow::anyhow!("auth.tokens `{}`: bad sha256", t.name))?;
            fixed.push(KnownToken {
                hash,
                name: t.name.clone(),
                role: t.role,
                kind: PrincipalKind::Static,
            });
        }
        if let Some(Secret(token)) = &settings.admin_token {
            if token.trim().len() < 16 {
                anyhow::bail!("FAULTLINE_ADMIN_TOKEN must be at least 16 characters long");
            }
            fixed.push(KnownToken {
                hash: hash_token(token.trim()),
                name: BOOTSTRAP_NAME.into(),
                role: Role::Admin,
                kind: PrincipalKind::Bootstrap,
            });
        }
        let jwt = JwtVerifier::new(&settings.jwt, |name| std::env::var(name).ok())?;
        Ok(Authenticator {
            fixed,
            stored: RwLock::new(Stored::default()),
            jwt,
        })
    }

    /// Whether any way to authenticate exists besides stored tokens.
    pub fn has_configured_credentials(&self) -> bool {
        !self.fixed.is_empty() || self.jwt.is_some()
    }

    /// Replace the run-time tokens with the active rows of `api_tokens`.
    pub fn set_stored(&self, rows: &[crate::storage::TokenRow]) {
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        let revoked = &stored.revoked;
        let active = rows
            .iter()
            .filter(|r| r.revoked_at.is_none())
            .filter_map(|r| {
                Some(KnownToken {
                    hash: parse_hex_sha256(&r.token_hash)?,
                    name: r.name.clone(),
                    role: Role::parse(&r.role)?,
                    kind: PrincipalKind::Stored,
                })
            })
            .filter(|t| !revoked.contains(&t.hash))
            .collect();
        stored.active = active;
    }

    /// Refuse a run-time token from now on (before the table is re-read).
    pub fn revoke_stored(&self, token_hash: &str) {
        if let Some(hash) = parse_hex_sha256(token_hash) {
            let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
            stored.revoked.insert(hash);
            stored.active.retain(|t| t.hash != hash);
        }
    }

    /// Check a bearer credential: a JWT when JWTs are configured and it looks like one,
    /// else an opaque token.
    pub fn verify(&self, credential: &str) -> Result<Principal, AuthError> {
        if let Some(jwt) = &self.jwt
            && credential.starts_with("eyJ")
            && credential.matches('.').count() == 2
        {
            return jwt.verify(credential);
        }
        let hash = hash_token(credential);
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        // Every known hash is compared (no early exit), each in constant time.
        let mut found: Option<&KnownToken> = None;
        for t in self.fixed.iter().chain(stored.active.iter()) {
            if bool::from(t.hash.ct_eq(&hash)) && found.is_none() {
                found = Some(t);
            }
        }
        found
            .map(|t| Principal {
                name: t.name.clone(),
                role: t.role,
                kind: t.kind,
            })
            .ok_or(AuthError::UnknownToken)
    }
}

struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    role_claim: String,
}

impl JwtVerifier {
    fn new(
        s: &JwtSettings,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<JwtVerifier>> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let (alg, key) = match s.algorithm.as_str() {
            "" => return Ok(None),
            "HS256" => {
                let secret = env(&s.secret_env)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        anyhow::anyhow!("auth.jwt: HS256 needs the secret in ${}", s.secret_env)
                    })?;
                if secret.len() < 32 {
                    anyhow::bail!(
                        "auth.jwt: the HS256 secret in ${} must be at least 32 bytes",
                        s.secret_env
                    );
                }
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.as_bytes()),
                )
            }
            "RS256" => {
                let pem = std::fs::read(&s.public_key_file).map_err(|e| {
                    anyhow::anyhow!("auth.jwt.public_key_file {}: {e}", s.public_key_file)
                })?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    anyhow::anyhow!("auth.jwt.public_key_file {}: {e}", s.public_key_file)
                })?;
                (Algorithm::RS256, key)
            }
            other => anyhow::bail!("auth.jwt.algorithm `{other}` is not supported"),
        };
        let mut validation = Validation::new(alg);
        validation.leeway = s.leeway_secs;
        validation.validate_nbf = true;
        if s.issuer.is_empty() {
            validation.iss = None;
        } else {
            validation.set_issuer(&[s.issuer.as_str()]);
        }
        if s.audience.trim().is_empty() {
            anyhow::bail!("auth.jwt.audience is required with JWTs");
        }
        validation.set_audience(&[s.audience.as_str()]);
        // jsonwebtoken checks `aud` / `iss` only when present: require them (and `sub`, the
        // principal's name) so a token without them is refused, not waved through.
        let mut required = vec!["exp", "aud", "sub"];
        if !s.issuer.is_empty() {
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Some(JwtVerifier {
            key,
            validation,
            role_claim: s.role_claim.clone(),
        }))
    }

    fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| AuthError::Jwt(e.to_string()))?;
        let claims = data.claims;
        let names: Vec<&str> = match claims.get(&self.role_claim) {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        let role = names
            .into_iter()
            .filter_map(Role::parse)
            .max()
            .ok_or_else(|| AuthError::NoRole(self.role_claim.clone()))?;
        // The subject as a plain name (audit fields, rate-limit keys, logs): kept when it is
        // one, else a digest of it, so two subjects never share a name.
        let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or("");
        let name = if valid_token_name(sub) && sub.len() <= 60 {
            format!("jwt:{sub}")
        } else {
            format!("jwt:~{}", &to_hex(&hash_token(sub))[..16])
        };
        Ok(Principal {
            name,
            role,
            kind: PrincipalKind::Jwt,
        })
    }
}

#[cfg(test)]
mod tests;
