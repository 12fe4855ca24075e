//! `[llm]`: the OpenAI-compatible endpoint, budget and prompt settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Prompt language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    En,
    Zh,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
        }
    }
}

/// What happens to an escalation when the hourly budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBudgetExhausted {
    /// Keep the fault pending; it is escalated once the budget allows.
    Queue,
    /// Mark the fault `skipped`; it stays `unknown` and is never sent.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaskPattern {
    pub name: String,
    pub regex: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmSettings {
    /// Base URL of the OpenAI-compatible API (ending in `/v1` or the provider's equivalent);
    /// empty = no LLM: unknown faults stay `unknown` (pending) and everything else works.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (never in this file, never logged).
    pub api_key_env: String,
    /// File holding the API key (its first line), used when the variable is unset or empty.
    /// Local servers (Ollama, vLLM) need no key.
    pub api_key_file: String,
    /// Timeout of one HTTP attempt.
    pub timeout_secs: u64,
    /// Retries after a 429, a 5xx, a timeout or a connection error (exponential backoff from
    /// 500 ms, or the server's `Retry-After`).
    pub max_retries: u32,
    /// A `Retry-After` longer than this is not waited for: the call fails and is tried later.
    pub max_retry_wait_secs: u64,
    pub temperature: f32,
    /// Most tokens of one answer.
    pub max_tokens: u32,
    /// Ask for `response_format = json_object` (OpenAI, DeepSeek, Qwen, vLLM and Ollama
    /// support it; turn off for a server that rejects the field).
    pub json_mode: bool,
    /// Prompt language: "en" or "zh".
    pub language: Language,
    /// Directory of prompt templates (`<language>/system.toml`, ...); empty = the built-in
    /// prompts (the repository's `prompts/`).
    pub prompts_dir: String,
    /// LLM calls running at once.
    pub concurrency: usize,
    /// Hourly budget: requests and tokens (prompt + answer) per rolling hour.
    pub requests_per_hour: u32,
    pub tokens_per_hour: u64,
    /// "queue" (wait for budget) or "skip" (leave the fault unknown).
    pub on_budget_exhausted: OnBudgetExhausted,
    /// How often pending unknown faults are looked for (new ones also wake the escalation).
    pub sweep_interval_secs: u64,
    /// Most log lines of the excerpt sent (the fault's evidence, first records first).
    pub excerpt_lines: usize,
    /// Extra patterns masked before anything is sent: `{ name = "TICKET", regex = "..." }`
    /// gives `TICKET_1`, ... (a group named `v`, if present, is the value masked).
    pub mask_patterns: Vec<MaskPattern>,
    /// Price per 1000 prompt / answer tokens, for the estimated-cost metric (0 = free).
    pub price_per_1k_input: f64,
    pub price_per_1k_output: f64,
}

impl Default for LlmSettings {
    fn default() -> Self {
        LlmSettings {
            base_url: String::new(),
            model: String::new(),
            api_key_env: "FAULTLINE_LLM_API_KEY".into(),
            api_key_file: String::new(),
            timeout_secs: 60,
            max_retries: 3,
            max_retry_wait_secs: 60,
            temperature: 0.1,
            max_tokens: 1024,
            json_mode: true,
            language: Language::En,
            prompts_dir: String::new(),
            concurrency: 2,
            requests_per_hour: 60,
            tokens_per_hour: 200_000,
            on_budget_exhausted: OnBudgetExhausted::Queue,
            sweep_interval_secs: 30,
            excerpt_lines: 40,
            mask_patterns: Vec::new(),
            price_per_1k_input: 0.0,
            price_per_1k_output: 0.0,
        }
    }
}

impl LlmSettings {
    /// An LLM is configured.
    pub fn enabled(&self) -> bool {
        !self.base_url.trim().is_empty()
    }

    /// The extra masking patterns as `(placeholder prefix, regex)`.
    pub fn mask_pairs(&self) -> Vec<(String, String)> {
        self.mask_patterns
            .iter()
            .map(|p| (p.name.clone(), p.regex.clone()))
            .collect()
    }

    pub fn prompts_dir(&self) -> Option<PathBuf> {
        let d = self.prompts_dir.trim();
        (!d.is_empty()).then(|| PathBuf::from(d))
    }

    /// The API key from the environment variable, else the key file; `None` when neither is
    /// set (a local server). A key file that cannot be read is an error.
    pub fn api_key(&self, env: impl Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
        if !self.api_key_env.is_empty()
            && let Some(v) = env(&self.api_key_env)
            && !v.trim().is_empty()
        {
            return Ok(Some(v.trim().to_string()));
        }
        if self.api_key_file.trim().is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(self.api_key_file.trim())
            .map_err(|e| format!("cannot read the key file {}: {e}", self.api_key_file))?;
        let key = text.lines().next().unwrap_or("").trim().to_string();
        if key.is_empty() {
            return Err(format!("the key file {} is empty", self.api_key_file));
        }
        Ok(Some(key))
    }

