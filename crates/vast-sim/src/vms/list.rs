//! DRF-style list handling (reference §3, §4): `field[__lookup]=value` filters, `fields=`
//! projection, and the bare-array vs `{count,next,previous,results}` envelope with page links.
//!
//! Filters apply to the rendered objects, so computed fields (`used_capacity`, ...) filter too.
//! Related lookups map onto the flattened fields VMS returns: `policy__name` → `policy`,
//! `policy__id` → `policy_id`, `vippool__name` → `vippool`, `cluster__id` → `cluster_id`.
//! A filter on a field no object of the resource has is refused with 400 rather than silently
//! ignored (django-filter would ignore it and return everything, which would hide the bug in
//! a client relying on it; the simulator prefers to say so).

use super::request::Rq;
use super::response::{detail, ok, Res};
use crate::percent::{self, COMPONENT};
use serde_json::{json, Map, Value};

/// Query parameters that are not filters.
const CONTROL: &[&str] = &[
    "page",
    "page_size",
    "fields",
    "format",
    "ordering",
    "show_user_rules",
    "force",
    "sync",
    "archived",
    "path_type",
    "type",
];

pub struct ListQuery {
    pub filters: Vec<(String, String, Vec<String>)>,
    pub fields: Option<Vec<String>>,
    pub page: Option<usize>,
    pub page_size: Option<usize>,
}

const LOOKUPS: &[&str] = &[
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "in",
    "gt",
    "gte",
    "lt",
    "lte",
    "isnull",
];

/// Splits `name__not_icontains` into ("name", "not_icontains").
fn split_lookup(key: &str) -> (String, String) {
    if let Some((f, l)) = key.rsplit_once("__") {
        let base = l.strip_prefix("not_").unwrap_or(l);
        if LOOKUPS.contains(&base) || base == "regex" || base == "iregex" {
            return (f.to_string(), l.to_string());
        }
    }
    (key.to_string(), "exact".to_string())
}

impl ListQuery {
    pub fn parse(q: &[(String, String)]) -> Result<ListQuery, String> {
        let mut lq = ListQuery { filters: Vec::new(), fields: None, page: None, page_size: None };
        for (k, v) in q {
            match k.as_str() {
                "fields" => lq
                    .fields
                    .get_or_insert_with(Vec::new)
                    .extend(v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from)),
                "page" => lq.page = Some(parse_pos(k, v)?),
                "page_size" => lq.page_size = Some(parse_pos(k, v)?),
                k if CONTROL.contains(&k) => {}
                _ => {
                    let (field, lookup) = split_lookup(k);
                    if lookup.ends_with("regex") {
                        return Err(format!("lookup {lookup} is not supported by the simulator"));
                    }
                    match lq.filters.iter_mut().find(|(f, l, _)| *f == field && *l == lookup) {
                        Some(e) => e.2.push(v.clone()),
                        None => lq.filters.push((field, lookup, vec![v.clone()])),
                    }
                }
            }
        }
        Ok(lq)
    }
}

fn parse_pos(k: &str, v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{k} must be an integer >= 1")),
    }
}

/// Finds the value a filter field refers to in a rendered object.
fn field_value<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(field) {
        return Some(v);
    }
    if let Some((a, b)) = field.split_once("__") {
        if b == "name" {
            if let Some(v @ Value::String(_)) = obj.get(a) {
                return Some(v);
            }
            if let Some(v) = obj.get(&format!("{a}_name")) {
                return Some(v);
            }
        }
        if let Some(v) = obj.get(&format!("{a}_{b}")) {
            return Some(v);
        }
        if let Some(Value::Object(inner)) = obj.get(a) {
            return field_value(inner, b);
        }
    }
    None
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn cmp_values(v: &Value, q: &str) -> Option<std::cmp::Ordering> {
    match v {
        Value::Number(n) => n.as_f64()?.partial_cmp(&q.trim().parse::<f64>().ok()?),
        Value::String(s) => Some(s.as_str().cmp(q)),
        _ => None,
    }
}

fn eq_value(v: &Value, q: &str, ci: bool) -> bool {
    match v {
        Value::Bool(b) => {
            matches!(q.to_ascii_lowercase().as_str(), "true" | "1") == *b
                && matches!(q.to_ascii_lowercase().as_str(), "true" | "1" | "false" | "0")
        }
        Value::Number(_) => cmp_values(v, q) == Some(std::cmp::Ordering::Equal),
        Value::Null => q.eq_ignore_ascii_case("null") || q.eq_ignore_ascii_case("none"),
        Value::Array(a) => a.iter().any(|e| eq_value(e, q, ci)),
        _ => {
            let s = as_text(v);
            if ci {
                s.to_lowercase() == q.to_lowercase()
            } else {
                s == q
            }
        }
    }
}

fn matches_one(v: &Value, lookup: &str, q: &str) -> bool {
    if let Value::Array(a) = v {
        if !matches!(lookup, "isnull") {
            return a.iter().any(|e| matches_one(e, lookup, q));
        }
    }
    let s = as_text(v);
    let (sl, ql) = (s.to_lowercase(), q.to_lowercase());
    use std::cmp::Ordering::*;
    match lookup {
        "exact" => eq_value(v, q, false),
        "iexact" => eq_value(v, q, true),
        "contains" => s.contains(q),
        "icontains" => sl.contains(&ql),
        "startswith" => s.starts_with(q),
        "istartswith" => sl.starts_with(&ql),
        "endswith" => s.ends_with(q),
        "iendswith" => sl.ends_with(&ql),
        "gt" => cmp_values(v, q) == Some(Greater),
        "gte" => matches!(cmp_values(v, q), Some(Greater | Equal)),
        "lt" => cmp_values(v, q) == Some(Less),
        "lte" => matches!(cmp_values(v, q), Some(Less | Equal)),
        "isnull" => v.is_null() == matches!(ql.as_str(), "true" | "1"),
        _ => false,
    }
}

