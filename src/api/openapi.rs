//! The OpenAPI 3.1 document of the HTTP API (served at `GET /api/openapi.json`, browsed with
//! Swagger UI at `/docs/`).
//!
//! Every operation comes from the `#[utoipa::path]` annotation on its handler and every
//! response schema from the type the handler serializes, so the document cannot drift from
//! the bodies. The security requirements (`bearer` with the role an operation needs) are
//! part of the contract: the auth layer reads them from this document.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::{ErrorBody, LlmFailure};
use super::{alerts, cluster, faults, health, ingest, llm, logs, remediation, tokens};
use crate::auth::access::{Access, AccessTable};

const DESCRIPTION: &str = "\
Fault diagnosis engine for Hadoop clusters: Flume ingest, log parsing, rules, LLM escalation, \
alerting, remediation and cluster health checks.

## Authentication

Every endpoint except `GET /healthz`, `GET /readyz`, this document and Swagger UI (`/docs`) \
needs a token: `Authorization: Bearer <token>` (in Swagger UI: **Authorize**). `GET /metrics` \
is open too unless the engine runs with `[auth] metrics_open = false`. Each token has one \
role, and each operation names the role it needs in its `security` requirement (`bearer` \
with the role as its scope); the server enforces exactly these:

- `ingest`: `POST /api/log/auto-upload` only;
- `read`: every read, and `POST /api/llm/diagnose`;
- `operator`: read, plus acknowledging, resolving and confirming faults, silences, \
remediations, running health checks;
- `admin`: everything, including reloading the rules, tokens and the configuration.

A missing or invalid token is answered with 401 (`WWW-Authenticate: Bearer`), a token of the \
wrong role with 403. Tokens come from the configuration (by SHA-256), from `POST /api/tokens`, \
from `FAULTLINE_ADMIN_TOKEN`, or are JWTs from an identity provider; a first start without any \
prints a generated admin token once. Flume's HttpSink cannot send headers, so the upload URL \
(and only it) also takes the token as `?access_token=<token>`.

## Errors and limits

Every answer >= 400 has a JSON body (`ErrorBody`): `{\"error\": \"...\", \"status\": 404}`, \
with more fields for the errors that have more to say. Requests other than ingest may be rate \
limited (429 with `Retry-After`); ingest answers backpressure with 503 and `Retry-After`, and a \
shipper resends the same body.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Faultline", description = DESCRIPTION, license(name = "Apache-2.0")),
    paths(
        ingest::auto_upload,
        logs::list,
        faults::list,
        faults::get,
        faults::ack,
        faults::resolve,
        llm::confirm,
        alerts::fault_deliveries,
        alerts::list_silences,
        alerts::create_silence,
        alerts::delete_silence,
        remediation::propose,
        remediation::list_for_fault,
        remediation::get,
        remediation::approve,
        llm::status,
        llm::diagnose,
        faults::list_rules,
        faults::reload_rules,
        cluster::list,
        cluster::run,
        cluster::status,
        cluster::history,
        tokens::list,
        tokens::create,
        tokens::revoke,
        tokens::config,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(
        ErrorBody,
        LlmFailure,
        IngestText,
        IngestJson,
        IngestNdjson,
        DiagnoseRequest,
    )),
    modifiers(&Contract),
    tags(
        (name = "ingest", description = "Log lines in, from Flume and other shippers"),
        (name = "logs", description = "Stored log records"),
        (name = "faults", description = "Fault records and their life (acknowledge, resolve)"),
        (name = "rules", description = "The diagnosis rules"),
        (name = "llm", description = "LLM diagnosis of what the rules do not explain"),
        (name = "alerting", description = "Silences and notification deliveries"),
        (name = "remediation", description = "Approved remediation scripts, with an audit trail"),
        (name = "cluster", description = "Health checks and cluster status"),
        (name = "tokens", description = "API tokens and the running configuration (admin)"),
        (name = "health", description = "Liveness, readiness and metrics of the engine itself"),
    )
)]
struct ApiDoc;

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// What each route needs, read from the document's `security` entries (see
/// [`AccessTable::from_openapi`]), plus the public document and Swagger UI routes.
pub fn access_table() -> Result<AccessTable, serde_json::Error> {
    let doc = serde_json::to_value(openapi())?;
    let mut table = AccessTable::from_openapi(&doc);
    for pattern in [DOCUMENT_PATH, "/docs", DOCS_PATTERN] {
        table.insert("GET", pattern, Access::Public);
    }
    Ok(table)
}

