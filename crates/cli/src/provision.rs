//! `vast-ost provision`: create an LSU on VAST as an admin would before
//! `nbdevconfig -previewdv`: a view (NFS directory or S3 bucket), its quota, and for S3 the
//! bucket owner and an access key. It talks to VMS directly (the plug-in only reads VMS);
//! every step looks first and creates only what is missing, so it can be run again.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vast_ost_engine::vms::{query_value as q, AuthScheme, Vms, VmsSettings};
use vast_ost_engine::{Credentials, Secret};

use crate::fmt::human;

/// What to create: the `provision` command's arguments (the VMS credentials are the global
/// --user/--password).
#[derive(clap::Args)]
pub struct Provision {
    /// VMS address: host, host:port or https://host:port
    #[arg(long, value_name = "ADDRESS", env = "VAST_OST_VMS")]
    pub vms: String,
    /// PEM file of the CA that signed the VMS certificate
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Do not verify the VMS certificate
    #[arg(long)]
    pub insecure: bool,
    /// VMS API version segment
    #[arg(long, default_value = "latest")]
    pub api_version: String,
    /// LSU name: the view name (NFS) or bucket name (S3)
    pub name: String,
    /// Make an S3 bucket (default: an NFS view)
    #[arg(long)]
    pub s3: bool,
    /// View path on the cluster [default: /<name>]
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Quota hard limit on the view's path (e.g. 10TiB)
    #[arg(long, value_name = "SIZE", value_parser = crate::fmt::parse_size)]
    pub quota: Option<u64>,
    /// View policy [default: default, or s3_default_policy with --s3]
    #[arg(long)]
    pub policy: Option<String>,
    /// Bucket owner user (S3) [default: the LSU name]
    #[arg(long)]
    pub owner: Option<String>,
    /// Also create an S3 access key for the owner and print it
    #[arg(long)]
    pub access_key: bool,
    /// A WORM-enabled view, in this retention mode: S3 Object Lock (with versioning) for a
    /// bucket, file retention for NFS. Set at creation only: VAST cannot turn it off
    #[arg(long, value_name = "MODE", value_enum)]
    pub worm: Option<WormMode>,
    /// Shortest retention lock the view takes (VAST period: 30m, 12h, 2d, 1w, 6M, 1y)
    #[arg(long, value_name = "PERIOD", requires = "worm")]
    pub min_retention: Option<String>,
    /// Longest retention lock the view takes
    #[arg(long, value_name = "PERIOD", requires = "worm")]
    pub max_retention: Option<String>,
    /// Lock every new object or file for this long even before NetBackup locks it
    #[arg(long, value_name = "PERIOD", requires = "worm")]
    pub default_retention: Option<String>,
    /// Print nothing but errors (the chaos run provisions every iteration).
    #[arg(skip)]
    pub quiet: bool,
}

/// Retention modes of a WORM view.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum WormMode {
    /// Nobody can shorten or remove a lock, not even the cluster's administrators
    Compliance,
    /// Privileged administrators of the cluster can remove locks
    Governance,
}

impl WormMode {
    fn vast(self) -> &'static str {
        match self {
            WormMode::Compliance => "COMPLIANCE",
            WormMode::Governance => "GOVERNANCE",
        }
    }
}

