//! What each endpoint requires, read from the OpenAPI document (its `security` entries are the
//! one place roles are named), and the request limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{RateLimitSettings, Role};

/// What a request must present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health probes, the API document, Swagger UI).
    Public,
    /// A token whose role grants this one.
    Role(Role),
}

/// `(METHOD, route pattern) → Access`, from the OpenAPI document.
#[derive(Debug, Clone, Default)]
pub struct AccessTable {
    /// pattern → method → access (looked up by `&str`, no allocation per request).
    entries: HashMap<String, HashMap<String, Access>>,
}

/// The security scheme name the document uses.
pub const SCHEME: &str = "bearer";

impl AccessTable {
    /// Read every operation's `security`: `[]` or `[{}]` is public, `[{"bearer": ["read"]}]`
    /// requires `read`. An operation without `security` — or naming no known role — is
    /// admin-only, so a forgotten annotation fails closed.
    pub fn from_openapi(doc: &serde_json::Value) -> AccessTable {
        let mut entries: HashMap<String, HashMap<String, Access>> = HashMap::new();
        let paths = doc.get("paths").and_then(|p| p.as_object());
        for (path, item) in paths.into_iter().flatten() {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let method = method.to_ascii_uppercase();
                if !matches!(
                    method.as_str(),
                    "GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS"
                ) {
                    continue;
                }
                entries
                    .entry(path.clone())
                    .or_default()
                    .insert(method, access_of(op.get("security")));
            }
        }
        AccessTable { entries }
    }

    /// Add (or override) one entry: routes outside the document (Swagger UI's files).
    pub fn insert(&mut self, method: &str, pattern: &str, access: Access) {
        self.entries
            .entry(pattern.to_string())
            .or_default()
            .insert(method.to_ascii_uppercase(), access);
    }

    /// What `method pattern` needs. An unknown path (404) needs `read`: without a token
    /// nothing about the routes is revealed. A known pattern with a method the document does
    /// not list needs `admin` (fail closed: such a request can only be a 405 — every routed
    /// method is documented, a unit test checks it — unless a route was added undocumented).
    pub fn lookup(&self, method: &str, pattern: Option<&str>) -> Access {
        let Some(pattern) = pattern else {
            return Access::Role(Role::Read);
        };
        let method = if method == "HEAD" { "GET" } else { method };
        self.entries
            .get(pattern)
            .and_then(|m| m.get(method))
            .copied()
            .unwrap_or(Access::Role(Role::Admin))
    }

    pub fn len(&self) -> usize {
        self.entries.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn access_of(security: Option<&serde_json::Value>) -> Access {
    let Some(reqs) = security.and_then(|s| s.as_array()) else {
        return Access::Role(Role::Admin);
    };
    if reqs.is_empty()
        || reqs
            .iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    {
        return Access::Public;
    }
    // The least privileged role any alternative accepts (`ingest` counts as narrowest).
    reqs.iter()
        .filter_map(|r| r.get(SCHEME)?.as_array().cloned())
        .flatten()
        .filter_map(|v| v.as_str().and_then(Role::parse))
        .min()
        .map(Access::Role)
        .unwrap_or(Access::Role(Role::Admin))
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Ip,
    Token,
    Diagnose,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Ip => "ip",
            Limit::Token => "token",
            Limit::Diagnose => "diagnose",
        }
    }
}

/// Keyed GCRA limiters: per client address, per token, and per token on diagnosis.
pub struct Limiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_token: DefaultKeyedRateLimiter<String>,
    diagnose: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl Limiter {
    /// `None` when limits are off.
    pub fn new(s: &RateLimitSettings) -> Option<Limiter> {
        s.enabled.then(|| Limiter {
            per_ip: RateLimiter::dashmap(per_minute(s.per_ip_per_minute)),
            per_token: RateLimiter::dashmap(per_minute(s.per_token_per_minute)),
            diagnose: RateLimiter::dashmap(per_minute(s.diagnose_per_token_per_minute)),
            clock: DefaultClock::default(),
        })
    }

    /// `Err(wait)` when the address is over its limit.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), (Limit, Duration)> {
        self.per_ip
            .check_key(&ip)
            .map_err(|n| (Limit::Ip, n.wait_time_from(self.clock.now())))
    }

    /// `Err(wait)` when the token (and, for diagnosis, its diagnosis quota) is spent.
    pub fn check_token(&self, key: &str, diagnose: bool) -> Result<(), (Limit, Duration)> {
        let key = key.to_string();
        self.per_token
            .check_key(&key)
            .map_err(|n| (Limit::Token, n.wait_time_from(self.clock.now())))?;
        if diagnose {
            self.diagnose
                .check_key(&key)
                .map_err(|n| (Limit::Diagnose, n.wait_time_from(self.clock.now())))?;
        }
        Ok(())
    }

    /// Forget keys whose limits have fully recovered (bounded memory under many addresses).
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_token.retain_recent();
        self.diagnose.retain_recent();
    }
}

