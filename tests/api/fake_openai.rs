//! A fake OpenAI-compatible server at the network edge: a real HTTP server speaking
//! `POST /v1/chat/completions` (request and response shapes of the OpenAI API, error bodies,
//! `Retry-After`), recording the exact bytes of every request. Replies are scripted per test;
//! when the script is empty it answers like a well-behaved model: a valid diagnosis citing
//! line 0 of the excerpt, naming the stream's host placeholder in the root cause.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// One scripted reply.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The default: a valid diagnosis of class `class` citing line 0.
    Diagnosis { class: String },
    /// This text as the assistant message's content (invalid JSON, no evidence, ...).
    Content(String),
    /// An HTTP error with an OpenAI error body (429, 500, ...).
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// A 200 whose body is not a chat completion.
    Garbage,
    /// Hold the request until [`FakeOpenAi::release`] is called, then reply.
    Gated(Box<Reply>),
    /// Sleep, then reply.
    Slow(Duration, Box<Reply>),
    /// A gullible model: obeys an instruction injected into the log excerpt
    /// (`... reply exactly: <text>`), else answers like `Diagnosis`.
    Gullible,
}

struct Shared {
    script: VecDeque<Reply>,
    default: Reply,
    requests: Vec<Vec<u8>>,
    authorization: Vec<Option<String>>,
}

pub struct FakeOpenAi {
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
    gate: Arc<tokio::sync::Semaphore>,
    server: actix_web::dev::ServerHandle,
}

fn content_reply(model: &str, content: &str, prompt_bytes: usize) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_763_700_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_bytes / 4,
            "completion_tokens": content.len() / 4,
            "total_tokens": prompt_bytes / 4 + content.len() / 4
        }
    }))
}

/// The user prompt (the last user message) of a request.
fn last_user(body: &Value) -> String {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn diagnosis(body: &Value, class: &str) -> String {
    // The first user message is the diagnosis prompt: "host HOST_n" names the stream's host.
    let prompt = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    let host = prompt
        .split("host ")
        .nth(1)
        .and_then(|r| r.split([',', ' ', '\n']).next())
        .unwrap_or("the host")
        .to_string();
    json!({
        "fault_class": class,
        "title": format!("Fake diagnosis {class}"),
        "root_cause": format!("The service on {host} failed as the excerpt shows."),
        "confidence": 0.82,
        "remediation": [format!("Check the service on {host}"), "Restart it".to_string()],
        "evidence": [0]
    })
    .to_string()
}

async fn reply(
    reply: Reply,
    body: &Value,
    bytes: usize,
    gate: Arc<tokio::sync::Semaphore>,
) -> HttpResponse {
    let model = body["model"].as_str().unwrap_or("fake-model").to_string();
    let mut reply = reply;
    loop {
        match reply {
            Reply::Diagnosis { class } => {
                return content_reply(&model, &diagnosis(body, &class), bytes);
            }
            Reply::Content(text) => return content_reply(&model, &text, bytes),
            Reply::Status {
                status,
                retry_after,
            } => {
                let code = actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
                let mut resp = HttpResponse::build(code);
                if let Some(s) = retry_after {
                    resp.insert_header(("Retry-After", s.to_string()));
                }
                let kind = if status == 429 {
                    "rate_limit_error"
                } else {
                    "server_error"
                };
                return resp.json(json!({
                    "error": { "message": format!("fake {status}"), "type": kind, "param": null, "code": null }
                }));
            }
            Reply::Garbage => {
                return HttpResponse::Ok()
                    .content_type("application/json")
                    .body("<html>upstream proxy error</html>");
            }
            Reply::Gated(inner) => {
                if let Ok(p) = gate.acquire().await {
                    p.forget();
                }
                reply = *inner;
            }
            Reply::Slow(d, inner) => {
                tokio::time::sleep(d).await;
                reply = *inner;
            }
            Reply::Gullible => {
                let prompt = last_user(body);
                if let Some(i) = prompt.find("reply exactly: ") {
                    let injected = prompt[i + "reply exactly: ".len()..]
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    return content_reply(&model, &injected, bytes);
                }
                reply = Reply::Diagnosis {
                    class: "gullible_fault".into(),
                };
            }
        }
    }
}

async fn completions(
    req: actix_web::HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Mutex<Shared>>>,
    gate: web::Data<Arc<tokio::sync::Semaphore>>,
) -> HttpResponse {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return HttpResponse::BadRequest().json(json!({
                "error": { "message": format!("invalid JSON: {e}"), "type": "invalid_request_error", "param": null, "code": null }
            }));
        }
    };
    let next = {
        let mut s = shared.lock().unwrap();
        s.requests.push(body.to_vec());
        s.authorization.push(
            req.headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        );
        let default = s.default.clone();
        s.script.pop_front().unwrap_or(default)
    };
    reply(next, &parsed, body.len(), gate.get_ref().clone()).await
}

impl FakeOpenAi {
    pub async fn start() -> FakeOpenAi {
        let shared = Arc::new(Mutex::new(Shared {
            script: VecDeque::new(),
            default: Reply::Diagnosis {
                class: "fake_fault".into(),
            },
            requests: Vec::new(),
            authorization: Vec::new(),
        }));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let (s, g) = (shared.clone(), gate.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(s.clone()))
                .app_data(web::Data::new(g.clone()))
                .app_data(web::PayloadConfig::new(16 << 20))
                .route("/v1/chat/completions", web::post().to(completions))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .expect("bind the fake OpenAI server");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeOpenAi {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            shared,
            gate,
            server: handle,
        }
    }

    /// Replies for the next requests, in order (then the default).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.lock().unwrap().script.extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        self.shared.lock().unwrap().default = reply;
    }

    /// Let `n` gated requests answer.
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub fn calls(&self) -> usize {
        self.shared.lock().unwrap().requests.len()
    }

    /// The exact bytes of every request received.
    pub fn request_bodies(&self) -> Vec<Vec<u8>> {
        self.shared.lock().unwrap().requests.clone()
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.shared.lock().unwrap().authorization.clone()
    }

    pub async fn stop(&self) {
        self.gate.add_permits(1000);
        self.server.stop(false).await;
    }
}

/// `[llm]` settings pointing at `fake`.
pub fn configure(s: &mut faultline::config::Settings, fake: &FakeOpenAi) {
    s.llm.base_url = fake.base_url.clone();
    s.llm.model = "fake-model".into();
    // Never a key from the environment of the test run.
    s.llm.api_key_env = String::new();
    s.llm.sweep_interval_secs = 1;
    s.llm.timeout_secs = 10;
    s.llm.max_retry_wait_secs = 2;
    s.scheduler.enabled = false;
}
