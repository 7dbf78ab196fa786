//! Minimal XML for S3: building responses by hand and pulling the few request documents S3
//! clients send (`CompleteMultipartUpload`, `Delete`) apart. Both are flat and small, so a
//! tag scanner is enough and keeps quick-xml out of the dependency tree.

use crate::util::{xml_escape, xml_unescape};

pub const HEADER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Appends `<tag>escaped text</tag>`.
pub fn el(out: &mut String, tag: &str, text: &str) {
    out.push('<');
    out.push_str(tag);
    out.push('>');
    out.push_str(&xml_escape(text));
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}

/// Inner text of every `<tag …>…</tag>` at any depth (the tags S3 uses never nest in
/// themselves). Namespace prefixes on the tag are accepted.
pub fn children<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let Some(end) = rest.find('>') else { break };
        let head = &rest[..end];
        let name = head.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        if local == tag && !head.ends_with('/') && !head.starts_with('/') {
            let body = &rest[end + 1..];
            let close = format!("</{name}>");
            if let Some(j) = body.find(&close) {
                out.push(&body[..j]);
                rest = &body[j + close.len()..];
                continue;
            }
            break;
        } else if local == tag && head.ends_with('/') {
            out.push("");
        }
        rest = &rest[end + 1..];
    }
    out
}

/// Unescaped text of the first `<tag>`.
pub fn text(doc: &str, tag: &str) -> Option<String> {
    children(doc, tag).first().and_then(|s| xml_unescape(s.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan() {
        let d = r#"<?xml version="1.0"?><CompleteMultipartUpload xmlns="x"><Part><PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>"cd"</ETag></Part></CompleteMultipartUpload>"#;
        let parts = children(d, "Part");
        assert_eq!(parts.len(), 2);
        assert_eq!(text(parts[0], "ETag").unwrap(), "\"ab\"");
        assert_eq!(text(parts[1], "PartNumber").unwrap(), "2");
        assert_eq!(children("<Delete><Quiet/></Delete>", "Quiet"), vec![""]);
    }
}
