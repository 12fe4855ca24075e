//! The OpenAI-compatible chat client (`async-openai`), with Faultline's retry policy plugged in
//! as its HTTP service: 429 / 5xx / timeouts / connection errors are retried with exponential
//! backoff or the server's `Retry-After` (seconds), up to `max_retries`; a `Retry-After` longer
//! than `max_retry_wait_secs` is not waited for but remembered, and no call is made before it
//! has passed ([`LlmClient::cooldown_until_ms`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, CreateChatCompletionRequest, ResponseFormat,
};
use prometheus::IntCounter;

use super::settings::LlmSettings;

/// One chat message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    System(String),
    User(String),
    Assistant(String),
}

/// A completed call.
#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub model: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM server is rate limiting (HTTP 429): {0}")]
    RateLimited(String),
    #[error("the LLM call timed out")]
    Timeout,
    #[error("the LLM server is unreachable: {0}")]
    Unreachable(String),
    #[error("the LLM server answered HTTP {status}: {message}")]
    Api { status: u16, message: String },
    #[error("the LLM server's response is not a chat completion: {0}")]
    BadResponse(String),
}

impl LlmError {
    /// The `outcome` label of `llm_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            LlmError::RateLimited(_) => "rate_limited",
            LlmError::Timeout => "timeout",
            LlmError::Unreachable(_) => "unreachable",
            LlmError::Api { .. } | LlmError::BadResponse(_) => "error",
        }
    }
}

#[derive(Clone)]
struct RetryPolicy {
    http: reqwest::Client,
    max_retries: u32,
    max_wait: Duration,
    base: Duration,
    retries: Option<IntCounter>,
    cooldown_until_ms: Arc<AtomicI64>,
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent: backoff applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_wait)
    }

    async fn send(&self, factory: HttpRequestFactory) -> Result<reqwest::Response, OpenAIError> {
        let mut attempt = 0u32;
        loop {
            let request = factory.build().await?;
            let wait = match self.http.execute(request).await {
                Ok(resp) if resp.status().as_u16() == 429 || resp.status().is_server_error() => {
                    let wait = retry_after(resp.headers());
                    if let Some(w) = wait
                        && resp.status().as_u16() == 429
                    {
                        let until = crate::now_ms() + i64::try_from(w.as_millis()).unwrap_or(0);
                        self.cooldown_until_ms.fetch_max(until, Ordering::AcqRel);
                    }
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    if attempt >= self.max_retries || wait > self.max_wait {
                        return Ok(resp);
                    }
                    wait
                }
                Ok(resp) => return Ok(resp),
                Err(e) if (e.is_timeout() || e.is_connect()) && attempt < self.max_retries => {
                    self.backoff(attempt)
                }
                Err(e) => return Err(OpenAIError::Reqwest(e)),
            };
            attempt += 1;
            if let Some(c) = &self.retries {
                c.inc();
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// The client of one configured endpoint.
pub struct LlmClient {
    client: Client<OpenAIConfig>,
    model: String,
    temperature: f32,
    max_tokens: u32,
    json_mode: bool,
    cooldown_until_ms: Arc<AtomicI64>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("LlmClient")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    /// `api_key`: `None` for servers without authentication (Ollama, vLLM).
    pub fn new(
        s: &LlmSettings,
        api_key: Option<String>,
        retries: Option<IntCounter>,
    ) -> Result<LlmClient, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(s.timeout_secs))
            .connect_timeout(Duration::from_secs(s.timeout_secs.min(10)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let cooldown_until_ms = Arc::new(AtomicI64::new(0));
        let policy = RetryPolicy {
            http: http.clone(),
            max_retries: s.max_retries,
            max_wait: Duration::from_secs(s.max_retry_wait_secs),
            base: Duration::from_millis(500),
            retries,
            cooldown_until_ms: cooldown_until_ms.clone(),
        };
        let service = tower::service_fn(move |factory: HttpRequestFactory| {
            let policy = policy.clone();
            async move { policy.send(factory).await }
        });
        // Always set the key (empty when none): the library would otherwise read
        // OPENAI_API_KEY and send it to whatever endpoint is configured.
        let config = OpenAIConfig::new()
            .with_api_base(s.base_url.trim().trim_end_matches('/'))
            .with_api_key(api_key.unwrap_or_default());
        let client = Client::with_config(config)
            .with_http_client(http)
            .with_http_service(service);
        Ok(LlmClient {
            client,
            model: s.model.trim().to_string(),
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            json_mode: s.json_mode,
            cooldown_until_ms,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The most tokens one answer may use (for budget estimates).
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// A 429 asked to wait until then (epoch ms); 0 when not.
    pub fn cooldown_until_ms(&self) -> i64 {
        self.cooldown_until_ms.load(Ordering::Acquire)
    }

    pub async fn complete(&self, messages: &[Message]) -> Result<Completion, LlmError> {
        let messages = messages
            .iter()
            .map(|m| match m {
                Message::System(t) => {
                    ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                        content: ChatCompletionRequestSystemMessageContent::Text(t.clone()),
                        name: None,
                    })
                }
                Message::User(t) => {
                    ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                        content: ChatCompletionRequestUserMessageContent::Text(t.clone()),
                        name: None,
                    })
                }
                Message::Assistant(t) => {
                    ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                        content: Some(ChatCompletionRequestAssistantMessageContent::Text(
                            t.clone(),
                        )),
                        ..Default::default()
                    })
                }
            })
            .collect();
        #[allow(deprecated)] // max_tokens: the field every compatible server understands
        let request = CreateChatCompletionRequest {
            model: self.model.clone(),
            messages,
            temperature: Some(self.temperature),
            max_tokens: Some(self.max_tokens),
            response_format: self.json_mode.then_some(ResponseFormat::JsonObject),
            ..Default::default()
        };
        let response = self
            .client
            .chat()
            .create(request)
            .await
            .map_err(map_error)?;
        let text = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| LlmError::BadResponse("no choice with content".into()))?;
        let (tokens_in, tokens_out) = response.usage.map_or((0, 0), |u| {
            (u64::from(u.prompt_tokens), u64::from(u.completion_tokens))
        });
        Ok(Completion {
            text,
            tokens_in,
            tokens_out,
            model: if response.model.is_empty() {
                self.model.clone()
            } else {
                response.model
            },
        })
    }
}

fn map_error(e: OpenAIError) -> LlmError {
    match e {
        OpenAIError::ApiError(api) if api.status_code.as_u16() == 429 => {
            LlmError::RateLimited(api.api_error.message)
        }
        OpenAIError::ApiError(api) => LlmError::Api {
            status: api.status_code.as_u16(),
            message: crate::storage::truncate_str(&api.api_error.message, 300).to_string(),
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => LlmError::Timeout,
        // Without the URL: a key may hide in it.
        OpenAIError::Reqwest(e) => {
            let e = e.without_url();
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            LlmError::Unreachable(msg)
        }
        OpenAIError::JSONDeserialize(e, _) => LlmError::BadResponse(e.to_string()),
        other => LlmError::BadResponse(other.to_string()),
    }
}
