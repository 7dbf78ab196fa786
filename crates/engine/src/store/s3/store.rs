//! [`S3Store`]: an LSU is a bucket, an image a key prefix in it ([`crate::layout`]); the
//! [`PieceStore`] operations put the rooms of this folder together.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::debug;

use super::api::{self, Listing};
use super::checksum::Checksums;
use super::client::Client;
use super::lock_probe::LockProbes;
use super::precondition::Preconditions;
use super::settings::S3Settings;
use super::{copy, multipart, reader, writer, Shared, PARTS_PER_PIECE};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::LsuFilter;
use crate::layout::{self, MAX_MANIFEST};
use crate::names;
use crate::retry::RetryPolicy;
use crate::store::{
    Kind, PieceReader, PieceStore, PieceWriter, RetentionLock, RetentionMode, Space, WormPolicy,
};

/// How long a bucket found by HeadBucket is taken to exist without asking again.
const BUCKET_TTL: Duration = Duration::from_secs(10);

pub struct S3Store {
    sh: Arc<Shared>,
    filter: LsuFilter,
    /// `None`: every bucket that ListBuckets returns and the filter accepts is an LSU, named
    /// as the bucket. `Some`: exactly these LSUs, each on its bucket (VAST views through VMS).
    buckets: RwLock<Option<BTreeMap<String, String>>>,
    preconditions: Preconditions,
    /// Which buckets hold Object Lock retention (probed before the first lock).
    lock_probes: LockProbes,
    copy_part_size: u64,
    nominal_capacity: u64,
    /// Buckets seen to exist, and when.
    seen: Mutex<HashMap<String, Instant>>,
}

impl S3Store {
    pub fn new(settings: &S3Settings, filter: LsuFilter) -> Result<S3Store> {
        Self::with_retry(settings, filter, RetryPolicy::default())
    }

    pub fn with_retry(settings: &S3Settings, filter: LsuFilter, retry: RetryPolicy) -> Result<S3Store> {
        settings.validate()?;
        let client = Client::new(
            &settings.endpoints,
            &settings.region,
            &settings.access_key,
            settings.secret_key.expose(),
            &settings.tls,
            Duration::from_secs(settings.timeout_secs),
            retry,
        )?;
        Ok(S3Store {
            sh: Arc::new(Shared {
                client,
                part_size: settings.part_size,
                workers: settings.upload_workers,
                read_ahead: settings.read_ahead,
                read_range: settings.read_range.unwrap_or(settings.part_size),
                checksums: Checksums::new(settings.checksum),
            }),
            filter,
            buckets: RwLock::new(None),
            preconditions: Preconditions::new(settings.create_mode),
            lock_probes: LockProbes::default(),
            copy_part_size: settings.copy_part_size,
            nominal_capacity: settings.nominal_capacity,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Serve exactly these LSUs (LSU name to bucket name).
    pub fn set_buckets(&self, map: BTreeMap<String, String>) {
        *self.buckets.write().unwrap_or_else(|p| p.into_inner()) = Some(map);
    }

    /// The raw client, for tools and tests that need requests the store does not make.
    pub fn client(&self) -> &Client {
        &self.sh.client
    }

    /// The bucket of `lsu` (not checked for existence).
    pub fn bucket(&self, lsu: &str) -> Result<String> {
        names::validate("LSU", lsu)?;
        match self.buckets.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(map) => map
                .get(lsu)
                .cloned()
                .ok_or_else(|| Error::not_found(format!("LSU '{lsu}' is not an S3 bucket of this server"))),
            None if !self.filter.matches(lsu) => {
                Err(Error::not_found(format!("LSU '{lsu}' is not selected by this server's lsus/lsu_prefix")))
            }
            None => Ok(lsu.to_string()),
        }
    }

    fn record_key(&self, image: &str, name: &str) -> Result<String> {
        layout::validate_owner(image)?;
        names::validate("record", name)?;
        Ok(layout::record_key(image, name))
    }

    fn head_bucket(&self, lsu: &str, bucket: &str) -> Result<()> {
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.get(bucket).is_some_and(|t| t.elapsed() < BUCKET_TTL) {
                return Ok(());
            }
        }
        api::head_bucket(&self.sh.client, bucket).map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::not_found(format!("LSU '{lsu}': bucket '{bucket}' does not exist")),
            _ => e,
        })?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(bucket.to_string(), Instant::now());
        Ok(())
    }

    /// ListObjectsV2 of `prefix`, every page (see [`api::list_objects`]).
    pub fn list_objects(&self, bucket: &str, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        api::list_objects(&self.sh.client, bucket, prefix, delimiter)
    }

    /// Multipart uploads in progress under `prefix`: (key, upload id).
    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, String)>> {
        multipart::list_uploads(&self.sh.client, bucket, prefix)
    }

    /// CreateBucket (for an S3-only setup, where there is no VMS to provision with). A bucket
    /// this user already owns is fine.
    pub fn create_bucket(&self, bucket: &str) -> Result<()> {
        api::create_bucket(&self.sh.client, bucket)
    }

    /// Abort every open upload of `bucket`, delete every object, then the bucket: for tools
    /// that made a bucket for a run (`vast-ost bench`) and leave nothing behind.
    pub fn remove_bucket(&self, bucket: &str) -> Result<()> {
        let c = &self.sh.client;
        for (key, id) in multipart::list_uploads(c, bucket, "")? {
            multipart::abort_upload(c, c.pick(), bucket, &key, &id);
        }
        let (objects, _) = api::list_objects(c, bucket, "", None)?;
        let keys: Vec<String> = objects.into_iter().map(|(k, _)| k).collect();
        for chunk in keys.chunks(1000) {
            api::delete_objects(c, bucket, chunk)?;
        }
        api::delete_bucket(c, bucket)
    }

    /// HeadObject: the size, `None` if there is no such object.
    pub fn object_size(&self, bucket: &str, key: &str) -> Result<Option<u64>> {
        api::head_size(&self.sh.client, self.sh.client.pick(), bucket, key)
    }

    /// What `lsu`'s server does with conditional writes and CRC32C (probed on first use;
    /// `None` when `create_mode` does not probe).
    pub fn features(&self, lsu: &str) -> Result<Option<super::probe::Features>> {
        self.preconditions.features(&self.sh, &self.bucket(lsu)?)
    }

    /// Abort the open uploads under `prefix` whose key `abort` accepts.
    fn abort_uploads(&self, bucket: &str, prefix: &str, abort: impl Fn(&str) -> bool) -> Result<()> {
        let c = &self.sh.client;
        for (key, id) in self.list_uploads(bucket, prefix)? {
            if key.starts_with(prefix) && abort(&key) {
                debug!("aborting multipart upload {id} of {bucket}/{key}");
                multipart::abort_upload(c, c.pick(), bucket, &key, &id);
            }
        }
        Ok(())
    }
}

