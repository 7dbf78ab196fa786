//! The S3 XML documents the store reads and writes, as typed structs (quick-xml with serde).
//! Unknown elements are ignored, so servers that add their own still parse.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Parse `doc` as `T`; `what` names the request in the error.
pub fn parse<T: for<'de> Deserialize<'de>>(what: &str, doc: &str) -> Result<T> {
    quick_xml::de::from_str(doc)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{what}: the answer does not parse as S3 XML: {e}")))
}

/// Serialize a request body with its root element.
pub fn body<T: Serialize>(root: &str, doc: &T) -> String {
    quick_xml::se::to_string_with_root(root, doc).expect("S3 request documents serialize")
}

/// The name of the root element of `doc` (`None` if it has none).
pub fn root(doc: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(doc);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned())
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// `<Error>`: what an S3 server says went wrong.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorDoc {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// AWS names the offending argument or header of `InvalidArgument` and `NotImplemented`.
    pub argument_name: Option<String>,
    pub header: Option<String>,
}

/// ListObjectsV2.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    #[serde(default)]
    pub contents: Vec<ObjectEntry>,
    #[serde(default)]
    pub common_prefixes: Vec<CommonPrefix>,
    #[serde(default)]
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectEntry {
    pub key: String,
    #[serde(default)]
    pub size: u64,
    /// RFC 3339, server time.
    pub last_modified: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    pub prefix: String,
}

/// ListBuckets.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAllMyBucketsResult {
    #[serde(default)]
    pub buckets: Buckets,
}

#[derive(Debug, Default, Deserialize)]
pub struct Buckets {
    #[serde(default, rename = "Bucket")]
    pub list: Vec<BucketEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry {
    pub name: String,
}

/// ListMultipartUploads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    #[serde(default, rename = "Upload")]
    pub uploads: Vec<UploadEntry>,
    #[serde(default)]
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
}

/// CreateMultipartUpload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    #[serde(default)]
    pub upload_id: String,
}

/// UploadPartCopy and CopyObject.
#[derive(Debug, Deserialize)]
pub struct CopyResult {
    #[serde(rename = "ETag", default)]
    pub etag: String,
}

/// DeleteObjects (quiet: only the failures are listed).
#[derive(Debug, Deserialize)]
pub struct DeleteResult {
    #[serde(default, rename = "Error")]
    pub errors: Vec<DeleteError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteError {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The body of DeleteObjects.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delete<'a> {
    pub quiet: bool,
    #[serde(rename = "Object")]
    pub objects: Vec<DeleteKey<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteKey<'a> {
    pub key: &'a str,
}

/// PutObjectRetention's body and GetObjectRetention's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Retention {
    pub mode: String,
    /// RFC 3339.
    pub retain_until_date: String,
}

/// The body of CompleteMultipartUpload.
#[derive(Debug, Serialize)]
pub struct CompleteMultipartUpload<'a> {
    #[serde(rename = "Part")]
    pub parts: Vec<CompletedPart<'a>>,
}

#[derive(Debug, Serialize)]
pub struct CompletedPart<'a> {
    #[serde(rename = "PartNumber")]
    pub number: u32,
    #[serde(rename = "ETag")]
    pub etag: &'a str,
    #[serde(rename = "ChecksumCRC32C", skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse() {
        let doc = r#"<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Name>b</Name><Prefix>a</Prefix><KeyCount>2</KeyCount>
            <Contents><Key>a/b&amp;c</Key><Size>3</Size></Contents><Contents><Key>x</Key></Contents>
            <CommonPrefixes><Prefix>img/</Prefix></CommonPrefixes><Delimiter/><IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let l: ListBucketResult = parse("t", doc).unwrap();
        let keys: Vec<_> = l.contents.iter().map(|c| (c.key.as_str(), c.size)).collect();
        assert_eq!(keys, vec![("a/b&c", 3), ("x", 0)]);
        assert_eq!(l.common_prefixes[0].prefix, "img/");
        assert!(!l.is_truncated && l.next_continuation_token.is_none());
        let u: ListMultipartUploadsResult = parse(
            "t",
            "<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u1</UploadId></Upload>\
             <IsTruncated>true</IsTruncated><NextKeyMarker>k</NextKeyMarker><Upload><Key>k2</Key><UploadId>u2</UploadId></Upload>\
             </ListMultipartUploadsResult>",
        )
        .unwrap();
        assert_eq!(u.uploads.len(), 2, "interleaved lists are read whole");
        assert!(u.is_truncated);
        let b: ListAllMyBucketsResult = parse(
            "t",
            "<ListAllMyBucketsResult><Owner><ID>o</ID></Owner><Buckets><Bucket><Name>b1</Name></Bucket>\
             <Bucket><Name>b2</Name></Bucket></Buckets></ListAllMyBucketsResult>",
        )
        .unwrap();
        assert_eq!(b.buckets.list.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["b1", "b2"]);
        assert!(parse::<ListBucketResult>("t", "<ListBucketResult><IsTruncated>maybe").is_err());
    }

    #[test]
    fn errors_and_roots() {
        let e: ErrorDoc = parse(
            "t",
            "<?xml version=\"1.0\"?>\n<Error><Code>InvalidArgument</Code><Message>m &lt;1&gt;</Message>\
             <ArgumentName>x-amz-checksum-crc32c</ArgumentName></Error>",
        )
        .unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.argument_name.as_deref()),
            ("InvalidArgument", "m <1>", Some("x-amz-checksum-crc32c"))
        );
        assert_eq!(
            root("<?xml version=\"1.0\"?>\n\n  <Error><Code>X</Code></Error>").as_deref(),
            Some("Error")
        );
        assert_eq!(
            root("<CompleteMultipartUploadResult/>").as_deref(),
            Some("CompleteMultipartUploadResult")
        );
        assert_eq!(root(""), None);
    }

    #[test]
    fn request_bodies_escape() {
        let d = Delete { quiet: true, objects: vec![DeleteKey { key: "a&<b>" }] };
        assert_eq!(
            body("Delete", &d),
            "<Delete><Quiet>true</Quiet><Object><Key>a&amp;&lt;b&gt;</Key></Object></Delete>"
        );
        let c = CompleteMultipartUpload {
            parts: vec![
                CompletedPart { number: 1, etag: "\"e1\"", crc32c: Some("AAAA") },
                CompletedPart { number: 2, etag: "\"e2\"", crc32c: None },
            ],
        };
        let x = body("CompleteMultipartUpload", &c);
        assert!(x.starts_with("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"), "{x}");
        assert!(
            x.contains("<ChecksumCRC32C>AAAA</ChecksumCRC32C></Part><Part><PartNumber>2</PartNumber>"),
            "{x}"
        );
        assert!(!x.contains("<ChecksumCRC32C></ChecksumCRC32C>"), "{x}");
    }
}
