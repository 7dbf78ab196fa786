//! The S3 XML documents, typed: the request bodies the simulator reads (CompleteMultipartUpload,
//! Delete) and every response body, both through quick-xml's serde support. Element names and
//! order are those of the S3 API reference; responses carry the S3 namespace where S3 does.
//!
//! Responses are written with every predefined entity escaped (`"` and `'` too) and empty
//! elements as `<A></A>`, which is what the simulator sent before it used quick-xml.
//!
//! One job, the XML vocabulary; the file is long because S3 has many documents.

use super::error::{internal, S3Err};
use crate::server::{empty, full, Resp};
use quick_xml::events::Event;
use quick_xml::se::{QuoteLevel, Serializer};
use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

const HEADER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"` on a response's root element.
#[derive(Clone, Copy, Default)]
pub struct Xmlns;

impl Serialize for Xmlns {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("http://s3.amazonaws.com/doc/2006-03-01/")
    }
}

/// The XML text of `doc`, whose root element is named after its type (or `serde(rename)`).
pub fn to_string<T: Serialize>(doc: &T) -> Result<String, quick_xml::SeError> {
    let mut s = String::from(HEADER);
    let mut ser = Serializer::new(&mut s);
    ser.expand_empty_elements(true);
    ser.set_quote_level(QuoteLevel::Full);
    doc.serialize(ser)?;
    Ok(s)
}

/// A 200 response carrying `doc`.
pub fn response<T: Serialize>(doc: &T) -> Result<Resp, S3Err> {
    let body = to_string(doc).map_err(internal)?;
    Ok(http::Response::builder()
        .status(200)
        .header("content-type", "application/xml")
        .body(full(body))
        .unwrap_or_else(|_| http::Response::new(empty())))
}

pub fn malformed() -> S3Err {
    S3Err::new(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )
}

/// Reads a request document whose root element must be `root` (namespace prefix aside);
/// anything else, or a document that does not fit `T`, is `MalformedXML`.
fn parse<T: DeserializeOwned>(doc: &str, root: &str) -> Result<T, S3Err> {
    let mut r = quick_xml::Reader::from_str(doc);
    let first = loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => break e.local_name().as_ref().to_vec(),
            Ok(Event::Eof) | Err(_) => return Err(malformed()),
            Ok(_) => {}
        }
    };
    if first != root.as_bytes() {
        return Err(malformed());
    }
    quick_xml::de::from_str(doc).map_err(|_| malformed())
}

// ---------------------------------------------------------------------------------------
// Request bodies

/// The body of PutObjectRetention, and GetObjectRetention's answer.
#[derive(Debug, Deserialize, Serialize)]
pub struct Retention {
    #[serde(rename = "Mode")]
    pub mode: String,
    #[serde(rename = "RetainUntilDate")]
    pub retain_until_date: String,
}

impl Retention {
    pub fn parse(doc: &str) -> Result<Self, S3Err> {
        parse(doc, "Retention")
    }
}

/// The body of CompleteMultipartUpload.
#[derive(Debug, Deserialize)]
pub struct CompleteMultipartUpload {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    #[serde(rename = "PartNumber")]
    pub number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "ChecksumCRC32C")]
    pub checksum_crc32c: Option<String>,
}

impl CompleteMultipartUpload {
    pub fn parse(doc: &str) -> Result<Self, S3Err> {
        parse(doc, "CompleteMultipartUpload")
    }
}

/// The body of DeleteObjects.
#[derive(Debug, Deserialize)]
pub struct Delete {
    #[serde(rename = "Quiet")]
    pub quiet: Option<String>,
    #[serde(rename = "Object", default)]
    pub objects: Vec<ObjectIdentifier>,
}

#[derive(Debug, Deserialize)]
pub struct ObjectIdentifier {
    #[serde(rename = "Key")]
    pub key: String,
}

impl Delete {
    pub fn parse(doc: &str) -> Result<Self, S3Err> {
        parse(doc, "Delete")
    }

