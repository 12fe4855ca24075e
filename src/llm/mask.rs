//! Reversible masking of the final prompt text: every sensitive value is replaced by a stable
//! placeholder (`HOST_1`, `IP_2`, `USER_1`, ...), the same value by the same placeholder
//! within one prompt, and the model's answer is unmasked before an operator sees it.
//!
//! Masked: secrets (key=value secrets, private keys, bearer / API tokens, JWTs, cloud keys,
//! passwords in URLs), e-mail addresses, Kerberos principals, user names (in the contexts
//! Hadoop, sshd and PAM print them), HDFS URIs and `/user`/`/home` paths, YARN / MapReduce /
//! HDFS ids (application, container, attempt, job, block, block pool), IPv4 and IPv6
//! addresses, host names (`host:port`, `host/ip`, FQDNs, the names the caller knows), phone
//! numbers; plus configured extra patterns. Java class and package names are not hosts.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

/// One masking rule: the placeholder prefix and a regex whose group `v` (or whole match)
/// is the sensitive value.
struct Pattern {
    kind: std::borrow::Cow<'static, str>,
    re: Regex,
}

fn p(kind: &'static str, re: &str) -> Pattern {
    Pattern {
        kind: kind.into(),
        re: Regex::new(re).unwrap_or_else(|e| panic!("masking pattern {kind}: {e}")),
    }
}

/// In order: what contains other sensitive parts goes first (a URL password before its
/// host, a principal before its host, an HDFS URI before its host).
static BUILTIN: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    vec![
        p(
            "SECRET",
            r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
        ),
        p("SECRET", r"://[^/\s:@]+:(?P<v>[^@\s/]+)@"),
        p(
            "SECRET",
            r#"(?i)\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)s?[\w.-]*["']?\s*[=:]\s*["']?(?P<v>[^\s"',;&]{3,})"#,
        ),
        p("SECRET", r"(?i)\bBearer\s+(?P<v>[A-Za-z0-9._~+/=-]{8,})"),
        p(
            "SECRET",
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
        ),
        p("SECRET", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
        p("SECRET", r"\bsk-[A-Za-z0-9_-]{16,}\b"),
        p("SECRET", r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),
        p(
            "EMAIL",
            r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        ),
        p(
            "PRINCIPAL",
            r"\b[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)?@[A-Z0-9][A-Z0-9.-]*[A-Z0-9]\b",
        ),
        p(
            "PATH",
            r"\b(?:hdfs|viewfs|webhdfs|s3a|abfss?|gs)://[^\s'\x22<>,;)]+",
        ),
        p(
            "PATH",
            r"(?:^|[\s='\x22(\[])(?P<v>/(?:user|home)/[^\s'\x22<>,;)\]]+)",
        ),
        p("APP", r"\bapplication_\d{10,}_\d+\b"),
        p(
            "ATTEMPT",
            r"\b(?:appattempt_\d{10,}_\d+_\d+|attempt_\d{10,}_\d+_[mr]_\d+_\d+)\b",
        ),
        p("CONTAINER", r"\bcontainer_(?:e\d+_)?\d{10,}_\d+_\d+_\d+\b"),
        p("JOB", r"\bjob_\d{10,}_\d+\b"),
        p("BLOCK", r"\bBP-\d+-[\d.]+-\d+\b"),
        p("BLOCK", r"\bblk_-?\d+(?:_\d+)?\b"),
        p(
            "USER",
            r"(?i)\b(?:user|ugi|owner|login|logname|ruser|username|remote user|for user|by user)(?:\s*[=:]\s*|\s+)(?P<v>[A-Za-z_][A-Za-z0-9._$-]{0,31})\b",
        ),
        p(
            "USER",
            r"\b(?:Failed password for(?: invalid user)?|Accepted \w+ for|Invalid user|invalid user|session (?:opened|closed) for user)\s+(?P<v>[A-Za-z_][A-Za-z0-9._$-]{0,31})\b",
        ),
        p(
            "IP",
            r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b",
        ),
        // IPv6: any hex-and-colon token that parses as an address (see `State::replace`).
        p(
            "IP6",
            r"(?i)(?:^|[^0-9a-z:.])(?P<v>[0-9a-f]{0,4}:[0-9a-f:]*:[0-9a-f:.]*[0-9a-f])",
        ),
        // host:port, host/ip (Hadoop's NetUtils style), "Call From host to host".
        p(
            "HOST",
            r"\b(?P<v>[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*)(?::\d{2,5}\b|/IP_\d+\b)",
        ),
        p(
            "HOST",
            r"\b(?:Call From|[Ff]rom host|to host|on host|host[=:])\s*(?P<v>[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*)",
        ),
        // FQDNs ending in a DNS suffix (Java packages do not end in one; see `is_code_name`).
        p(
            "HOST",
            r"\b(?P<v>[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)+\.(?:com|net|org|io|cn|local|lan|internal|corp|intra|example|cloud|edu|gov|de|uk|jp|ru|fr))\b",
        ),
        p(
            "PHONE",
            r"\+\d{1,3}[ -]?\(?\d{1,4}\)?(?:[ -]?\d{2,4}){2,4}\b",
        ),
        p("PHONE", r"\b1[3-9]\d{9}\b"),
    ]
});

