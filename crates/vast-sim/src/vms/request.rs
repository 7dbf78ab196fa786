//! One VMS request as the handlers see it (method, path segments below the version, decoded
//! query, JSON body, self-link prefix, caller, tenant) and the reading of its body.

use super::list::ListQuery;
use super::response::{detail, err, not_found, Out};
use crate::server::Req;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Map, Value};

/// Everything a handler needs to know about one request.
pub struct Rq {
    pub method: http::Method,
    /// Path segments after `/api/` and the optional version segment.
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// `https://host:port/api/v5/` (or `/api/` when unversioned): the self-link prefix.
    pub prefix: String,
    /// The authenticated VMS manager.
    pub user: String,
    /// The tenant named by `X-Tenant-Name`, if any.
    pub tenant: Option<u64>,
}

impl Rq {
    /// The body as a JSON object (a missing body is an empty one), or DRF's 400.
    pub fn body_obj(&self) -> Result<Map<String, Value>, Out> {
        match &self.body {
            None => Ok(Map::new()),
            Some(Value::Object(o)) => Ok(o.clone()),
            Some(other) => Err(err(
                400,
                json!({"non_field_errors": [format!("Invalid data. Expected a dictionary, but got {}.", type_name(other))]}),
            )),
        }
    }

    /// The last value of query parameter `k`.
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query.iter().rev().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    /// The `fields=` projection asked for, if any.
    pub fn fields(&self) -> Option<Vec<String>> {
        ListQuery::parse(&self.query).ok().and_then(|q| q.fields)
    }
}

/// Python's name for a JSON value's type, as DRF puts it in messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Number(_) => "int",
        Value::Bool(_) => "bool",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

pub async fn read_body(req: Req) -> Result<(http::request::Parts, Bytes), Out> {
    let (parts, body) = req.into_parts();
    let bytes = Limited::new(body, 16 << 20)
        .collect()
        .await
        .map_err(|_| detail(400, "could not read the request body"))?
        .to_bytes();
    Ok((parts, bytes))
}

/// A blank body is no body; anything else must be JSON.
pub fn parse_json(bytes: &Bytes) -> Result<Option<Value>, Out> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| detail(400, format!("JSON parse error - {e}")))
}

/// An object id from the path; anything but a number is an unknown object.
pub fn parse_id(s: &str) -> Result<u64, Out> {
    s.parse().map_err(|_| not_found())
}
