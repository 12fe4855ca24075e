//! `[auth]` and `[rate_limit]` settings.

use serde::{Deserialize, Serialize};

use super::Role;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Accept `POST /api/log/auto-upload` without a token. Only for a trusted network: anyone
    /// who reaches the port can then write log lines.
    pub ingest_open: bool,
    /// Serve `GET /metrics` without a token (what a default Prometheus scrape expects); with
    /// `false` it needs a `read` token (`authorization` in the scrape config).
    pub metrics_open: bool,
    /// Static tokens: `{ name, role, sha256 }`, the SHA-256 of the token in hex
    /// (`faultline token hash` prints it). The token itself is never written anywhere.
    pub tokens: Vec<StaticToken>,
    pub jwt: JwtSettings,
    /// The bootstrap admin token, from `FAULTLINE_ADMIN_TOKEN` only (never from the file,
    /// never serialized or printed).
    #[serde(skip)]
    pub admin_token: Option<Secret>,
}

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            ingest_open: false,
            metrics_open: true,
            tokens: Vec::new(),
            jwt: JwtSettings::default(),
            admin_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    pub name: String,
    pub role: Role,
    pub sha256: String,
}

/// JSON Web Tokens from an identity provider, checked locally (signature, `exp`, `nbf`, and
/// `iss` / `aud` when set); the role comes from `role_claim`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// `""` (JWTs refused), `HS256` or `RS256`.
    pub algorithm: String,
    /// HS256: the environment variable holding the shared secret.
    pub secret_env: String,
    /// RS256: the PEM file of the identity provider's public key.
    pub public_key_file: String,
    /// Required `iss` (empty = not checked).
    pub issuer: String,
    /// Required `aud`: Faultline's client id at the identity provider (required with JWTs).
    pub audience: String,
    /// The claim naming the role: a string (`"operator"`) or an array of strings (the highest
    /// Faultline role among them wins; unknown names are ignored).
    pub role_claim: String,
    /// Clock skew allowed on `exp` / `nbf`.
    pub leeway_secs: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            algorithm: String::new(),
            secret_env: "FAULTLINE_JWT_SECRET".into(),
            public_key_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            role_claim: "role".into(),
            leeway_secs: 60,
        }
    }
}

/// Request limits on the query and diagnosis endpoints (never on ingest, which is governed
/// by backpressure). Over a limit the answer is 429 with `Retry-After`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Requests per minute for one token (bursts up to the same number).
    pub per_token_per_minute: u32,
    /// Requests per minute from one client address, token or not (also slows token guessing).
    pub per_ip_per_minute: u32,
    /// `POST /api/llm/diagnose` per minute for one token (it may call the LLM).
    pub diagnose_per_token_per_minute: u32,
    /// Take the client address from this header (e.g. `X-Forwarded-For`): its last entry,
    /// the one the nearest proxy appended — only behind a reverse proxy that appends it;
    /// empty (or a value that does not parse) = the TCP peer address.
    pub client_ip_header: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            enabled: true,
            per_token_per_minute: 600,
            per_ip_per_minute: 1200,
            diagnose_per_token_per_minute: 30,
            client_ip_header: String::new(),
        }
    }
}

impl AuthSettings {
    /// Problems with the auth settings, each as `(key, reason)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(t) = &self.admin_token
            && t.0.trim().len() < 16
        {
            out.push((
                "auth.admin_token".into(),
                "FAULTLINE_ADMIN_TOKEN must be at least 16 characters long".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let key = format!("auth.tokens[{i}]");
            if !super::valid_token_name(&t.name) || t.name == super::BOOTSTRAP_NAME {
                out.push((
                    format!("{key}.name"),
                    "must be 1 to 64 of A-Z a-z 0-9 . _ @ - (and not `bootstrap-admin`)".into(),
                ));
            } else if !names.insert(t.name.as_str()) {
                out.push((format!("{key}.name"), format!("`{}` is used twice", t.name)));
            }
            if super::parse_hex_sha256(&t.sha256).is_none() {
                out.push((
                    format!("{key}.sha256"),
                    "must be the 64 hex digits of the token's SHA-256 (`faultline token hash`)"
                        .into(),
                ));
            }
        }
        let jwt = &self.jwt;
        match jwt.algorithm.as_str() {
            "" => {}
            "HS256" => {
                if jwt.secret_env.trim().is_empty() {
                    out.push(("auth.jwt.secret_env".into(), "HS256 needs a secret".into()));
                }
            }
            "RS256" => {
                if jwt.public_key_file.trim().is_empty() {
                    out.push((
                        "auth.jwt.public_key_file".into(),
                        "RS256 needs the identity provider's public key (PEM)".into(),
                    ));
                }
            }
            other => out.push((
                "auth.jwt.algorithm".into(),
                format!("`{other}` is not supported (use HS256 or RS256, or leave empty)"),
            )),
        }
        if !jwt.algorithm.is_empty() && jwt.audience.trim().is_empty() {
            out.push((
                "auth.jwt.audience".into(),
                "is required with JWTs: without it, a token the identity provider issued for \
                 another application would be accepted"
                    .into(),
            ));
        }
        if !jwt.algorithm.is_empty() && jwt.role_claim.trim().is_empty() {
            out.push(("auth.jwt.role_claim".into(), "must name a claim".into()));
        }
        out
    }
}

impl RateLimitSettings {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("per_token_per_minute", self.per_token_per_minute),
            ("per_ip_per_minute", self.per_ip_per_minute),
            (
                "diagnose_per_token_per_minute",
                self.diagnose_per_token_per_minute,
            ),
        ] {
            if self.enabled && v == 0 {
                out.push((
                    format!("rate_limit.{key}"),
                    "must be at least 1 (set `enabled = false` to turn limits off)".into(),
                ));
            }
        }
        out
    }
}