/// Applies every filter (AND across keys; `in` takes the union of comma lists and repeats).
pub fn filter(items: Vec<Value>, lq: &ListQuery) -> Result<Vec<Value>, String> {
    for (field, _, _) in &lq.filters {
        let known = items.is_empty()
            || items.iter().any(|o| o.as_object().is_some_and(|o| field_value(o, field).is_some()));
        if !known {
            return Err(format!("unknown filter field: {field}"));
        }
    }
    Ok(items
        .into_iter()
        .filter(|item| {
            let Some(obj) = item.as_object() else { return false };
            lq.filters.iter().all(|(field, lookup, vals)| {
                let v = field_value(obj, field).unwrap_or(&Value::Null);
                let (neg, base) = match lookup.strip_prefix("not_") {
                    Some(b) => (true, b),
                    None => (false, lookup.as_str()),
                };
                let hit = if base == "in" {
                    vals.iter().flat_map(|s| s.split(',')).map(str::trim).any(|q| matches_one(v, "exact", q))
                } else {
                    vals.iter().all(|q| matches_one(v, base, q))
                };
                hit != neg
            })
        })
        .collect())
}

pub fn project(v: Value, fields: &Option<Vec<String>>) -> Value {
    match (v, fields) {
        (Value::Object(o), Some(fs)) => {
            Value::Object(o.into_iter().filter(|(k, _)| fs.iter().any(|f| f == k)).collect())
        }
        (v, _) => v,
    }
}

/// Filters, paginates and projects an already rendered list (reference §3, §4).
pub fn respond(items: Vec<Value>, rq: &Rq) -> Res {
    let lq = ListQuery::parse(&rq.query).map_err(|e| detail(400, e))?;
    let mut items = items;
    if let Some(t) = rq.tenant {
        items.retain(|o| o.get("tenant_id").is_none_or(|v| v == &json!(t)));
    }
    let items = filter(items, &lq).map_err(|e| detail(400, e))?;
    let paged = lq.page_size.is_some() || lq.page.is_some();
    if !paged {
        return ok(Value::Array(items.into_iter().map(|v| project(v, &lq.fields)).collect()));
    }
    // `page` alone turns on the envelope with DRF's usual default page size.
    let size = lq.page_size.unwrap_or(50);
    let page = lq.page.unwrap_or(1);
    let count = items.len();
    let pages = count.div_ceil(size).max(1);
    if page > pages {
        return Err(detail(404, "Invalid page."));
    }
    let link = |p: usize| {
        let mut q: Vec<(String, String)> = rq.query.iter().filter(|(k, _)| k != "page").cloned().collect();
        q.push(("page".into(), p.to_string()));
        let qs: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{}={}", percent::encode(k, COMPONENT), percent::encode(v, COMPONENT)))
            .collect();
        json!(format!("{}{}/?{}", rq.prefix, rq.segs.join("/"), qs.join("&")))
    };
    let results: Vec<Value> =
        items.into_iter().skip((page - 1) * size).take(size).map(|v| project(v, &lq.fields)).collect();
    ok(json!({
        "count": count,
        "next": if page < pages { link(page + 1) } else { Value::Null },
        "previous": if page > 1 { link(page - 1) } else { Value::Null },
        "results": results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &[(&str, &str)]) -> ListQuery {
        ListQuery::parse(&s.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn lookups() {
        let items = vec![
            json!({"id": 1, "name": "alpha", "path": "/a", "tenant_id": 1, "policy": "default"}),
            json!({"id": 2, "name": "Beta", "path": "/b/x", "tenant_id": 2, "policy": "s3"}),
            json!({"id": 3, "name": "gamma", "path": "/b/y", "tenant_id": 1, "policy": "s3"}),
        ];
        let ids = |lq: ListQuery| -> Vec<u64> {
            filter(items.clone(), &lq).unwrap().iter().map(|v| v["id"].as_u64().unwrap()).collect()
        };
        assert_eq!(ids(q(&[("name", "alpha")])), vec![1]);
        assert_eq!(ids(q(&[("name__icontains", "BET")])), vec![2]);
        assert_eq!(ids(q(&[("path__startswith", "/b/")])), vec![2, 3]);
        assert_eq!(ids(q(&[("id__in", "1,3")])), vec![1, 3]);
        assert_eq!(ids(q(&[("id__in", "1"), ("id__in", "2")])), vec![1, 2]);
        assert_eq!(ids(q(&[("id__gte", "2"), ("tenant_id", "1")])), vec![3]);
        assert_eq!(ids(q(&[("name__not_in", "alpha,gamma")])), vec![2]);
        assert_eq!(ids(q(&[("policy__name", "s3")])), vec![2, 3]);
        assert_eq!(ids(q(&[("path__endswith", "y")])), vec![3]);
        assert!(filter(items.clone(), &q(&[("nosuch", "1")])).is_err());
    }
}