/// Where the document is served, and Swagger UI's route pattern.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const DOCS_PATTERN: &str = "/docs/{_:.*}";

/// The methods the document lists for a route pattern (`/api/faults/{id}`), upper case, for
/// the `Allow` header of a 405.
pub fn allowed_methods(pattern: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    ALLOW
        .get_or_init(|| {
            let doc = serde_json::to_value(openapi()).unwrap_or_default();
            let mut out = BTreeMap::new();
            if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
                for (path, item) in paths {
                    let methods: Vec<String> = item
                        .as_object()
                        .into_iter()
                        .flat_map(|o| o.keys())
                        .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                        .map(|k| k.to_ascii_uppercase())
                        .collect();
                    out.insert(path.clone(), methods.join(", "));
                }
            }
            out
        })
        .get(pattern)
        .map(String::as_str)
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Non-whitespace as Rust's `str::trim` sees it (Unicode `White_Space`), spelled out so that
/// every regex dialect (ECMA-262, Python) agrees with the server on what a blank string is.
pub const NOT_BLANK: &str = "[^\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// Rust's `White_Space` (what `str::trim` removes) as a regex class body.
const WS: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A query parameter whose empty value means "not given": `schema` or `""`.
fn or_empty(schema: impl Into<RefOr<Schema>>) -> Schema {
    AnyOfBuilder::new()
        .item(schema)
        .item(
            string()
                .max_length(Some(0))
                .description(Some("Empty: the same as not given.")),
        )
        .build()
        .into()
}

/// An RFC 3339 time parameter (`since`, `until`).
pub(crate) fn time_param() -> Schema {
    or_empty(string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
}

fn limit_param(max: u32, default: u32) -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(max))
            .default(Some(default.into())),
    )
}

/// `limit` of `GET /api/logs`.
pub(crate) fn logs_limit_param() -> Schema {
    limit_param(1000, 100)
}

/// `limit` of `GET /api/faults` and `GET /api/cluster/status/history`.
pub(crate) fn limit_500_param() -> Schema {
    limit_param(500, 50)
}

/// A page cursor `<ms>:<id>` (from a previous page's `next_cursor`).
pub(crate) fn cursor_param() -> Schema {
    or_empty(string().pattern(Some("^[+-]?0*[0-9]{1,18}:[+-]?0*[0-9]{1,18}$")))
}

/// An integer id given as a query parameter (`before`).
pub(crate) fn id_param() -> Schema {
    or_empty(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
    )
}

/// One of `values` exactly.
fn enum_of(values: &[&str]) -> ObjectBuilder {
    string().enum_values(Some(values.iter().copied()))
}

/// `status` of `GET /api/faults`.
pub(crate) fn fault_status_param() -> Schema {
    or_empty(enum_of(&["open", "acknowledged", "resolved"]))
}

/// `severity` of `GET /api/faults`.
pub(crate) fn severity_param() -> Schema {
    or_empty(enum_of(&["info", "warning", "error", "critical"]))
}

/// `check` of `POST /api/health-checks/run`.
pub(crate) fn check_param() -> Schema {
    or_empty(enum_of(&crate::cluster::settings::CHECKS))
}