impl PieceStore for S3Store {
    fn kind(&self) -> Kind {
        Kind::S3
    }

    fn describe(&self, lsu: &str) -> String {
        let ep = self.sh.client.endpoint(0).trim_end_matches('/').to_string();
        let Ok(b) = self.bucket(lsu) else { return format!("S3 {ep}") };
        match self.preconditions.features(&self.sh, &b) {
            Ok(Some(f)) => format!("S3 bucket {b} at {ep}; {f}"),
            Ok(None) => format!("S3 bucket {b} at {ep}"),
            Err(e) => format!("S3 bucket {b} at {ep}; features not probed ({e})"),
        }
    }

    fn list_lsus(&self) -> Result<Vec<String>> {
        if let Some(map) = self.buckets.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Ok(map.keys().cloned().collect());
        }
        let mut out: Vec<String> = api::list_buckets(&self.sh.client)?
            .into_iter()
            .filter(|n| names::validate("LSU", n).is_ok() && self.filter.matches(n))
            .collect();
        out.sort();
        Ok(out)
    }

    fn lsu_space(&self, lsu: &str) -> Result<Space> {
        let bucket = self.bucket(lsu)?;
        self.head_bucket(lsu, &bucket)?;
        Ok(Space { capacity: self.nominal_capacity, used: 0 })
    }

    fn list_images(&self, lsu: &str, prefix: &str) -> Result<Vec<String>> {
        let bucket = self.bucket(lsu)?;
        let (_, prefixes) = self.list_objects(&bucket, prefix, Some("/"))?;
        let mut out: Vec<String> = prefixes
            .into_iter()
            .filter_map(|p| p.strip_suffix('/').map(str::to_string))
            .filter(|n| n.starts_with(prefix) && names::validate("image", n).is_ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn read_record(&self, lsu: &str, image: &str, name: &str) -> Result<Option<Vec<u8>>> {
        let bucket = self.bucket(lsu)?;
        let key = self.record_key(image, name)?;
        let c = &self.sh.client;
        api::get_small(c, c.pick(), &bucket, &key, MAX_MANIFEST as u64).map_err(|e| {
            if e.kind() == ErrorKind::TooLong {
                Error::corrupt(format!("{bucket}/{key} is over the record limit ({e})"))
            } else {
                e
            }
        })
    }

    fn create_record(&self, lsu: &str, image: &str, name: &str, bytes: &[u8]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        self.record_key(image, name)?;
        self.preconditions.create(&self.sh, &bucket, (image, name), bytes, lsu)
    }

    fn replace_record(
        &self,
        lsu: &str,
        image: &str,
        name: &str,
        bytes: &[u8],
        expected: &[u8],
    ) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        self.record_key(image, name)?;
        self.preconditions.replace(&self.sh, &bucket, (image, name), bytes, expected)
    }

    fn delete_record(&self, lsu: &str, image: &str, name: &str) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        self.record_key(image, name)?;
        // In a way no commit in flight can undo.
        self.preconditions.delete(&self.sh, &bucket, (image, name))
    }

    fn remove_image(&self, lsu: &str, image: &str, keep: &[String]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        layout::validate_owner(image)?;
        let prefix = layout::image_prefix(image);
        // Uploads of writers that died or are still going: nothing may stay open.
        self.abort_uploads(&bucket, &prefix, |key| !keep.iter().any(|k| k == key))?;
        let (objects, _) = self.list_objects(&bucket, &prefix, None)?;
        let keys: Vec<String> = objects
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(&prefix) && !keep.contains(k))
            .collect();
        if !keys.is_empty() {
            api::delete_objects(&self.sh.client, &bucket, &keys)?;
        }
        Ok(())
    }

    fn set_retention(&self, lsu: &str, keys: &[String], until: u64, mode: RetentionMode) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        let until = jiff::Timestamp::from_second(until as i64)
            .map_err(|e| Error::invalid(format!("retention until {until}: {e}")))?;
        for key in keys {
            api::put_retention(&self.sh.client, &bucket, key, mode.as_str(), until)?;
        }
        Ok(())
    }

    fn verify_retention(&self, lsu: &str, policy: &WormPolicy) -> Result<()> {
        self.lock_probes.verify(&self.sh, &self.bucket(lsu)?, policy)
    }

    fn retention(&self, lsu: &str, key: &str) -> Result<Option<RetentionLock>> {
        let bucket = self.bucket(lsu)?;
        let (until, date) = api::get_retention(&self.sh.client, &bucket, key)?;
        let secs = |t: jiff::Timestamp| t.as_second().max(0) as u64;
        Ok(until.map(|u| {
            let now = date.map(secs).unwrap_or_else(crate::util::now_secs);
            RetentionLock { until: secs(u), active: secs(u) > now }
        }))
    }

    fn max_piece_len(&self) -> u64 {
        // Past this many parts the part size would have to grow, and memory with it.
        self.sh.part_size.saturating_mul(PARTS_PER_PIECE)
    }

    fn list_image_keys(&self, lsu: &str, image: &str) -> Result<Vec<(String, Option<Duration>)>> {
        let bucket = self.bucket(lsu)?;
        let prefix = layout::image_prefix(image);
        // Ages on the server's clock: LastModified against the listing's Date.
        let (objects, now) = api::list_timed(&self.sh.client, &bucket, &prefix)?;
        let mut out: Vec<(String, Option<Duration>)> = objects
            .into_iter()
            .filter(|o| o.key.starts_with(&prefix))
            .map(|o| {
                let age = o.modified.zip(now).and_then(|(m, n)| Duration::try_from(n.duration_since(m)).ok());
                (o.key, age)
            })
            .collect();
        for (key, _) in self.list_uploads(&bucket, &prefix)? {
            if key.starts_with(&prefix) && !out.iter().any(|(k, _)| *k == key) {
                out.push((key, None));
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove_keys(&self, lsu: &str, image: &str, keys: &[String]) -> Result<()> {
        let bucket = self.bucket(lsu)?;
        let prefix = layout::image_prefix(image);
        if let Some(k) = keys.iter().find(|k| !k.starts_with(&prefix)) {
            return Err(Error::invalid(format!("key '{k}' is not an object of image '{image}'")));
        }
        self.abort_uploads(&bucket, &prefix, |key| keys.iter().any(|k| k == key))?;
        if !keys.is_empty() {
            api::delete_objects(&self.sh.client, &bucket, keys)?;
        }
        Ok(())
    }

    fn create_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceWriter>> {
        let bucket = self.bucket(lsu)?;
        layout::split_piece_key(key)?;
        Ok(Box::new(writer::S3PieceWriter::new(self.sh.clone(), bucket, key.to_string())))
    }

    fn open_piece(&self, lsu: &str, key: &str) -> Result<Box<dyn PieceReader>> {
        let bucket = self.bucket(lsu)?;
        layout::split_piece_key(key)?;
        Ok(Box::new(reader::S3PieceReader::open(self.sh.clone(), bucket, key.to_string())?))
    }

    fn copy_piece(&self, from_lsu: &str, from_key: &str, to_lsu: &str, to_key: &str) -> Result<()> {
        let (fb, tb) = (self.bucket(from_lsu)?, self.bucket(to_lsu)?);
        layout::split_piece_key(from_key)?;
        layout::split_piece_key(to_key)?;
        let size = self
            .object_size(&fb, from_key)?
            .ok_or_else(|| Error::not_found(format!("piece {fb}/{from_key} to copy does not exist")))?;
        copy::copy_piece(&self.sh, self.copy_part_size, (&fb, from_key), (&tb, to_key), size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_map_and_filter() {
        let s = S3Settings::new(vec!["http://127.0.0.1:1".into()], "a", "b");
        let st = S3Store::new(&s, LsuFilter { names: None, prefix: Some("nb-".into()) }).unwrap();
        assert_eq!(st.bucket("nb-1").unwrap(), "nb-1");
        assert_eq!(st.bucket("other").unwrap_err().kind(), ErrorKind::NotFound);
        st.set_buckets(BTreeMap::from([("lsu1".to_string(), "bucket-one".to_string())]));
        assert_eq!(st.bucket("lsu1").unwrap(), "bucket-one");
        assert_eq!(st.bucket("nb-1").unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(st.list_lsus().unwrap(), vec!["lsu1"]);
    }
}
