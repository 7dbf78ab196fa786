//! The field-schema engine of the VMS resources, in the manner of DRF serializers: each
//! resource declares its writable fields with a [`K`]ind; [`take`] type-checks and coerces a
//! request body against that list (unknown fields ignored), [`immutable`] refuses changes to
//! fields fixed at creation, and the `*_of` helpers read stored objects.

use super::response::{err, field_err, Out};
use super::state::Obj;
use serde_json::{json, Map, Value};

/// The kind of a writable field: what [`coerce`] accepts for it.
#[derive(Clone, Copy)]
pub enum K {
    Str,
    Int,
    Bool,
    StrList,
    IntList,
    Any,
}

/// Type-checks one value the way DRF fields do (numbers as strings, "true"/1 as booleans, …);
/// null is always accepted. The error is DRF's message.
pub fn coerce(kind: K, v: &Value) -> Result<Value, &'static str> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    match kind {
        K::Any => Ok(v.clone()),
        K::Str => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(json!(n.to_string())),
            _ => Err("Not a valid string."),
        },
        K::Int => match v {
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(v.clone()),
            Value::String(s) => {
                s.trim().parse::<i64>().map(|n| json!(n)).map_err(|_| "A valid integer is required.")
            }
            _ => Err("A valid integer is required."),
        },
        K::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if matches!(s.to_lowercase().as_str(), "true" | "1") => Ok(json!(true)),
            Value::String(s) if matches!(s.to_lowercase().as_str(), "false" | "0") => Ok(json!(false)),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(json!(true)),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(json!(false)),
            _ => Err("Must be a valid boolean."),
        },
        K::StrList => match v {
            Value::Array(a) if a.iter().all(Value::is_string) => Ok(v.clone()),
            Value::Array(_) => Err("Not a valid string."),
            _ => Err("Expected a list of items."),
        },
        K::IntList => match v {
            Value::Array(a) if a.iter().all(|x| x.is_u64() || x.is_i64()) => Ok(v.clone()),
            Value::Array(_) => Err("A valid integer is required."),
            _ => Err("Expected a list of items."),
        },
    }
}

/// Takes the known fields of `spec` out of a request body, type-checked. Unknown fields are
/// ignored, as DRF serializers do.
pub fn take(b: &Map<String, Value>, spec: &[(&str, K)]) -> Result<Obj, Out> {
    let mut out = Obj::new();
    let mut errs = Map::new();
    for (f, k) in spec {
        if let Some(v) = b.get(*f) {
            match coerce(*k, v) {
                Ok(v) => {
                    out.insert((*f).into(), v);
                }
                Err(m) => {
                    errs.insert((*f).into(), json!([m]));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(err(400, Value::Object(errs)))
    }
}

/// A required, non-blank string field, with DRF's message for each way it can be missing.
pub fn required_str(b: &Map<String, Value>, f: &str) -> Result<String, Out> {
    match b.get(f) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(field_err(f, "This field may not be blank.")),
        Some(Value::Null) => Err(field_err(f, "This field may not be null.")),
        Some(_) => Err(field_err(f, "Not a valid string.")),
        None => Err(field_err(f, "This field is required.")),
    }
}

/// Refuses a PATCH that would change any of `fields` (sending the current value is fine; an
/// integer may be sent as its decimal string).
pub fn immutable(cur: &Obj, b: &Map<String, Value>, fields: &[&str]) -> Result<(), Out> {
    for f in fields {
        if let Some(v) = b.get(*f) {
            let same = cur.get(*f) == Some(v)
                || (v.as_str().is_some()
                    && cur.get(*f).and_then(Value::as_u64).map(|n| n.to_string()).as_deref() == v.as_str());
            if !same {
                return Err(field_err(f, "This field cannot be changed after creation."));
            }
        }
    }
    Ok(())
}

/// VAST view paths: absolute, no trailing slash (except `/` itself), no empty or dot parts.
pub fn valid_vast_path(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && !p.ends_with('/')
            && p[1..].split('/').all(|s| !s.is_empty() && s != "." && s != ".."))
}

pub fn u64_of(o: &Obj, f: &str) -> Option<u64> {
    o.get(f).and_then(Value::as_u64)
}
pub fn str_of<'a>(o: &'a Obj, f: &str) -> Option<&'a str> {
    o.get(f).and_then(Value::as_str)
}
