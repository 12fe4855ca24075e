//! A fake webhook endpoint (a real HTTP server): records every POST (path, query, JSON body)
//! and answers with a scripted status and body (a failing receiver, a DingTalk `errcode`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: String,
    pub body: Value,
}

struct Shared {
    received: Vec<Received>,
    /// (status, body) for the next requests; then 200 with `default_body`.
    script: VecDeque<(u16, String)>,
    default_body: String,
}

pub struct FakeWebhook {
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    server: actix_web::dev::ServerHandle,
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Mutex<Shared>>>,
) -> HttpResponse {
    let mut s = shared.lock().unwrap();
    let (status, reply) = s
        .script
        .pop_front()
        .unwrap_or((200, s.default_body.clone()));
    if status == 200 {
        s.received.push(Received {
            path: req.path().to_string(),
            query: req.query_string().to_string(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(reply)
}

impl FakeWebhook {
    pub async fn start() -> FakeWebhook {
        let shared = Arc::new(Mutex::new(Shared {
            received: Vec::new(),
            script: VecDeque::new(),
            default_body: "{\"errcode\":0,\"errmsg\":\"ok\"}".into(),
        }));
        let s = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(s.clone()))
                .default_service(web::post().to(receive))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the fake webhook");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        FakeWebhook {
            base: format!("http://127.0.0.1:{port}"),
            shared,
            server: handle,
        }
    }

    /// Answer the next `n` requests with `status` and `body` (not recorded unless 200).
    pub fn fail_next(&self, n: usize, status: u16, body: &str) {
        let mut s = self.shared.lock().unwrap();
        for _ in 0..n {
            s.script.push_back((status, body.to_string()));
        }
    }

    /// Answer 200 again from now on.
    pub fn clear_script(&self) {
        self.shared.lock().unwrap().script.clear();
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }
}
