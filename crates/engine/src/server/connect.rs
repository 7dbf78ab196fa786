//! Opening a storage server: reach its data paths and, with `[server.vms]` and credentials,
//! log in to VMS and read the cluster and its data VIPs.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use super::{Nfs, Server, S3};
use crate::config::ServerConfig;
use crate::control::Control;
use crate::credentials::Credentials;
use crate::error::{Error, ErrorKind, Result};
use crate::store::nfs::NfsStore;
use crate::store::s3::{S3Settings, S3Store};
use crate::vms::Vms;

impl Server {
    /// Reach the data paths and, with `[server.vms]` and credentials, log in to VMS and read
    /// the cluster and its data VIPs.
    pub(super) fn connect(name: &str, sc: &ServerConfig, creds: Option<&Credentials>) -> Result<Server> {
        let nfs = match &sc.nfs {
            Some(cfg) => {
                match std::fs::metadata(&cfg.mount) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(Error::new(
                            ErrorKind::Connect,
                            format!(
                                "NFS mount {} of server '{name}' is not a directory",
                                cfg.mount.display()
                            ),
                        ))
                    }
                    Err(e) => {
                        return Err(Error::new(
                            ErrorKind::Connect,
                            format!(
                                "NFS mount {} of server '{name}' is not reachable: {e}",
                                cfg.mount.display()
                            ),
                        ))
                    }
                }
                let store = Arc::new(NfsStore::new(cfg, sc.filter()));
                Some(Nfs {
                    dyn_store: store.clone(),
                    store,
                    mount: cfg.mount.clone(),
                    view_root: cfg.view_root.clone(),
                })
            }
            None => None,
        };
        let (mut control, mut cluster, mut endpoints) =
            (None, None, sc.endpoints.clone().unwrap_or_default());
        if let (Some(v), Some(creds)) = (&sc.vms, creds) {
            let vms = Vms::connect(v, creds)?.with_retry(sc.retry.into());
            let c = Control::new(vms, sc.filter(), Duration::from_secs(sc.capacity_ttl_secs));
            let cl = c.cluster()?;
            info!(
                server = name,
                "VMS {}: cluster '{}' guid {} version {}", v.address, cl.name, cl.guid, cl.version
            );
            if sc.endpoints.is_none() {
                match c.vips(sc.vip_pool.as_deref()) {
                    Ok(v) => endpoints = v,
                    Err(e) => warn!(server = name, "cannot read VIP pools, data endpoints unknown: {e}"),
                }
            }
            cluster = Some(cl);
            control = Some(c);
        }
        let s3 = match (&sc.s3, creds) {
            (Some(cfg), Some(creds)) => Some(Self::s3_store(name, sc, cfg, creds, &endpoints)?),
            _ => None,
        };
        Ok(Server {
            name: name.to_string(),
            nfs,
            s3,
            control,
            cluster,
            endpoints,
            counts: Mutex::new(Default::default()),
            ttl: Duration::from_secs(sc.capacity_ttl_secs),
            liveness: crate::image::Liveness::with_silence(Duration::from_secs(sc.writer_silence_secs)),
            reference_copies: sc.reference_copies,
            open: AtomicUsize::new(0),
        })
    }

    /// The S3 store: endpoints from the config, else the data VIPs; keys from the config, else
    /// (no VMS) the credentials NetBackup handed over.
    fn s3_store(
        name: &str,
        sc: &ServerConfig,
        cfg: &S3Settings,
        creds: &Credentials,
        vips: &[String],
    ) -> Result<S3> {
        let mut cfg = cfg.clone();
        if cfg.endpoints.is_empty() {
            cfg.endpoints = cfg.vip_endpoints(vips);
            if cfg.endpoints.is_empty() {
                return Err(Error::config(format!(
                    "server '{name}': [server.s3] has no endpoints and VMS reported no data VIPs"
                )));
            }
        }
        if cfg.access_key.is_empty() {
            cfg.access_key = creds.user.clone();
            cfg.secret_key = creds.password.clone();
        }
        let store = Arc::new(S3Store::with_retry(&cfg, sc.filter(), sc.retry.into())?);
        info!(server = name, "S3 data path over {}", cfg.endpoints.join(" "));
        Ok(S3 { dyn_store: store.clone(), store, endpoints: cfg.endpoints })
    }
}