/// `matchers` of a new silence: at least one `name<op>value`.
pub(crate) fn matchers_schema() -> Schema {
    ArrayBuilder::new()
        .items(
            string()
                .pattern(Some(format!(
                    "^[{WS}]*[A-Za-z_][A-Za-z0-9_]*[{WS}]*(=|!=|!~)"
                )))
                .examples(["host=\"worker3\"", "fault_type=~\"datanode_.*\""]),
        )
        .min_items(Some(1))
        .description(Some(
            "Alertmanager-style matchers over the fault's labels, all of which must match: `name=\"value\"`, `name!=\"value\"`, `name=~\"regex\"`, `name!~\"regex\"` (regexes are anchored; quotes optional). At least one.",
        ))
        .build()
        .into()
}

/// The level names `level` takes, as `Level::parse_lenient` reads them (any case, blanks
/// around).
pub(crate) const LEVEL_NAMES: [&str; 15] = [
    "UNKNOWN", "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE",
    "FATAL", "CRITICAL", "CRIT", "ALERT", "EMERG",
];

/// `level` of `GET /api/logs`: a canonical name, or any spelling the server reads.
pub(crate) fn level_param() -> Schema {
    let any_case = LEVEL_NAMES
        .iter()
        .map(|n| {
            n.chars()
                .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|");
    AnyOfBuilder::new()
        .item(enum_of(&["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]))
        .item(
            string()
                .pattern(Some(format!("^[{WS}]*({any_case})[{WS}]*$")))
                .description(Some(
                    "Any case, blanks around; also UNKNOWN, NOTICE (= INFO), WARNING, ERR and SEVERE (= ERROR), CRITICAL, CRIT, ALERT and EMERG (= FATAL).",
                )),
        )
        .item(
            string()
                .max_length(Some(0))
                .description(Some("Empty: the same as not given.")),
        )
        .build()
        .into()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// Any JSON value, described.
fn described(text: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(text))
}

/// The `text/plain` body of `POST /api/log/auto-upload`: one line (what Flume's HttpSink
/// sends) or a newline-separated batch. Only an empty body is refused: a whitespace-only line
/// is a line.
pub struct IngestText;

impl PartialSchema for IngestText {
    fn schema() -> RefOr<Schema> {
        string()
            .min_length(Some(1))
            .description(Some(
                "One log line (Flume HttpSink), or lines separated by `\\n` (`\\r\\n` works too).",
            ))
            .examples(["2024-05-12 10:15:32,118 WARN org.apache.hadoop.hdfs.server.datanode.DataNode: Slow BlockReceiver write data to disk cost:5012ms"])
            .into()
    }
}

impl ToSchema for IngestText {}

/// An ingest event: an object whose text is the first of `text_fields` that is a string, with
/// optional stream fields (`flume`: also in `headers`). Fields that are not strings are
/// ignored, so only the text is typed: one complete object per text field that can carry it.
fn ingest_event(flume: bool, text_fields: [&str; 4]) -> AnyOfBuilder {
    let text_names = text_fields.map(|f| format!("`{f}`")).join(", ");
    let mut event = AnyOfBuilder::new().description(Some(format!(
        "An event: its text (the first of {text_names} that is a string) and, optionally, the stream it comes from (fields that are not strings are ignored)."
    )));
    for given in text_fields {
        let mut shape = ObjectBuilder::new().schema_type(Type::Object);
        if flume {
            shape = shape.property(
                "headers",
                described(
                    "Flume JSONHandler headers: `host` (or `hostname`), `service`, `file` (or `path`, `basename`), `cluster`; they override the same fields of the event.",
                ),
            );
        }
        for name in text_fields {
            shape = if name == given {
                shape.property(
                    name,
                    string().description(Some("The text (may hold several lines).")),
                )
            } else {
                shape.property(name, described("Another text field."))
            };
        }
        for (name, what) in [
            ("host", "The host (`hostname` also works)."),
            ("service", "The service."),
            ("file", "The log file (`path` and `basename` also work)."),
            ("cluster", "The cluster."),
        ] {
            shape = shape.property(name, described(what));
        }
        event = event.item(shape.required(given));
    }
    event
}

/// The `application/json` body of `POST /api/log/auto-upload`: an array of events (strings or
/// objects), or one event object.
pub struct IngestJson;

impl PartialSchema for IngestJson {
    fn schema() -> RefOr<Schema> {
        let event = || ingest_event(true, ["body", "message", "log", "msg"]);
        let item = OneOfBuilder::new().item(string()).item(event());
        OneOfBuilder::new()
            .description(Some(
                "A Flume JSONHandler array of events, an array of strings (mixed is fine), or one event object.",
            ))
            .item(ArrayBuilder::new().items(item))
            .item(event())
            .examples([serde_json::json!([
                {"headers": {"host": "worker3", "service": "datanode"}, "body": "2024-05-12 10:15:32,118 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService"},
                "2024-05-12 10:15:33,001 INFO org.apache.hadoop.hdfs.server.datanode.DataNode: Receiving block"
            ])])
            .into()
    }
}

impl ToSchema for IngestJson {}

/// The `application/x-ndjson` body of `POST /api/log/auto-upload`, described as the array of
/// its lines: each event is sent as one JSON object on its own line (blank lines are
/// skipped), at least one.
pub struct IngestNdjson;

impl PartialSchema for IngestNdjson {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .description(Some(
                "NDJSON: each item is sent as one JSON object on its own line (the array is not sent as such). At least one event.",
            ))
            .items(ingest_event(false, ["message", "body", "log", "msg"]))
            .min_items(Some(1))
            .into()
    }
}

impl ToSchema for IngestNdjson {}

/// The body of `POST /api/llm/diagnose`: the excerpt as `text` (one string) or as `lines`,
/// not both, with at least one line that is not blank and at most 5000 lines; optionally the
/// stream it comes from.
pub struct DiagnoseRequest;

impl PartialSchema for DiagnoseRequest {
    fn schema() -> RefOr<Schema> {
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let nullable_string = |what: &str| {
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some(what))
        };
        // One complete object per form (no `allOf`: `additionalProperties: false` must see
        // every property).
        let form = |given: &str, excerpt: RefOr<Schema>, other: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(given, excerpt)
                .required(given)
                .property(other, null())
                .property(
                    "cluster",
                    nullable_string("The cluster (`ingest.default_cluster` when absent)."),
                )
                .property("host", nullable_string("The host."))
                .property("service", nullable_string("The service."))
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let text = string()
            .pattern(Some(NOT_BLANK))
            .description(Some(
                "The excerpt as one string (lines separated by `\\n`), not blank, at most 5000 lines.",
            ))
            .into();
        let mut contains = Extensions::default();
        contains.insert(
            "contains".into(),
            serde_json::json!({"type": "string", "pattern": NOT_BLANK}),
        );
        let lines = ArrayBuilder::new()
            .items(string())
            .max_items(Some(5000))
            .extensions(Some(contains))
            .description(Some(
                "The excerpt as lines, at least one not blank, at most 5000.",
            ))
            .into();
        OneOfBuilder::new()
            .description(Some(
                "The excerpt as `text` or as `lines` (not both), with a line that is not blank and at most 5000 lines; optionally the stream it comes from.",
            ))
            .item(form("text", text, "lines"))
            .item(form("lines", lines, "text"))
            .examples([serde_json::json!({
                "text": "2024-05-12 10:15:32,118 ERROR org.apache.hadoop.hdfs.server.datanode.DataNode: IOException in offerService",
                "cluster": "prod", "host": "worker3", "service": "datanode"
            })])
            .into()
    }
}

impl ToSchema for DiagnoseRequest {}

/// The parts of the contract every operation shares: the `bearer` scheme, the version, the
/// answers of the shared body reader (413, 415) on operations with a body, and those of the
/// auth and rate-limit layers (401, 403, 429) on the operations they guard.
struct Contract;

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`; the requirement's scopes name the role the operation needs (`ingest`, `read`, `operator`, `admin`).",
                    ))
                    .build(),
            ),
        );
        let error = |description: &str, retry_after: bool| -> Response {
            let mut r = ResponseBuilder::new().description(description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::<Schema>::Ref(Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            );
            if retry_after {
                r = r.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(u64::schema()))
                        .description(Some("Seconds to wait before retrying"))
                        .build(),
                );
            }
            r.build()
        };
        components.responses.insert(
            "Unauthorized".into(),
            RefOr::T(error("The token is missing or invalid", false)),
        );
        components.responses.insert(
            "Forbidden".into(),
            RefOr::T(error("The token's role may not do this", false)),
        );
        components.responses.insert(
            "PayloadTooLarge".into(),
            RefOr::T(error(
                "The body is over `server.max_body_bytes` (compressed or not)",
                false,
            )),
        );
        components.responses.insert(
            "UnsupportedEncoding".into(),
            RefOr::T(error(
                "An unsupported `Content-Encoding` (use gzip, deflate or none)",
                false,
            )),
        );
        components.responses.insert(
            "TooManyRequests".into(),
            RefOr::T(error(
                "Rate limited: retry after `Retry-After` seconds",
                true,
            )),
        );
        let reference = |name: &str| RefOr::Ref(Ref::from_response_name(name));
        for (path, item) in doc.paths.paths.iter_mut() {
            let ingest = path == "/api/log/auto-upload";
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                // Every body is read by the same reader (`params::read_body`).
                if op.request_body.is_some() {
                    let responses = &mut op.responses.responses;
                    responses
                        .entry("413".into())
                        .or_insert_with(|| reference("PayloadTooLarge"));
                    responses
                        .entry("415".into())
                        .or_insert_with(|| reference("UnsupportedEncoding"));
                }
                let guarded = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| !is_empty_requirement(r)));
                if !guarded {
                    continue;
                }
                let responses = &mut op.responses.responses;
                responses
                    .entry("401".into())
                    .or_insert_with(|| reference("Unauthorized"));
                responses
                    .entry("403".into())
                    .or_insert_with(|| reference("Forbidden"));
                if ingest {
                    continue;
                }
                match responses.get_mut("429") {
                    // The operation's own 429 (the LLM budget) also stands for the rate limit.
                    Some(RefOr::T(own)) => {
                        own.description = format!(
                            "{}; or rate limited (retry after `Retry-After` seconds)",
                            own.description
                        );
                    }
                    Some(RefOr::Ref(_)) => {}
                    None => {
                        responses.insert("429".into(), reference("TooManyRequests"));
                    }
                }
            }
        }
    }
}

fn is_empty_requirement(r: &utoipa::openapi::security::SecurityRequirement) -> bool {
    serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::to_value(openapi()).expect("the document serializes")
    }

    /// `resource("<path>")` registrations of `routes()` with the methods routed on each.
    fn registered() -> BTreeMap<String, BTreeSet<String>> {
        let src = include_str!("mod.rs");
        let body = &src[src.find("pub fn routes(").expect("routes() in mod.rs")..];
        let mut out = BTreeMap::new();
        for chunk in body.split("resource(\"").skip(1) {
            let path = chunk[..chunk.find('"').expect("closing quote")].to_string();
            let mut methods = BTreeSet::new();
            for m in ["get", "post", "put", "delete", "patch"] {
                if chunk.contains(&format!("web::{m}()")) {
                    methods.insert(m.to_string());
                }
            }
            assert!(!methods.is_empty(), "no route on {path}");
            assert!(out.insert(path.clone(), methods).is_none(), "{path} twice");
        }
        out
    }

    fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
        doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .map(|(path, item)| {
                let methods = item
                    .as_object()
                    .expect("path item")
                    .keys()
                    .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                (path.clone(), methods)
            })
            .collect()
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let routes = registered();
        assert!(routes.len() >= 25, "the scan found {} routes", routes.len());
        assert_eq!(routes, documented(&doc()));
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if HTTP_METHODS.contains(&method.as_str()) {
                    out.push((method.to_ascii_uppercase(), path.clone(), op.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_operation_has_security_and_a_described_success() {
        let doc = doc();
        for (method, path, op) in operations(&doc) {
            let security = op["security"].as_array();
            assert!(
                security.is_some_and(|s| !s.is_empty()),
                "{method} {path} has no security entry"
            );
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(
                !op["tags"].as_array().is_none_or(|t| t.is_empty()),
                "{method} {path} has no tag"
            );
            let responses = op["responses"].as_object().expect("responses");
            let success: Vec<_> = responses
                .iter()
                .filter(|(s, _)| s.starts_with('2'))
                .collect();
            assert!(!success.is_empty(), "{method} {path} has no 2xx");
            for (status, r) in success {
                let content = r["content"].as_object();
                assert!(
                    content.is_some_and(|c| !c.is_empty()
                        && c.values().all(|m| m.get("schema").is_some()
                            || m.get("example").is_some()
                            || m.get("examples").is_some())),
                    "{method} {path} {status} has no schema or example"
                );
            }
            for (status, r) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let r = match r.get("$ref").and_then(Value::as_str) {
                    Some(name) => {
                        &doc["components"]["responses"]
                            [name.trim_start_matches("#/components/responses/")]
                    }
                    None => r,
                };
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} is not an ErrorBody"
                );
            }
        }
    }

    /// The roles the auth layer enforces, read from the document: this table is the contract.
    #[test]
    fn each_operation_needs_exactly_its_role() {
        let expected: BTreeMap<(&str, &str), Option<&str>> = [
            (("GET", "/healthz"), None),
            (("GET", "/readyz"), None),
            (("POST", "/api/log/auto-upload"), Some("ingest")),
            (("GET", "/metrics"), Some("read")),
            (("GET", "/api/logs"), Some("read")),
            (("GET", "/api/faults"), Some("read")),
            (("GET", "/api/faults/{id}"), Some("read")),
            (("GET", "/api/faults/{id}/deliveries"), Some("read")),
            (("GET", "/api/silences"), Some("read")),
            (("GET", "/api/faults/{id}/remediations"), Some("read")),
            (("GET", "/api/remediations/{id}"), Some("read")),
            (("GET", "/api/llm"), Some("read")),
            (("POST", "/api/llm/diagnose"), Some("read")),
            (("GET", "/api/rules"), Some("read")),
            (("GET", "/api/health-checks"), Some("read")),
            (("GET", "/api/cluster/status"), Some("read")),
            (("GET", "/api/cluster/status/history"), Some("read")),
            (("POST", "/api/faults/{id}/ack"), Some("operator")),
            (("POST", "/api/faults/{id}/resolve"), Some("operator")),
            (("POST", "/api/faults/{id}/confirm"), Some("operator")),
            (("POST", "/api/silences"), Some("operator")),
            (("DELETE", "/api/silences/{id}"), Some("operator")),
            (("POST", "/api/faults/{id}/remediate"), Some("operator")),
            (("POST", "/api/remediations/{id}/approve"), Some("operator")),
            (("POST", "/api/health-checks/run"), Some("operator")),
            (("POST", "/api/rules/reload"), Some("admin")),
            (("GET", "/api/tokens"), Some("admin")),
            (("POST", "/api/tokens"), Some("admin")),
            (("DELETE", "/api/tokens/{id}"), Some("admin")),
            (("GET", "/api/config"), Some("admin")),
        ]
        .into_iter()
        .collect();
        let doc = doc();
        let ops = operations(&doc);
        assert_eq!(ops.len(), expected.len());
        for (method, path, op) in ops {
            let role = expected
                .get(&(method.as_str(), path.as_str()))
                .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
            let want = match role {
                None => serde_json::json!([{}]),
                Some(r) => serde_json::json!([{ "bearer": [r] }]),
            };
            assert_eq!(op["security"], want, "{method} {path}");
            // And the gate's table, built from the document, says the same.
            let access = match role.and_then(crate::auth::Role::parse) {
                None => Access::Public,
                Some(r) => Access::Role(r),
            };
            assert_eq!(
                access_table().expect("table").lookup(&method, Some(&path)),
                access,
                "{method} {path}"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"],
            serde_json::json!({
                "type": "http",
                "scheme": "bearer",
                "description": doc["components"]["securitySchemes"]["bearer"]["description"],
            })
        );
    }

    #[test]
    fn every_reference_resolves() {
        let doc = doc();
        fn walk(v: &Value, refs: &mut Vec<String>) {
            match v {
                Value::Object(o) => {
                    if let Some(Value::String(r)) = o.get("$ref") {
                        refs.push(r.clone());
                    }
                    o.values().for_each(|v| walk(v, refs));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, refs)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    /// The `pattern` of a schema built here (the first one found).
    fn pattern_of(schema: &Schema) -> regex::Regex {
        fn find(v: &Value) -> Option<String> {
            match v {
                Value::Object(o) => o
                    .get("pattern")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| o.values().find_map(find)),
                Value::Array(a) => a.iter().find_map(find),
                _ => None,
            }
        }
        let v = serde_json::to_value(schema).expect("schema serializes");
        regex::Regex::new(&find(&v).expect("a pattern")).expect("the pattern compiles")
    }

    /// Strings a server check and its documented pattern must judge alike.
    const PROBES: [&str; 16] = [
        "",
        " ",
        "\t\n",
        "\u{a0}\u{3000}",
        "\u{1c}",
        "\u{feff}",
        "x",
        " x ",
        "INFO",
        "info",
        " Warning\t",
        "err",
        "warnx",
        "fatal!",
        "\u{85}emerg",
        "notice",
    ];

    #[test]
    fn documented_patterns_judge_as_the_server_does() {
        let not_blank = regex::Regex::new(NOT_BLANK).expect("NOT_BLANK compiles");
        for p in PROBES {
            assert_eq!(not_blank.is_match(p), !p.trim().is_empty(), "{p:?}");
        }
        let level = pattern_of(&level_param());
        for p in PROBES.iter().copied().chain(LEVEL_NAMES) {
            let lower = p.to_lowercase();
            for p in [p, lower.as_str()] {
                assert_eq!(
                    level.is_match(p),
                    crate::domain::Level::parse_lenient(p).is_some(),
                    "{p:?}"
                );
            }
        }
        let matcher = pattern_of(&matchers_schema());
        for p in [
            "host=\"w1\"",
            " host = w1",
            "host!=w1",
            "host!~\"w.*\"",
            "host=~\"w.*\"",
            "_x=",
            "1host=w",
            "host",
            "=w",
            "a b=c",
            "host!w",
            "\u{3000}host\u{a0}=w",
        ] {
            let regex_op = p.contains("=~") || p.contains("!~");
            let parses = crate::alerting::matcher::Matcher::parse(p).is_ok();
            if regex_op {
                // The pattern checks the syntax; the regex must compile too.
                assert!(!parses || matcher.is_match(p), "{p:?}");
            } else {
                assert_eq!(matcher.is_match(p), parses, "{p:?}");
            }
        }
    }

    #[test]
    fn allow_lists_the_documented_methods() {
        assert_eq!(allowed_methods("/api/silences"), Some("GET, POST"));
        assert_eq!(allowed_methods("/api/faults/{id}/ack"), Some("POST"));
        assert_eq!(allowed_methods("/nowhere"), None);
    }
}
