//! AWS Signature Version 4 verification, both forms: the `Authorization: AWS4-HMAC-SHA256 …`
//! header and presigned URLs (`X-Amz-Signature` in the query). The canonical request is
//! rebuilt from what was received exactly as the AWS spec says (each path segment and query
//! component URI-encoded once, sorted query, signed headers trimmed and joined), so any
//! client that signs correctly passes and any deviation yields `SignatureDoesNotMatch`.
//! The region in the credential scope is not checked (VAST ignores it, reference §10).

use super::error::S3Err;
use crate::percent::{self, COMPONENT};
use crate::util::{parse_amz_date, unix_now};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// The parsed, not yet verified, signature of one request.
#[derive(Debug, Clone)]
pub struct SigRequest {
    pub access_key: String,
    scope_date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    amz_date: String,
    /// The payload hash that went into the signature (a hex hash or `UNSIGNED-PAYLOAD`).
    pub payload_hash: String,
    presigned: bool,
    expires: Option<u64>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Splits `AK/date/region/service/aws4_request`.
fn parse_credential(c: &str) -> Result<(String, String, String, String), S3Err> {
    let parts: Vec<&str> = c.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" || parts[0].is_empty() {
        return Err(S3Err::new(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."));
    }
    Ok((parts[0].into(), parts[1].into(), parts[2].into(), parts[3].into()))
}

/// Finds the signature in a request. `Ok(None)` means anonymous.
pub fn parse(headers: &HeaderMap, query: &[(String, String)]) -> Result<Option<SigRequest>, S3Err> {
    let q = |k: &str| query.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str());
    if let Some(auth) = header_str(headers, "authorization") {
        let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") else {
            if auth.starts_with("AWS ") {
                return Err(S3Err::new(
                    403,
                    "AccessDenied",
                    "AWS Signature Version 2 is blocked on this cluster (s3_block_v2_authentication)",
                ));
            }
            return Err(S3Err::new(400, "InvalidArgument", "Unsupported Authorization Type"));
        };
        let (mut cred, mut sh, mut sig) = (None, None, None);
        for item in rest.split(',') {
            let item = item.trim();
            if let Some((k, v)) = item.split_once('=') {
                match k.trim() {
                    "Credential" => cred = Some(v.trim()),
                    "SignedHeaders" => sh = Some(v.trim()),
                    "Signature" => sig = Some(v.trim()),
                    _ => {}
                }
            }
        }
        let malformed =
            || S3Err::new(400, "AuthorizationHeaderMalformed", "The authorization header is malformed");
        let (cred, sh, sig) =
            (cred.ok_or_else(malformed)?, sh.ok_or_else(malformed)?, sig.ok_or_else(malformed)?);
        let (access_key, scope_date, region, service) = parse_credential(cred)?;
        let amz_date = header_str(headers, "x-amz-date")
            .ok_or_else(|| {
                S3Err::new(
                    403,
                    "AccessDenied",
                    "AWS authentication requires a valid Date or x-amz-date header",
                )
            })?
            .to_string();
        let payload_hash = header_str(headers, "x-amz-content-sha256")
            .ok_or_else(|| {
                S3Err::new(
                    400,
                    "InvalidRequest",
                    "Missing required header for this request: x-amz-content-sha256",
                )
            })?
            .to_string();
        return Ok(Some(SigRequest {
            access_key,
            scope_date,
            region,
            service,
            signed_headers: sh.split(';').map(|s| s.to_ascii_lowercase()).collect(),
            signature: sig.to_ascii_lowercase(),
            amz_date,
            payload_hash,
            presigned: false,
            expires: None,
        }));
    }
    if let Some(alg) = q("X-Amz-Algorithm") {
        if alg != "AWS4-HMAC-SHA256" {
            return Err(S3Err::new(
                400,
                "AuthorizationQueryParametersError",
                "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
            ));
        }
        let missing = || {
            S3Err::new(400, "AuthorizationQueryParametersError", "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
        };
        let cred = q("X-Amz-Credential").ok_or_else(missing)?;
        let (access_key, scope_date, region, service) = parse_credential(cred)?;
        let expires: u64 = q("X-Amz-Expires").ok_or_else(missing)?.parse().map_err(|_| missing())?;
        if expires > 604_800 {
            return Err(S3Err::new(
                400,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            ));
        }
        let payload_hash = header_str(headers, "x-amz-content-sha256")
            .or_else(|| q("X-Amz-Content-Sha256"))
            .unwrap_or(UNSIGNED)
            .to_string();
        return Ok(Some(SigRequest {
            access_key,
            scope_date,
            region,
            service,
            signed_headers: q("X-Amz-SignedHeaders")
                .ok_or_else(missing)?
                .split(';')
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            signature: q("X-Amz-Signature").ok_or_else(missing)?.to_ascii_lowercase(),
            amz_date: q("X-Amz-Date").ok_or_else(missing)?.to_string(),
            payload_hash,
            presigned: true,
            expires: Some(expires),
        }));
    }
    Ok(None)
}

/// Canonical URI: each raw segment decoded then encoded once (so `%2F` inside a segment stays
/// encoded and `/` separators stay separators).
fn canonical_uri(raw_path: &str) -> Option<String> {
    let segs: Option<Vec<String>> = raw_path
        .split('/')
        .map(|s| percent::decode(s, false).map(|d| percent::encode(&d, COMPONENT)))
        .collect();
    let p = segs?.join("/");
    Some(if p.is_empty() { "/".into() } else { p })
}

fn canonical_query(raw_query: &str, presigned: bool) -> Option<String> {
    let mut pairs = Vec::new();
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (k, v) = (percent::decode(k, false)?, percent::decode(v, false)?);
        if presigned && k == "X-Amz-Signature" {
            continue;
        }
        pairs.push((percent::encode(&k, COMPONENT), percent::encode(&v, COMPONENT)));
    }
    pairs.sort();
    Some(pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
}

fn canonical_header_value(h: &HeaderMap, name: &str) -> String {
    h.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(",")
}

impl SigRequest {
    /// Builds the string to sign for this request.
    pub fn string_to_sign(
        &self,
        method: &str,
        raw_path: &str,
        raw_query: &str,
        headers: &HeaderMap,
    ) -> Option<String> {
        let mut creq = String::new();
        creq.push_str(method);
        creq.push('\n');
        creq.push_str(&canonical_uri(raw_path)?);
        creq.push('\n');
        creq.push_str(&canonical_query(raw_query, self.presigned)?);
        creq.push('\n');
        for h in &self.signed_headers {
            creq.push_str(h);
            creq.push(':');
            creq.push_str(&canonical_header_value(headers, h));
            creq.push('\n');
        }
        creq.push('\n');
        creq.push_str(&self.signed_headers.join(";"));
        creq.push('\n');
        creq.push_str(&self.payload_hash);
        let scope = format!("{}/{}/{}/aws4_request", self.scope_date, self.region, self.service);
        Some(format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.amz_date,
            hex::encode(Sha256::digest(creq.as_bytes()))
        ))
    }

