//! How each data request proves its bytes arrived intact ([`ChecksumMode`]): the headers for
//! a body, and the mode in force, which drops to none (once, logged) when the server refuses
//! the CRC32C headers.

use std::sync::atomic::{AtomicU8, Ordering};

use base64::Engine as _;
use tracing::warn;

use super::settings::ChecksumMode;
use crate::error::{Error, ErrorKind, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The headers that carry `data`'s checksum in `mode`.
pub fn headers(mode: ChecksumMode, data: &[u8]) -> Vec<(&'static str, String)> {
    headers_known(mode, data, None)
}

/// The same, with `data`'s CRC32C when the caller has it already (the image layer computes
/// it once per byte for its block table: no second pass here).
pub fn headers_known(mode: ChecksumMode, data: &[u8], crc: Option<u32>) -> Vec<(&'static str, String)> {
    match mode {
        ChecksumMode::Crc32c => {
            let crc = crc.unwrap_or_else(|| crc32c::crc32c(data));
            vec![("x-amz-checksum-crc32c", B64.encode(crc.to_be_bytes()))]
        }
        ChecksumMode::Md5 => vec![("content-md5", B64.encode(md5(data)))],
        ChecksumMode::None => Vec::new(),
    }
}

/// The CRC32Cs of `data[..k]` and `data[k..]` given the CRC32C of `data`: the first is
/// computed, the second follows from `crc(AB) = shift(crc(A), |B|) ^ crc(B)` (a write that
/// straddles two parts; NetBackup's aligned writes never do).
pub fn split_crc(data: &[u8], crc: u32, k: usize) -> (u32, u32) {
    let (a, b) = data.split_at(k);
    let ca = crc32c::crc32c(a);
    (ca, crc ^ crate::util::crc32c_combine(ca, 0, b.len()))
}

pub fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

/// Could `e` be the server refusing the CRC32C headers? A 400 or 501 answer that is not a
/// checksum mismatch (which means the bytes changed on the way, and must never switch checks
/// off). Whether it was the headers is then decided by sending the same request without them.
fn may_refuse_checksum(e: &Error) -> bool {
    matches!(e.http_status(), Some(400 | 501)) && e.kind() != ErrorKind::Corrupt
}

/// The checksum mode in force: the configured one, or `None` after the server refused the
/// CRC32C headers.
pub struct Checksums(AtomicU8);

impl Checksums {
    pub fn new(mode: ChecksumMode) -> Checksums {
        Checksums(AtomicU8::new(match mode {
            ChecksumMode::Crc32c => 0,
            ChecksumMode::Md5 => 1,
            ChecksumMode::None => 2,
        }))
    }

    pub fn mode(&self) -> ChecksumMode {
        match self.0.load(Ordering::Relaxed) {
            0 => ChecksumMode::Crc32c,
            1 => ChecksumMode::Md5,
            _ => ChecksumMode::None,
        }
    }

    /// Send no checksum from now on (logged once, with `why`).
    pub fn disable(&self, why: &str) {
        if self.0.swap(2, Ordering::Relaxed) == 0 {
            warn!("S3: {why}; sending data without a per-request checksum from now on");
        }
    }

    /// Run `op` (a request that carries a checksum) in the mode in force. When the server
    /// refuses it in a way that may be about the CRC32C headers, `op` runs once more without
    /// them: if that succeeds, the server does not take them and the store goes on without
    /// (logged once); if not, the refusal was about something else and is returned as it was.
    pub fn with<T>(&self, op: impl Fn(ChecksumMode) -> Result<T>) -> Result<T> {
        let mode = self.mode();
        match op(mode) {
            Err(e) if mode == ChecksumMode::Crc32c && may_refuse_checksum(&e) => match op(ChecksumMode::None)
            {
                Ok(v) => {
                    if self.0.swap(2, Ordering::Relaxed) == 0 {
                        warn!(
                            "S3 server refuses x-amz-checksum-crc32c ({e}); sending data without a per-request \
                             checksum from now on (set checksum = \"md5\" for Content-MD5 checks)"
                        );
                    }
                    Ok(v)
                }
                Err(_) => Err(e),
            },
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, Remote};

    #[test]
    fn split_crcs() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let whole = crc32c::crc32c(&data);
        for k in [0, 1, 4096, 50_000, 99_999, 100_000] {
            let (a, b) = split_crc(&data, whole, k);
            assert_eq!((a, b), (crc32c::crc32c(&data[..k]), crc32c::crc32c(&data[k..])), "split at {k}");
        }
    }

    #[test]
    fn header_values() {
        // CRC32C("123456789") = e3069283, as S3 wants it: big-endian, base64.
        assert_eq!(
            headers(ChecksumMode::Crc32c, b"123456789"),
            vec![("x-amz-checksum-crc32c", "4waSgw==".to_string())]
        );
        assert_eq!(
            headers(ChecksumMode::Md5, b""),
            vec![("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg==".to_string())]
        );
        assert!(headers(ChecksumMode::None, b"x").is_empty());
    }

    #[test]
    fn falls_back_only_when_the_checksum_header_is_refused() {
        let answer = |status, kind| {
            Error::remote(kind, "refused", Remote { status, code: "X".into(), argument: None })
        };
        let c = Checksums::new(ChecksumMode::Crc32c);
        // Refused with and without the headers: about something else (If-None-Match, say).
        let r: Result<()> = c.with(|_| Err(answer(501, ErrorKind::NotSupported)));
        assert_eq!(r.unwrap_err().http_status(), Some(501));
        assert_eq!(c.mode(), ChecksumMode::Crc32c, "a refusal of something else changes nothing");
        // A checksum mismatch is corruption on the way: never a reason to stop checking.
        let calls = std::sync::Mutex::new(Vec::new());
        let r: Result<()> = c.with(|m| {
            calls.lock().unwrap().push(m);
            if m == ChecksumMode::Crc32c {
                Err(answer(400, ErrorKind::Corrupt))
            } else {
                Ok(())
            }
        });
        assert!(r.is_err());
        assert_eq!(*calls.lock().unwrap(), [ChecksumMode::Crc32c], "not tried without checksums");
        assert_eq!(c.mode(), ChecksumMode::Crc32c);
        // Refused with the headers, taken without them: the server does not take them.
        let calls = std::sync::Mutex::new(Vec::new());
        let r = c.with(|m| {
            calls.lock().unwrap().push(m);
            if m == ChecksumMode::Crc32c {
                Err(answer(400, ErrorKind::Io))
            } else {
                Ok(())
            }
        });
        assert!(r.is_ok());
        assert_eq!(*calls.lock().unwrap(), [ChecksumMode::Crc32c, ChecksumMode::None]);
        assert_eq!(c.mode(), ChecksumMode::None, "later requests go without");
    }
}