    /// `<Quiet>true</Quiet>`: report only the keys that could not be deleted.
    pub fn is_quiet(&self) -> bool {
        self.quiet.as_deref().is_some_and(|q| q.trim() == "true")
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// `Owner` and `Initiator`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Owner {
    #[serde(rename = "ID")]
    pub id: String,
    pub display_name: String,
}

impl Owner {
    /// A local user, who is their own display name.
    pub fn user(name: &str) -> Owner {
        Owner { id: name.to_string(), display_name: name.to_string() }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub owner: Owner,
    pub buckets: Buckets,
}

#[derive(Serialize)]
pub struct Buckets {
    #[serde(rename = "Bucket")]
    pub buckets: Vec<BucketEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry {
    pub name: String,
    pub creation_date: String,
}

/// ListObjects (v1: `marker` set) and ListObjectsV2 (v2: `key_count` set).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub name: String,
    pub prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    pub max_keys: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<&'static str>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// Keys and common prefixes in key order.
    #[serde(rename = "$value")]
    pub entries: Vec<ListEntry>,
}

#[derive(Serialize)]
pub enum ListEntry {
    Contents(Contents),
    CommonPrefixes(CommonPrefix),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contents {
    pub key: String,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub storage_class: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    pub prefix: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub location: String,
    pub bucket: String,
    pub key: String,
    #[serde(rename = "ETag")]
    pub etag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyObjectResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyPartResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "ChecksumCRC32C", skip_serializing_if = "Option::is_none")]
    pub checksum_crc32c: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPartsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    pub initiator: Owner,
    pub owner: Owner,
    pub storage_class: &'static str,
    pub part_number_marker: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_part_number_marker: Option<u32>,
    pub max_parts: usize,
    pub is_truncated: bool,
    #[serde(rename = "Part")]
    pub parts: Vec<PartEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartEntry {
    pub part_number: u32,
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    pub size: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    pub bucket: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_upload_id_marker: Option<String>,
    pub prefix: String,
    pub max_uploads: usize,
    pub is_truncated: bool,
    #[serde(rename = "Upload")]
    pub uploads: Vec<UploadEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    pub initiator: Owner,
    pub owner: Owner,
    pub storage_class: &'static str,
    pub initiated: String,
}

#[derive(Serialize)]
pub struct DeleteResult {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
    /// One entry per requested key, in request order.
    #[serde(rename = "$value")]
    pub results: Vec<DeleteOutcome>,
}

#[derive(Serialize)]
pub enum DeleteOutcome {
    Deleted {
        #[serde(rename = "Key")]
        key: String,
    },
    Error {
        #[serde(rename = "Key")]
        key: String,
        #[serde(rename = "Code")]
        code: String,
        #[serde(rename = "Message")]
        message: String,
    },
}

/// `<LocationConstraint>`: empty, the default region.
#[derive(Serialize)]
pub struct LocationConstraint {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
}

/// `<VersioningConfiguration>`: empty, versioning never enabled.
#[derive(Serialize)]
pub struct VersioningConfiguration {
    #[serde(rename = "@xmlns")]
    pub xmlns: Xmlns,
}

/// The body of an S3 error: `Code`, `Message`, the code's own elements (their names vary, so
/// this is serialized by hand), `Resource`, `RequestId`. No namespace, as S3 sends it.
pub struct Error<'a> {
    pub code: &'a str,
    pub message: &'a str,
    pub extra: &'a [(&'static str, String)],
    pub resource: &'a str,
    pub request_id: &'a str,
}