/// Names that look like hosts but are code: Java packages and classes.
fn is_code_name(v: &str) -> bool {
    const ROOTS: [&str; 8] = [
        "org.",
        "java.",
        "javax.",
        "sun.",
        "com.sun.",
        "jdk.",
        "io.netty.",
        "com.google.",
    ];
    ROOTS.iter().any(|r| v.starts_with(r))
        || v.split('.')
            .any(|seg| seg.chars().next().is_some_and(char::is_uppercase))
        || matches!(v, "localhost")
}

/// The masking rules: built-ins, the names the caller knows (cluster hosts), extra patterns.
pub struct Masker {
    known_hosts: Vec<String>,
    extra: Vec<Pattern>,
}

/// A masked text and how to undo it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Masked {
    pub text: String,
    /// (placeholder, original), in the order first seen.
    pub map: Vec<(String, String)>,
}

impl Masker {
    /// `known_hosts`: names to mask wherever they appear (the cluster's hosts, the stream's
    /// host); `extra`: `(placeholder prefix, regex)` from the configuration (a group `v`, if
    /// present, is the value).
    pub fn new(known_hosts: &[String], extra: &[(String, String)]) -> Result<Masker, String> {
        let extra = extra
            .iter()
            .map(|(kind, re)| {
                let kind = kind.to_ascii_uppercase();
                Regex::new(re)
                    .map_err(|e| format!("masking pattern {kind}: {e}"))
                    .map(|re| Pattern {
                        kind: kind.into(),
                        re,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut known_hosts: Vec<String> = known_hosts
            .iter()
            .filter(|h| h.len() >= 2 && !h.is_empty())
            .cloned()
            .collect();
        // Longest first, so `worker1.dc1` is not masked as `worker1` + `.dc1`.
        known_hosts.sort_by_key(|h| std::cmp::Reverse(h.len()));
        known_hosts.dedup();
        Ok(Masker { known_hosts, extra })
    }

    /// Is `token` (`HOST_3`, or with a prefix such as `SNAPHOST_3`) a placeholder this masker
    /// could have made?
    pub fn makes_placeholder(&self, token: &str, prefix: &str) -> bool {
        let t = token.strip_prefix(prefix).unwrap_or(token);
        is_placeholder(t)
            && t.split_once('_').is_some_and(|(kind, _)| {
                kind == "HOST"
                    || BUILTIN
                        .iter()
                        .chain(self.extra.iter())
                        .any(|p| p.kind == kind)
            })
    }

    pub fn mask(&self, text: &str) -> Masked {
        let mut state = State::default();
        let mut out = text.to_string();
        for pat in self.extra.iter().chain(BUILTIN.iter()) {
            out = state.replace(&out, pat);
        }
        for h in &self.known_hosts {
            out = state.replace_literal(&out, h, "HOST");
        }
        Masked {
            text: out,
            map: state.map,
        }
    }
}

#[derive(Default)]
struct State {
    map: Vec<(String, String)>,
    by_value: HashMap<String, String>,
    counts: HashMap<String, usize>,
}

impl State {
    fn placeholder(&mut self, kind: &str, value: &str) -> String {
        if let Some(p) = self.by_value.get(value) {
            return p.clone();
        }
        let n = self.counts.entry(kind.to_string()).or_default();
        *n += 1;
        let p = format!("{kind}_{n}");
        self.by_value.insert(value.to_string(), p.clone());
        self.map.push((p.clone(), value.to_string()));
        p
    }

    fn replace(&mut self, text: &str, pat: &Pattern) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in pat.re.captures_iter(text) {
            let Some(m) = caps.name("v").or_else(|| caps.get(0)) else {
                continue;
            };
            let v = m.as_str();
            // Already a placeholder, code, or too short to mean anything.
            if v.is_empty() || is_placeholder(v) || (pat.kind == "HOST" && is_code_name(v)) {
                continue;
            }
            let kind = if pat.kind == "IP6" {
                if v.parse::<std::net::Ipv6Addr>().is_err() {
                    continue;
                }
                "IP"
            } else {
                &pat.kind
            };
            out.push_str(&text[last..m.start()]);
            out.push_str(&self.placeholder(kind, v));
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    fn replace_literal(&mut self, text: &str, value: &str, kind: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(value) {
            let before = rest[..i].chars().next_back();
            let after = rest[i + value.len()..].chars().next();
            let word =
                |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
            out.push_str(&rest[..i]);
            if word(before) || word(after) {
                out.push_str(value);
            } else {
                out.push_str(&self.placeholder(kind, value));
            }
            rest = &rest[i + value.len()..];
        }
        out.push_str(rest);
        out
    }
}

fn is_placeholder(v: &str) -> bool {
    v.split_once('_').is_some_and(|(k, n)| {
        !k.is_empty()
            && k.bytes().all(|c| c.is_ascii_uppercase())
            && !n.is_empty()
            && n.bytes().all(|c| c.is_ascii_digit())
    })
}

impl Masked {
    /// Put the original values back into `answer` (longest placeholder first, so `HOST_12`
    /// is not read as `HOST_1` + `2`).
    pub fn unmask(&self, answer: &str) -> String {
        let mut pairs: Vec<&(String, String)> = self.map.iter().collect();
        pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let mut out = answer.to_string();
        for (p, v) in pairs {
            out = out.replace(p.as_str(), v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder_and_round_trip() {
        let m = Masker::new(&["nn-prod-01".into()], &[]).unwrap();
        let text = "Call From worker3.dc1.example.com/10.1.2.3 to nn-prod-01:8020 failed; \
                    retry nn-prod-01:8020 from 10.1.2.3";
        let masked = m.mask(text);
        assert!(!masked.text.contains("10.1.2.3"), "{}", masked.text);
        assert!(!masked.text.contains("nn-prod-01"), "{}", masked.text);
        assert!(!masked.text.contains("worker3"), "{}", masked.text);
        assert_eq!(masked.text.matches("IP_1").count(), 2, "{}", masked.text);
        assert_eq!(masked.unmask(&masked.text), text);
    }

    #[test]
    fn java_names_and_log_structure_survive() {
        let m = Masker::new(&[], &[]).unwrap();
        let text = "2024-05-12 10:14:12,001 WARN org.apache.hadoop.ipc.Client: \
                    java.net.ConnectException: Connection refused at \
                    org.apache.hadoop.net.NetUtils.connect(NetUtils.java:531) version 3.3.6";
        assert_eq!(m.mask(text).text, text);
    }

    #[test]
    fn extra_patterns_and_bad_ones() {
        let m = Masker::new(&[], &[("TENANT".into(), r"tenant-(?P<v>\d+)".into())]).unwrap();
        let masked = m.mask("quota exceeded for tenant-4711");
        assert_eq!(masked.text, "quota exceeded for tenant-TENANT_1");
        assert!(Masker::new(&[], &[("X".into(), "(".into())]).is_err());
    }
}

#[cfg(test)]
mod loghub {
    use super::*;

    /// Real logs keep their shape: timestamps, levels, loggers, exception classes and
    /// messages stay; only values go.
    #[test]
    fn real_lines_keep_their_structure() {
        let Some(dir) = crate::parse::testdata::shared_dir() else {
            return;
        };
        let m = Masker::new(&[], &[]).unwrap();
        for name in ["Hadoop", "HDFS", "OpenSSH", "Zookeeper", "Spark"] {
            let text =
                std::fs::read_to_string(dir.join(format!("data/loghub/{name}/{name}_2k.log")))
                    .unwrap();
            for line in text.lines().take(400) {
                let masked = m.mask(line);
                assert_eq!(masked.unmask(&masked.text), line, "{name}: round trip");
                for keep in ["INFO", "WARN", "ERROR", "org.apache.", "Exception"] {
                    assert_eq!(
                        line.contains(keep),
                        masked.text.contains(keep),
                        "{name}: {keep} lost in {:?}",
                        masked.text
                    );
                }
            }
        }
    }
}
