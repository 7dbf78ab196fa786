//! What `vast-ost doctor` asks an open server beyond the OST calls: the S3 endpoints its
//! streams use, and what each bucket's server does with conditional writes and CRC32C.

use super::Server;
use crate::error::Result;
use crate::store::s3::probe::Features;
use crate::store::Kind;

impl Server {
    /// The S3 endpoint URLs (configured, or the data VIPs from VMS); empty without
    /// `[server.s3]`.
    pub fn s3_endpoints(&self) -> Vec<String> {
        self.s3.as_ref().map(|s| s.endpoints.clone()).unwrap_or_default()
    }

    /// What the S3 server of `lsu` does with `If-None-Match`, `If-Match` and CRC32C, as the
    /// store probed it (once per process and bucket); `None` for an NFS LSU, or when
    /// `create_mode` does not probe.
    pub fn s3_features(&self, lsu: &str) -> Result<Option<Features>> {
        if self.store_for(lsu)?.kind() != Kind::S3 {
            return Ok(None);
        }
        match &self.s3 {
            Some(s) => s.store.features(lsu),
            None => Ok(None),
        }
    }
}