impl Serialize for Error<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut e = s.serialize_struct("Error", 4 + self.extra.len())?;
        e.serialize_field("Code", self.code)?;
        e.serialize_field("Message", self.message)?;
        for (tag, v) in self.extra {
            e.serialize_field(tag, v)?;
        }
        e.serialize_field("Resource", self.resource)?;
        e.serialize_field("RequestId", self.request_id)?;
        e.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let d = r#"<?xml version="1.0"?><CompleteMultipartUpload xmlns="x"><Part><PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>"cd"</ETag><ChecksumCRC32C>AAAAAA==</ChecksumCRC32C><ChecksumSHA1>x</ChecksumSHA1></Part></CompleteMultipartUpload>"#;
        let c = CompleteMultipartUpload::parse(d).unwrap();
        assert_eq!(c.parts.len(), 2);
        assert_eq!((c.parts[0].number, c.parts[0].etag.as_str()), (1, "\"ab\""));
        assert_eq!(c.parts[1].checksum_crc32c.as_deref(), Some("AAAAAA=="));
        let prefixed = "<s3:CompleteMultipartUpload xmlns:s3=\"x\"><s3:Part><s3:PartNumber>3</s3:PartNumber><s3:ETag>e</s3:ETag></s3:Part></s3:CompleteMultipartUpload>";
        assert_eq!(CompleteMultipartUpload::parse(prefixed).unwrap().parts[0].number, 3);
        assert!(CompleteMultipartUpload::parse("<Delete></Delete>").is_err());
        assert!(CompleteMultipartUpload::parse("<not xml").is_err());
        let bad =
            "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>";
        assert!(CompleteMultipartUpload::parse(bad).is_err());

        let d = Delete::parse("<Delete>\n  <Quiet>true</Quiet>\n  <Object><Key>a&amp;b</Key><VersionId>1</VersionId></Object>\n</Delete>").unwrap();
        assert!(d.is_quiet());
        assert_eq!(d.objects[0].key, "a&b");
        assert!(!Delete::parse("<Delete><Quiet/><Object><Key>k</Key></Object></Delete>").unwrap().is_quiet());
        assert!(Delete::parse("<Delete><Object></Object></Delete>").is_err());
    }

    #[test]
    fn responses() {
        let l = ListBucketResult {
            xmlns: Xmlns,
            name: "b".into(),
            prefix: String::new(),
            delimiter: Some("/".into()),
            max_keys: 2,
            encoding_type: None,
            is_truncated: false,
            key_count: Some(2),
            continuation_token: None,
            start_after: None,
            next_continuation_token: None,
            marker: None,
            next_marker: None,
            entries: vec![
                ListEntry::CommonPrefixes(CommonPrefix { prefix: "a/".into() }),
                ListEntry::Contents(Contents {
                    key: "k<&>\"'".into(),
                    last_modified: "t".into(),
                    etag: "\"e\"".into(),
                    size: 3,
                    owner: Some(Owner::user("o")),
                    storage_class: "STANDARD",
                }),
            ],
        };
        assert_eq!(
            to_string(&l).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix></Prefix><Delimiter>/</Delimiter><MaxKeys>2</MaxKeys><IsTruncated>false</IsTruncated><KeyCount>2</KeyCount><CommonPrefixes><Prefix>a/</Prefix></CommonPrefixes><Contents><Key>k&lt;&amp;&gt;&quot;&apos;</Key><LastModified>t</LastModified><ETag>&quot;e&quot;</ETag><Size>3</Size><Owner><ID>o</ID><DisplayName>o</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>"
        );
        let e = Error {
            code: "NoSuchKey",
            message: "m",
            extra: &[("Key", "k".into())],
            resource: "/b/k",
            request_id: "R",
        };
        assert_eq!(
            to_string(&e).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>m</Message><Key>k</Key><Resource>/b/k</Resource><RequestId>R</RequestId></Error>"
        );
        let d = DeleteResult {
            xmlns: Xmlns,
            results: vec![
                DeleteOutcome::Deleted { key: "a".into() },
                DeleteOutcome::Error { key: "b".into(), code: "C".into(), message: "M".into() },
            ],
        };
        assert!(to_string(&d).unwrap().ends_with("<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>C</Code><Message>M</Message></Error></DeleteResult>"));
    }
}
