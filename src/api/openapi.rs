//! The API's description of itself (`GET /api/openapi.json`, OpenAPI 3.1), generated from
//! the same table that builds the HTTP router: a route cannot exist without its entry, and
//! each JSON body's and query's schema is derived from the very type the handler reads
//! (with `schemars`), so the document cannot drift from the code.

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::AppState;

/// Who may call an operation: each level may do all the levels before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No token needed.
    Public,
    /// Any valid token: an agent sees only its own work and customers.
    Anyone,
    /// A supervisor's or an admin's token.
    Supervisor,
    /// An admin's token (or the admin token).
    Admin,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Anyone => "agent",
            Access::Supervisor => "supervisor",
            Access::Admin => "admin",
        }
    }
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn root_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.root_schema_for::<T>()
}

enum Body {
    Json(SchemaFn),
    Toml,
    Import,
}

/// One operation: a method on a path, what it does, who may call it, what it reads and
/// what it answers.
pub struct Op {
    method: Method,
    path: &'static str,
    summary: &'static str,
    access: Access,
    body: Option<Body>,
    query: Option<SchemaFn>,
    params: &'static [(&'static str, &'static str)],
    responses: &'static [(u16, &'static str)],
}

impl Op {
    fn new(method: Method, path: &'static str, summary: &'static str) -> Op {
        Op {
            method,
            path,
            summary,
            access: Access::Admin,
            body: None,
            query: None,
            params: &[],
            responses: &[],
        }
    }

    /// `GET path`.
    pub fn get(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::GET, path, summary)
    }

    /// `POST path`.
    pub fn post(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::POST, path, summary)
    }

    /// `PUT path`.
    pub fn put(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::PUT, path, summary)
    }

    /// `DELETE path`.
    pub fn delete(path: &'static str, summary: &'static str) -> Op {
        Op::new(Method::DELETE, path, summary)
    }

    /// Who may call it (default: admins).
    pub fn access(mut self, access: Access) -> Op {
        self.access = access;
        self
    }

    /// It reads a JSON body of type `T`.
    pub fn json<T: JsonSchema>(mut self) -> Op {
        self.body = Some(Body::Json(schema_of::<T>));
        self
    }

    /// It reads a routing rules document (TOML).
    pub fn toml(mut self) -> Op {
        self.body = Some(Body::Toml);
        self
    }

    /// It reads a customer import (CSV or JSON).
    pub fn import(mut self) -> Op {
        self.body = Some(Body::Import);
        self
    }

    /// It reads its query string as type `T`.
    pub fn query<T: JsonSchema>(mut self) -> Op {
        self.query = Some(root_of::<T>);
        self
    }

    /// Query parameters read by name: (name, description).
    pub fn params(mut self, params: &'static [(&'static str, &'static str)]) -> Op {
        self.params = params;
        self
    }

    /// Its answers: (status, meaning). Errors of authentication, role and body are added
    /// from what the operation reads.
    pub fn responses(mut self, responses: &'static [(u16, &'static str)]) -> Op {
        self.responses = responses;
        self
    }

    fn id(&self) -> String {
        let mut id = self.method.as_str().to_ascii_lowercase();
        for part in self
            .path
            .split('/')
            .filter(|p| !p.is_empty() && *p != "api")
        {
            id.push('_');
            id.push_str(&part.replace(['{', '}'], "").replace('.', "_"));
        }
        id
    }
}

/// The router and its description, built together.
pub struct Routes {
    router: Router<AppState>,
    ops: Vec<Op>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            router: Router::new(),
            ops: Vec::new(),
        }
    }
}

impl Routes {
    /// Adds an operation served by `handler`.
    pub fn add<H, T>(mut self, op: Op, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(op.method.clone())
            .unwrap_or_else(|_| panic!("{} is not a method axum routes", op.method));
        self.router = self.router.route(op.path, on(filter, handler));
        self.ops.push(op);
        self
    }

    /// Changes the router (to add layers) and keeps the description.
    pub fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Routes {
        self.router = f(self.router);
        self
    }

