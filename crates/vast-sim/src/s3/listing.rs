//! ListObjects (v1) and ListObjectsV2: prefix, delimiter and common prefixes, markers and
//! continuation tokens, `max-keys`, `fetch-owner`, `encoding-type=url`.

use super::context::{blocking, Ctx};
use super::error::S3Err;
use super::{mtime, xml};
use crate::percent::{self, KEY_PATH};
use crate::server::Resp;
use crate::store::ObjMeta;
use crate::util::iso8601_millis;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::path::PathBuf;

enum Entry {
    Key(String, std::fs::Metadata),
    Prefix(String),
}

fn parse_max(q: &[(String, String)], name: &str) -> Result<usize, S3Err> {
    match q.iter().find(|(k, _)| k == name) {
        None => Ok(1000),
        Some((_, v)) => v.parse::<usize>().map(|n| n.min(1000)).map_err(|_| {
            S3Err::new(
                400,
                "InvalidArgument",
                format!("Provided {name} not an integer or within integer range"),
            )
        }),
    }
}

pub async fn list_objects(ctx: &Ctx, bucket: &str, q: &[(String, String)]) -> Result<Resp, S3Err> {
    let b = ctx.bucket(bucket)?;
    let qv = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let v2 = qv("list-type").as_deref() == Some("2");
    let prefix = qv("prefix").unwrap_or_default();
    let delim = qv("delimiter").unwrap_or_default();
    let max = parse_max(q, "max-keys")?;
    let url_enc = match qv("encoding-type").as_deref() {
        None => false,
        Some("url") => true,
        Some(_) => {
            return Err(S3Err::new(400, "InvalidArgument", "Invalid Encoding Method specified in Request"))
        }
    };
    // The resume point: a key (everything <= it was listed) or a common prefix (everything
    // under it was listed). V2 tokens are opaque base64 of "K:key" / "P:prefix".
    let mut after: Option<(bool, String)> = None;
    if v2 {
        if let Some(t) = qv("continuation-token") {
            let bad = || S3Err::new(400, "InvalidArgument", "The continuation token provided is incorrect");
            let raw = B64.decode(t.as_bytes()).ok().and_then(|d| String::from_utf8(d).ok());
            let raw = raw.ok_or_else(bad)?;
            after = Some(match (raw.strip_prefix("P:"), raw.strip_prefix("K:")) {
                (Some(p), _) => (true, p.to_string()),
                (_, Some(k)) => (false, k.to_string()),
                _ => return Err(bad()),
            });
        } else if let Some(sa) = qv("start-after") {
            after = Some((false, sa));
        }
    } else if let Some(m) = qv("marker") {
        after = Some((!delim.is_empty() && m.ends_with(&delim), m));
    }

    let (sh, dir, pfx) = (ctx.sh.clone(), b.dir.clone(), prefix.clone());
    let keys = blocking(move || sh.store.list_keys(&dir, &pfx)).await?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    let mut last_prefix: Option<String> = None;
    for (key, md) in keys {
        if let Some((is_p, a)) = &after {
            if key.as_str() <= a.as_str() || (*is_p && key.starts_with(a.as_str())) {
                continue;
            }
        }
        let entry = if delim.is_empty() {
            Entry::Key(key, md)
        } else {
            match key[prefix.len()..].find(&delim) {
                Some(i) => {
                    let cp = key[..prefix.len() + i + delim.len()].to_string();
                    if last_prefix.as_deref() == Some(&cp) {
                        continue;
                    }
                    last_prefix = Some(cp.clone());
                    Entry::Prefix(cp)
                }
                None => Entry::Key(key, md),
            }
        };
        if entries.len() == max {
            truncated = true;
            break;
        }
        entries.push(entry);
    }

    // ETags (MD5 of files written outside S3 is computed here, once).
    let (sh, paths): (_, Vec<(PathBuf, std::fs::Metadata)>) = (
        ctx.sh.clone(),
        entries
            .iter()
            .filter_map(|e| match e {
                Entry::Key(k, md) => Some((b.dir.join(k), md.clone())),
                Entry::Prefix(_) => None,
            })
            .collect(),
    );
    let metas: Vec<ObjMeta> =
        blocking(move || paths.iter().map(|(p, md)| sh.store.meta(p, md)).collect()).await?;

    let enc = |s: &str| if url_enc { percent::encode(s, KEY_PATH) } else { s.to_string() };
    let last = entries.last().map(|e| match e {
        Entry::Key(k, _) => format!("K:{k}"),
        Entry::Prefix(p) => format!("P:{p}"),
    });
    let fetch_owner = !v2 || qv("fetch-owner").as_deref() == Some("true");
    let key_count = entries.len();
    let mut metas = metas.into_iter();
    let items = entries
        .into_iter()
        .map(|e| match e {
            Entry::Key(k, md) => xml::ListEntry::Contents(xml::Contents {
                key: enc(&k),
                last_modified: iso8601_millis(mtime(&md)),
                etag: metas.next().unwrap_or_default().etag,
                size: md.len(),
                owner: fetch_owner.then(|| xml::Owner::user(&b.owner)),
                storage_class: "STANDARD",
            }),
            Entry::Prefix(p) => xml::ListEntry::CommonPrefixes(xml::CommonPrefix { prefix: enc(&p) }),
        })
        .collect();
    let mut doc = xml::ListBucketResult {
        xmlns: xml::Xmlns,
        name: bucket.to_string(),
        prefix: enc(&prefix),
        delimiter: (!delim.is_empty()).then(|| enc(&delim)),
        max_keys: max,
        encoding_type: url_enc.then_some("url"),
        is_truncated: truncated,
        key_count: None,
        continuation_token: None,
        start_after: None,
        next_continuation_token: None,
        marker: None,
        next_marker: None,
        entries: items,
    };
    if v2 {
        doc.key_count = Some(key_count);
        doc.continuation_token = qv("continuation-token");
        doc.start_after = qv("start-after").map(|sa| enc(&sa));
        doc.next_continuation_token = last.filter(|_| truncated).map(|l| B64.encode(l));
    } else {
        doc.marker = Some(enc(&qv("marker").unwrap_or_default()));
        doc.next_marker = last.filter(|_| truncated && !delim.is_empty()).map(|l| enc(&l[2..]));
    }
    xml::response(&doc)
}