/// The view fields of `--worm` and the retention periods.
fn worm_fields(p: &Provision, body: &mut Value) -> Result<()> {
    let Some(mode) = p.worm else { return Ok(()) };
    for (flag, v) in [
        ("--min-retention", &p.min_retention),
        ("--max-retention", &p.max_retention),
        ("--default-retention", &p.default_retention),
    ] {
        if let Some(v) = v {
            vast_ost_engine::vms::types::duration_secs(v)
                .with_context(|| format!("{flag} {v}: not a VAST period (30m, 12h, 2d, 1w, 6M, 1y)"))?;
        }
    }
    if p.s3 {
        body["s3_versioning"] = json!(true);
        body["locking"] = json!(true);
        body["s3_locks_retention_mode"] = json!(mode.vast());
    } else {
        body["files_retention_mode"] = json!(mode.vast());
    }
    for (k, v) in [
        ("min_retention_period", &p.min_retention),
        ("max_retention_period", &p.max_retention),
        ("default_retention_period", &p.default_retention),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    Ok(())
}

/// An existing view asked to be WORM must be: WORM is set when a view is created.
fn check_existing_worm(p: &Provision, v: &Value) -> Result<()> {
    let worm = v["locking"].as_bool() == Some(true)
        || matches!(v["files_retention_mode"].as_str(), Some("GOVERNANCE" | "COMPLIANCE"));
    if p.worm.is_some() && !worm {
        anyhow::bail!(
            "view {} exists and is not WORM-enabled; WORM is chosen when a view is created",
            p.name
        );
    }
    Ok(())
}

fn id_of(v: &Value) -> Result<u64> {
    v.get("id").and_then(Value::as_u64).context("VMS answered an object without an id")
}

/// Provision; returns the S3 key pair when one was created (`access_key`).
impl Provision {
    /// An LSU on the simulator at `vms` (CA `ca`) at `/nbu/<name>`, an S3 bucket owned by
    /// `nbu-s3` when `s3` (with its first key when `key`), with nothing else set: for the
    /// demo and the chaos run, which provision as an admin would.
    pub fn on_sim(vms: &str, ca: &std::path::Path, name: &str, s3: bool, key: bool) -> Provision {
        Provision {
            vms: vms.to_string(),
            ca_file: Some(ca.to_path_buf()),
            insecure: false,
            api_version: "latest".into(),
            name: name.to_string(),
            s3,
            path: Some(format!("/nbu/{name}")),
            quota: None,
            policy: None,
            owner: s3.then(|| "nbu-s3".to_string()),
            access_key: s3 && key,
            worm: None,
            min_retention: None,
            max_retention: None,
            default_retention: None,
            quiet: false,
        }
    }
}

pub fn run(p: &Provision, user: &str, password: &str) -> Result<Option<(String, String)>> {
    macro_rules! say {
        ($($t:tt)*) => {
            if !p.quiet {
                println!($($t)*)
            }
        };
    }
    vast_ost_engine::names::validate("LSU", &p.name)?;
    let settings = VmsSettings {
        address: p.vms.clone(),
        api_version: p.api_version.clone(),
        tenant: None,
        auth: AuthScheme::Jwt,
        tls: vast_ost_engine::http::TlsSettings { ca_file: p.ca_file.clone(), insecure: p.insecure },
        timeout_secs: 30,
    };
    let creds = Credentials { user: user.to_string(), password: Secret::new(password) };
    let vms = Vms::connect(&settings, &creds).context("logging in to VMS")?;
    let path = p.path.clone().unwrap_or_else(|| format!("/{}", p.name));
    if !path.starts_with('/') || path.ends_with('/') {
        bail!("--path must start with '/' and not end with one, got '{path}'");
    }
    let policy_name =
        p.policy.clone().unwrap_or_else(|| if p.s3 { "s3_default_policy" } else { "default" }.into());
    let policy = vms
        .list(&format!("viewpolicies/?name={}", q(&policy_name)))?
        .into_iter()
        .next()
        .with_context(|| format!("no view policy named '{policy_name}' (pass --policy)"))?;
    let policy_id = id_of(&policy)?;

    let mut owner_id = None;
    if p.s3 {
        let owner = p.owner.clone().unwrap_or_else(|| p.name.clone());
        let user = match vms.list(&format!("users/?name={}", q(&owner)))?.into_iter().next() {
            Some(u) => {
                say!("user         {owner} exists (id {})", id_of(&u)?);
                u
            }
            None => {
                let uid = 50_000 + (std::process::id() % 10_000) as u64;
                let u = vms.post(
                    "users/",
                    &json!({"name": owner, "uid": uid, "allow_create_bucket": true, "allow_delete_bucket": true}),
                )?;
                say!("user         {owner} created (id {})", id_of(&u)?);
                u
            }
        };
        owner_id = Some((owner, id_of(&user)?));
    }

    let existing = if p.s3 {
        vms.list(&format!("views/?bucket={}", q(&p.name)))?
    } else {
        vms.list(&format!("views/?path={}", q(&path)))?
    };
    match existing.first() {
        Some(v) => {
            check_existing_worm(p, v)?;
            say!(
                "view         {} exists (id {}, path {})",
                p.name,
                id_of(v)?,
                v["path"].as_str().unwrap_or("")
            )
        }
        None => {
            let mut body = json!({"name": p.name, "path": path, "policy_id": policy_id, "create_dir": true,
                                  "protocols": [if p.s3 { "S3" } else { "NFS" }]});
            if let Some((owner, _)) = &owner_id {
                body["bucket"] = json!(p.name);
                body["bucket_owner"] = json!(owner);
            }
            worm_fields(p, &mut body)?;
            let v = vms.post("views/", &body)?;
            say!("view         {} created (id {}, path {path})", p.name, id_of(&v)?);
        }
    }

    if let Some(limit) = p.quota {
        let quotas = vms.list(&format!("quotas/?path={}", q(&path)))?;
        match quotas.first() {
            Some(qt) => {
                vms.patch(&format!("quotas/{}/", id_of(qt)?), &json!({"hard_limit": limit}))?;
                say!("quota        {path}: hard limit set to {}", human(limit));
            }
            None => {
                vms.post("quotas/", &json!({"name": p.name, "path": path, "hard_limit": limit}))?;
                say!("quota        {path}: created, hard limit {}", human(limit));
            }
        }
    }

    let mut keys = None;
    if let (true, Some((owner, id))) = (p.access_key, owner_id) {
        let k = vms.post(&format!("users/{id}/access_keys/"), &json!({}))?;
        let (ak, sk) = (k["access_key"].as_str().unwrap_or("?"), k["secret_key"].as_str().unwrap_or("?"));
        say!("access key   for {owner}: {ak}");
        say!("secret key   {sk} (shown once: put it in [server.s3] of the plug-in config, mode 0600)");
        keys = Some((ak.to_string(), sk.to_string()));
    }
    say!("LSU {} is ready: run `nbdevconfig -previewdv` to see it in NetBackup", p.name);
    Ok(keys)
}