    /// Both sets of routes.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.ops.extend(other.ops);
        self
    }

    /// The router, with `GET path` serving the OpenAPI document that describes it (and
    /// itself), to anyone.
    pub fn serving_document(mut self, path: &'static str) -> Router<AppState> {
        self.ops.push(
            Op::get(path, "this document")
                .access(Access::Public)
                .responses(&[(200, "the OpenAPI 3.1 document")]),
        );
        let doc = Arc::new(document(&self.ops));
        self.router.route(
            path,
            axum::routing::get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc) }
            }),
        )
    }
}

fn error_response(meaning: &str) -> Value {
    json!({
        "description": meaning,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

/// The OpenAPI 3.1 document for `ops`.
fn document(ops: &[Op]) -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for op in ops {
        let mut parameters: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|p| p.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if let Some(query) = op.query {
            let schema = serde_json::to_value(query(&mut g)).unwrap_or_default();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (name, s) in schema["properties"].as_object().into_iter().flatten() {
                let mut s = s.clone();
                let description = s
                    .as_object_mut()
                    .and_then(|o| o.remove("description"))
                    .unwrap_or(Value::Null);
                parameters.push(json!({
                    "name": name, "in": "query", "required": required.contains(&name.as_str()),
                    "description": description, "schema": s,
                }));
            }
        }
        for (name, description) in op.params {
            parameters.push(json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } }));
        }
        let mut responses = Map::new();
        for (status, meaning) in op.responses {
            let r = if *status >= 400 {
                error_response(meaning)
            } else {
                json!({ "description": meaning, "content": { "application/json": {} } })
            };
            responses.insert(status.to_string(), r);
        }
        let mut add = |status: u16, meaning: &str| {
            responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(meaning));
        };
        if op.body.is_some() || op.query.is_some() || !parameters.is_empty() {
            add(400, "the request is wrong; `field` names the part at fault");
        }
        if op.body.is_some() {
            add(413, "the body is larger than allowed");
            add(415, "the body is not of a type this operation reads");
        }
        if op.access > Access::Public {
            add(401, "no token, or a wrong one");
            add(503, "the store is unavailable; nothing was changed, retry");
        }
        if op.access > Access::Anyone {
            add(403, "the token's role may not do this");
        }
        let mut o = json!({
            "operationId": op.id(),
            "summary": op.summary,
            "x-required-role": op.access.as_str(),
            "responses": responses,
        });
        if !parameters.is_empty() {
            o["parameters"] = json!(parameters);
        }
        o["security"] = if op.access == Access::Public {
            json!([])
        } else {
            json!([{ "bearer": [] }])
        };
        match &op.body {
            Some(Body::Json(schema)) => {
                let s = serde_json::to_value(schema(&mut g)).unwrap_or_default();
                o["requestBody"] =
                    json!({ "required": true, "content": { "application/json": { "schema": s } } });
            }
            Some(Body::Toml) => {
                o["requestBody"] = json!({ "required": true, "description": "a routing rules document, as config/routing.toml",
                    "content": { "application/toml": { "schema": { "type": "string" } } } });
            }
            Some(Body::Import) => {
                o["requestBody"] = json!({ "required": true, "content": {
                    "text/csv": { "schema": { "type": "string", "description": "columns external_id,email,phone,visitor_id,name,tier,lifetime_value" } },
                    "application/json": { "schema": { "description": "an array of customers, or {\"customers\": [...]}; rows may carry purchases: [{ref, amount, at}]" } },
                } });
            }
            None => {}
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method.as_str().to_ascii_lowercase()] = o;
    }
    let mut schemas = g.take_definitions(true);
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": { "type": "string", "description": "a stable code: bad_request, unauthorized, forbidden, not_found, conflict, too_large, invalid_rows, invalid_rules, unprocessable, busy, unavailable…" },
                "message": { "type": "string", "description": "what is wrong, for people" },
                "field": { "type": "string", "description": "the field at fault, when one is" },
                "errors": { "type": "array", "description": "every error, for imports and rules" },
                "warnings": { "type": "array", "items": { "type": "string" } },
            },
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Contact-centre middleware: contacts from every channel in one durable queue, routed by customer value. Every operation under /api takes `Authorization: Bearer <token>`; `x-required-role` names the least role that may call it.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}