    /// Checks serde cannot express: `(key, reason)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let e = |k: &str, r: &str| Err((format!("llm.{k}"), r.to_string()));
        if self.enabled() {
            let url = self.base_url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return e("base_url", "must be an http:// or https:// URL");
            }
            let Ok(parsed) = reqwest::Url::parse(url) else {
                return e("base_url", "is not a valid URL");
            };
            if !parsed.username().is_empty()
                || parsed.password().is_some()
                || parsed.query().is_some()
            {
                return e(
                    "base_url",
                    "must carry no credentials or query string (the API paths are appended to it); put the key in api_key_env or api_key_file",
                );
            }
            if self.model.trim().is_empty() {
                return e("model", "must name the model when base_url is set");
            }
        }
        if self.timeout_secs == 0 {
            return e("timeout_secs", "must be at least 1");
        }
        if self.max_retries > 10 {
            return e("max_retries", "must be at most 10");
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return e("temperature", "must be between 0 and 2");
        }
        if self.max_tokens < 64 {
            return e(
                "max_tokens",
                "must be at least 64 (the answer is a JSON object)",
            );
        }
        if self.requests_per_hour == 0 {
            return e("requests_per_hour", "must be at least 1");
        }
        if self.tokens_per_hour < u64::from(self.max_tokens) {
            return e(
                "tokens_per_hour",
                "must be at least max_tokens (else no call could ever be made)",
            );
        }
        if self.concurrency == 0 || self.concurrency > 64 {
            return e("concurrency", "must be between 1 and 64");
        }
        if self.sweep_interval_secs == 0 {
            return e("sweep_interval_secs", "must be at least 1");
        }
        if self.excerpt_lines == 0 || self.excerpt_lines > 500 {
            return e("excerpt_lines", "must be between 1 and 500");
        }
        if self.price_per_1k_input < 0.0 || self.price_per_1k_output < 0.0 {
            return e("price_per_1k_input", "prices must not be negative");
        }
        for p in &self.mask_patterns {
            let name_ok = !p.name.is_empty()
                && p.name.len() <= 24
                && p.name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_');
            if !name_ok {
                return e(
                    "mask_patterns",
                    "a name must be 1-24 letters or '_' (it becomes NAME_1, ...)",
                );
            }
        }
        if let Err(reason) = super::mask::Masker::new(&[], &self.mask_pairs()) {
            return Err(("llm.mask_patterns".into(), reason.to_string()));
        }
        Ok(())
    }
}

/// A URL as shown in logs and the API: no password, no query string (keys hide there).
pub fn display_url(url: &str) -> String {
    let redacted = crate::config::redact_url(url.trim());
    match redacted.split_once('?') {
        Some((base, _)) => format!("{base}?..."),
        None => redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_comes_from_env_then_file() {
        let s = LlmSettings::default();
        let key = s
            .api_key(|n| (n == "FAULTLINE_LLM_API_KEY").then(|| " sk-1 ".to_string()))
            .unwrap();
        assert_eq!(key.as_deref(), Some("sk-1"));
        assert_eq!(s.api_key(|_| None).unwrap(), None);
        let dir = std::env::temp_dir().join(format!("fl-key-{}", std::process::id()));
        std::fs::write(&dir, "sk-file\nrest\n").unwrap();
        let s = LlmSettings {
            api_key_file: dir.display().to_string(),
            ..LlmSettings::default()
        };
        assert_eq!(s.api_key(|_| None).unwrap().as_deref(), Some("sk-file"));
        std::fs::remove_file(&dir).unwrap();
        assert!(s.api_key(|_| None).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn validation_names_the_key() {
        let s = LlmSettings {
            base_url: "localhost:11434".into(),
            model: "qwen2.5".into(),
            ..LlmSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "llm.base_url");
        for bad in ["https://k@api.example/v1", "https://api.example/v1?key=x"] {
            let s = LlmSettings {
                base_url: bad.into(),
                model: "m".into(),
                ..LlmSettings::default()
            };
            assert_eq!(s.validate().unwrap_err().0, "llm.base_url", "{bad}");
        }
        let s = LlmSettings {
            base_url: "http://localhost:11434/v1".into(),
            ..LlmSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "llm.model");
        let s = LlmSettings {
            mask_patterns: vec![MaskPattern {
                name: "TICKET".into(),
                regex: "(".into(),
            }],
            ..LlmSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "llm.mask_patterns");
        assert!(LlmSettings::default().validate().is_ok());
        let s = LlmSettings {
            tokens_per_hour: 100,
            ..LlmSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "llm.tokens_per_hour");
        assert_eq!(
            display_url("https://u:k@llm.example/v1?api-key=secret"),
            "https://u:***@llm.example/v1?..."
        );
    }
}
