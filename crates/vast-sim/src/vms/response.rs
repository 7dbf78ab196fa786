//! What a VMS handler answers: a status and an optional JSON body, built with the DRF-shaped
//! error bodies VMS sends (`{"detail": "…"}`, `{"<field>": ["…"]}`).

use crate::server::{empty, full, Resp};
use serde_json::{json, Value};

/// A response before it becomes HTTP: status and optional JSON body.
pub struct Out(pub u16, pub Option<Value>);

/// Handlers return errors as `Err(Out)` so `?` works; both sides are answered the same way.
pub type Res = Result<Out, Out>;

pub fn ok(v: Value) -> Res {
    Ok(Out(200, Some(v)))
}

pub fn created(v: Value) -> Res {
    Ok(Out(201, Some(v)))
}

pub fn no_content() -> Res {
    Ok(Out(204, None))
}

pub fn err(code: u16, v: Value) -> Out {
    Out(code, Some(v))
}

pub fn detail(code: u16, msg: impl Into<String>) -> Out {
    err(code, json!({"detail": msg.into()}))
}

pub fn not_found() -> Out {
    detail(404, "Not found.")
}

pub fn field_err(field: &str, msg: impl Into<String>) -> Out {
    err(400, json!({ field: [msg.into()] }))
}

pub fn method_not_allowed(m: &http::Method) -> Out {
    detail(405, format!("Method \"{m}\" not allowed."))
}

pub fn to_http(o: Out) -> Resp {
    let mut b = http::Response::builder().status(o.0);
    let body = match o.1 {
        Some(v) => {
            b = b.header("content-type", "application/json");
            full(serde_json::to_vec(&v).unwrap_or_default())
        }
        None => empty(),
    };
    b.body(body).unwrap_or_else(|_| http::Response::new(empty()))
}