/// The client address for the per-address limit: with `client_ip_header` configured, the
/// **last** entry of that header — the address the nearest proxy (which appends to
/// `X-Forwarded-For`) saw; earlier entries are the client's to write — with any port
/// removed; without the header, or when it does not parse, the TCP peer address.
pub fn client_ip(forwarded: Option<&str>, peer: Option<IpAddr>) -> Option<IpAddr> {
    let last = forwarded
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .and_then(|e| {
            e.parse::<IpAddr>()
                .ok()
                .or_else(|| e.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        });
    last.or(peer)
}

/// Whole seconds to put in `Retry-After` (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_from_document() {
        let doc = json!({"paths": {
            "/healthz": {"get": {"security": [{}]}},
            "/api/faults": {"get": {"security": [{"bearer": ["read"]}]}},
            "/api/faults/{id}/ack": {"post": {"security": [{"bearer": ["operator"]}]}},
            "/api/log/auto-upload": {"post": {"security": [{"bearer": ["ingest"]}]}},
            "/api/forgotten": {"get": {}},
            "/api/typo": {"get": {"security": [{"bearer": ["raed"]}]}},
            "/api/empty": {"get": {"security": []}, "parameters": []}
        }});
        let t = AccessTable::from_openapi(&doc);
        assert_eq!(t.len(), 7);
        assert_eq!(t.lookup("GET", Some("/healthz")), Access::Public);
        assert_eq!(t.lookup("HEAD", Some("/healthz")), Access::Public);
        assert_eq!(t.lookup("GET", Some("/api/empty")), Access::Public);
        assert_eq!(
            t.lookup("GET", Some("/api/faults")),
            Access::Role(Role::Read)
        );
        assert_eq!(
            t.lookup("POST", Some("/api/faults/{id}/ack")),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            t.lookup("POST", Some("/api/log/auto-upload")),
            Access::Role(Role::Ingest)
        );
        // Fail closed.
        assert_eq!(
            t.lookup("GET", Some("/api/forgotten")),
            Access::Role(Role::Admin)
        );
        assert_eq!(
            t.lookup("GET", Some("/api/typo")),
            Access::Role(Role::Admin)
        );
        // Unknown path: read (401 without a token, then 404); unknown method: admin.
        assert_eq!(t.lookup("GET", None), Access::Role(Role::Read));
        assert_eq!(
            t.lookup("DELETE", Some("/api/faults")),
            Access::Role(Role::Admin)
        );
    }

    #[test]
    fn client_address_is_the_last_forwarded_entry_or_the_peer() {
        let peer: IpAddr = [10, 0, 0, 9].into();
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(client_ip(None, Some(peer)), Some(peer));
        assert_eq!(client_ip(Some("1.2.3.4"), Some(peer)), ip("1.2.3.4"));
        // A client-written first entry is ignored: the proxy appended the real one.
        assert_eq!(
            client_ip(Some("6.6.6.6, 1.2.3.4"), Some(peer)),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(Some("6.6.6.6, 1.2.3.4:5555"), Some(peer)),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_ip(Some("[2001:db8::1]:443"), Some(peer)),
            ip("2001:db8::1")
        );
        // Unparseable: fall back to the peer, never to no limit.
        assert_eq!(client_ip(Some("unknown"), Some(peer)), Some(peer));
        assert_eq!(client_ip(Some(""), Some(peer)), Some(peer));
    }

    #[test]
    fn limiter_refuses_over_quota_with_a_wait() {
        let s = RateLimitSettings {
            per_token_per_minute: 3,
            diagnose_per_token_per_minute: 1,
            per_ip_per_minute: 2,
            ..RateLimitSettings::default()
        };
        let l = Limiter::new(&s).expect("enabled");
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(l.check_ip(ip).is_ok() && l.check_ip(ip).is_ok());
        let (limit, wait) = l.check_ip(ip).expect_err("third is refused");
        assert_eq!(limit, Limit::Ip);
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(
            l.check_ip([10, 0, 0, 2].into()).is_ok(),
            "other addresses unaffected"
        );

        assert!(l.check_token("a", true).is_ok());
        assert_eq!(
            l.check_token("a", true).map_err(|e| e.0),
            Err(Limit::Diagnose)
        );
        assert!(l.check_token("a", false).is_ok(), "the third of three");
        assert_eq!(
            l.check_token("a", false).map_err(|e| e.0),
            Err(Limit::Token)
        );
        assert!(l.check_token("b", false).is_ok());
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(20)), 20);
        assert!(
            Limiter::new(&RateLimitSettings {
                enabled: false,
                ..s
            })
            .is_none()
        );
    }
}
