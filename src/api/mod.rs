//! actix-web handlers only: decode the request, call the pipeline or the store, encode the
//! answer. No business logic lives here.

pub mod alerts;
pub mod cluster;
pub mod error;
pub mod faults;
pub mod guard;
pub mod health;
pub mod ingest;
pub mod llm;
pub mod logs;
pub mod openapi;
mod params;
pub mod remediation;
pub mod tokens;

use std::sync::Arc;

use actix_web::{HttpResponse, ResponseError, web};
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;

use crate::actors::Pipeline;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::storage::Store;

/// Shared by every handler (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    pub rules: Arc<crate::rules::RulesHandle>,
    pub scheduler: actix::Addr<crate::actors::scheduler::SchedulerActor>,
    pub scheduler_shared: crate::actors::scheduler::SchedulerShared,
    pub escalator: Arc<crate::llm::escalator::Escalator>,
    pub alerting: Arc<crate::alerting::runner::Alerting>,
    pub remediator: Arc<crate::remediation::Remediator>,
    pub auth: Arc<crate::auth::Authenticator>,
}

/// A 405 whose `Allow` lists the methods the document gives the route.
async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    let allow = req
        .match_pattern()
        .and_then(|p| openapi::allowed_methods(&p))
        .unwrap_or("");
    ApiError::MethodNotAllowed { allow }.error_response()
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// A resource that answers unsupported methods with a JSON 405.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/log/auto-upload").route(web::post().to(ingest::auto_upload)))
        .service(resource("/api/logs").route(web::get().to(logs::list)))
        .service(resource("/api/faults").route(web::get().to(faults::list)))
        .service(resource("/api/faults/{id}").route(web::get().to(faults::get)))
        .service(resource("/api/faults/{id}/ack").route(web::post().to(faults::ack)))
        .service(resource("/api/faults/{id}/resolve").route(web::post().to(faults::resolve)))
        .service(resource("/api/faults/{id}/confirm").route(web::post().to(llm::confirm)))
        .service(
            resource("/api/faults/{id}/deliveries").route(web::get().to(alerts::fault_deliveries)),
        )
        .service(
            resource("/api/silences")
                .route(web::get().to(alerts::list_silences))
                .route(web::post().to(alerts::create_silence)),
        )
        .service(resource("/api/silences/{id}").route(web::delete().to(alerts::delete_silence)))
        .service(resource("/api/faults/{id}/remediate").route(web::post().to(remediation::propose)))
        .service(
            resource("/api/faults/{id}/remediations")
                .route(web::get().to(remediation::list_for_fault)),
        )
        .service(resource("/api/remediations/{id}").route(web::get().to(remediation::get)))
        .service(
            resource("/api/remediations/{id}/approve").route(web::post().to(remediation::approve)),
        )
        .service(resource("/api/llm").route(web::get().to(llm::status)))
        .service(resource("/api/llm/diagnose").route(web::post().to(llm::diagnose)))
        .service(resource("/api/rules").route(web::get().to(faults::list_rules)))
        .service(resource("/api/rules/reload").route(web::post().to(faults::reload_rules)))
        .service(resource("/api/health-checks").route(web::get().to(cluster::list)))
        .service(resource("/api/health-checks/run").route(web::post().to(cluster::run)))
        .service(resource("/api/cluster/status").route(web::get().to(cluster::status)))
        .service(resource("/api/cluster/status/history").route(web::get().to(cluster::history)))
        .service(
            resource("/api/tokens")
                .route(web::get().to(tokens::list))
                .route(web::post().to(tokens::create)),
        )
        .service(resource("/api/tokens/{id}").route(web::delete().to(tokens::revoke)))
        .service(resource("/api/config").route(web::get().to(tokens::config)))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/metrics").route(web::get().to(health::metrics)))
        // The document, and Swagger UI from files in the binary (`/docs` redirects to `/docs/`).
        .service(web::redirect("/docs", "/docs/").permanent())
        .service(
            SwaggerUi::new(openapi::DOCS_PATTERN).url(openapi::DOCUMENT_PATH, openapi::openapi()),
        )
        .default_service(web::to(not_found));
}