    /// Checks time, scope and signature against the secret of `access_key`.
    pub fn verify(
        &self,
        secret: &str,
        method: &str,
        raw_path: &str,
        raw_query: &str,
        headers: &HeaderMap,
    ) -> Result<(), S3Err> {
        let t = parse_amz_date(&self.amz_date).ok_or_else(|| {
            S3Err::new(
                403,
                "AccessDenied",
                "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
            )
        })?;
        if !self.amz_date.starts_with(&self.scope_date) || self.service != "s3" {
            return Err(S3Err::new(
                403,
                "SignatureDoesNotMatch",
                "The credential scope does not match the request date or service",
            ));
        }
        let now = unix_now().as_secs();
        match self.expires {
            Some(exp) => {
                if now + 900 < t {
                    return Err(S3Err::new(403, "AccessDenied", "Request is not valid yet"));
                }
                if now > t + exp {
                    return Err(S3Err::new(403, "AccessDenied", "Request has expired"));
                }
            }
            None => {
                if now.abs_diff(t) > 900 {
                    return Err(S3Err::new(
                        403,
                        "RequestTimeTooSkewed",
                        "The difference between the request time and the current time is too large.",
                    ));
                }
            }
        }
        if self.payload_hash.starts_with("STREAMING-") {
            return Err(S3Err::new(501, "NotImplemented", "aws-chunked streaming payloads are not supported by vast-sim; use a signed or UNSIGNED-PAYLOAD body"));
        }
        if self.payload_hash != UNSIGNED && !is_sha256_hex(&self.payload_hash) {
            return Err(S3Err::new(
                400,
                "InvalidArgument",
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 hex digest",
            ));
        }
        let sts = self
            .string_to_sign(method, raw_path, raw_query, headers)
            .ok_or_else(|| S3Err::new(400, "InvalidURI", "Couldn't parse the specified URI."))?;
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), self.scope_date.as_bytes());
        let k_region = hmac(&k_date, self.region.as_bytes());
        let k_service = hmac(&k_region, self.service.as_bytes());
        let k_signing = hmac(&k_service, b"aws4_request");
        let expected = hex::encode(hmac(&k_signing, sts.as_bytes()));
        // Constant-time compare of the hex strings.
        let same = expected.len() == self.signature.len()
            && expected.bytes().zip(self.signature.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same {
            Ok(())
        } else {
            Err(S3Err::new(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
                .with("AWSAccessKeyId", self.access_key.as_str())
                .with("StringToSign", sts)
                .with("SignatureProvided", self.signature.as_str()))
        }
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// The "GET Object" example of the AWS SigV4 documentation (header form). Checked
    /// against the canonical request rules only; the time check is bypassed by calling
    /// `string_to_sign` directly and signing with the documented key.
    #[test]
    fn aws_documented_get_object_example() {
        let mut h = HeaderMap::new();
        h.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        h.insert("range", "bytes=0-9".parse().unwrap());
        h.insert("x-amz-content-sha256", EMPTY_SHA256.parse().unwrap());
        h.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                .parse()
                .unwrap(),
        );
        let sig = parse(&h, &[]).unwrap().unwrap();
        let sts = sig.string_to_sign("GET", "/test.txt", "", &h).unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let k = hmac(format!("AWS4{secret}").as_bytes(), b"20130524");
        let k = hmac(&hmac(&hmac(&k, b"us-east-1"), b"s3"), b"aws4_request");
        assert_eq!(
            hex::encode(hmac(&k, sts.as_bytes())),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical_uri("/b/a%20b/c%2Fd").unwrap(), "/b/a%20b/c%2Fd");
        assert_eq!(canonical_uri("/b/a+b~").unwrap(), "/b/a%2Bb~");
        assert_eq!(
            canonical_query("uploads&prefix=a%2Fb&list-type=2", false).unwrap(),
            "list-type=2&prefix=a%2Fb&uploads="
        );
    }
}
