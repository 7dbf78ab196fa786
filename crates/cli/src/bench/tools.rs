//! The peers `vast-ost bench` runs beside the plug-in, found where `scripts/bench-peers` puts
//! them (boto3 and the AWS CLI in a private venv; rclone, fio and dd from the system), and the
//! command lines each is measured with. A peer that is missing is skipped with a note saying
//! how to install it; nothing about a peer is ever typed in.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::measure::Cmd;

/// What is installed, and each tool's version for the report.
#[derive(Clone)]
pub struct Tools {
    pub python: Option<PathBuf>,
    pub aws: Option<PathBuf>,
    pub rclone: Option<PathBuf>,
    pub fio: Option<PathBuf>,
    pub dd: Option<PathBuf>,
    pub cp: Option<PathBuf>,
    pub versions: Vec<(String, String)>,
    pub missing: Vec<String>,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// First line of `program args`' output, if it runs.
fn version(program: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new(program).args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
    String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_string())
}

impl Tools {
    pub fn find(venv: &Path) -> Tools {
        let mut t = Tools {
            python: None,
            aws: None,
            rclone: on_path("rclone"),
            fio: on_path("fio"),
            dd: on_path("dd"),
            cp: on_path("cp"),
            versions: Vec::new(),
            missing: Vec::new(),
        };
        let py = venv.join("bin/python");
        match version(&py, &["-c", "import boto3, s3transfer; print('boto3', boto3.__version__, 's3transfer', s3transfer.__version__)"]) {
            Some(v) => {
                t.versions.push(("boto3".into(), v));
                t.python = Some(py);
            }
            None => t.missing.push(format!("boto3 (scripts/bench-peers installs it into {})", venv.display())),
        }
        let aws = venv.join("bin/aws");
        match version(&aws, &["--version"]) {
            Some(v) => {
                t.versions.push(("aws-cli".into(), v));
                t.aws = Some(aws);
            }
            None => {
                t.missing.push(format!("aws-cli (scripts/bench-peers installs it into {})", venv.display()))
            }
        }
        for (name, tool, args) in [
            ("rclone", &t.rclone, &["version"][..]),
            ("fio", &t.fio, &["--version"][..]),
            ("dd", &t.dd, &["--version"][..]),
        ] {
            match tool.as_deref().and_then(|p| version(p, args)) {
                Some(v) => t.versions.push((name.into(), v)),
                None => t.missing.push(format!("{name} (apt-get install -y {name}, or scripts/bench-peers)")),
            }
        }
        // A tool that does not run is as good as missing.
        for (name, slot) in [("rclone", &mut t.rclone), ("fio", &mut t.fio), ("dd", &mut t.dd)] {
            if !t.versions.iter().any(|(n, _)| n == name) {
                *slot = None;
            }
        }
        t
    }
}

/// The S3 peers, set up for one endpoint: credentials and settings through the environment,
/// so no file of the user's (~/.aws, rclone.conf) is read or changed.
pub struct S3Peers {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub python: Option<PathBuf>,
    pub aws: Option<PathBuf>,
    pub rclone: Option<PathBuf>,
    /// The boto3 script and the AWS CLI's config, written into the work directory.
    pub script: PathBuf,
    pub aws_config: PathBuf,
}

const AWS_CONFIG: &str = "[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 16MB\n    multipart_chunksize = 16MB\n    max_concurrent_requests = 10\n";

impl S3Peers {
    pub fn new(
        t: &Tools,
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        work: &Path,
    ) -> anyhow::Result<S3Peers> {
        let script = work.join("peer_boto3.py");
        std::fs::write(&script, include_str!("peer_boto3.py"))?;
        let aws_config = work.join("aws-config");
        std::fs::write(&aws_config, AWS_CONFIG)?;
        Ok(S3Peers {
            endpoint: endpoint.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            python: t.python.clone(),
            aws: t.aws.clone(),
            rclone: t.rclone.clone(),
            script,
            aws_config,
        })
    }

    fn with_env(&self, c: Cmd) -> Cmd {
        c.env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_CONFIG_FILE", &self.aws_config)
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // botocore 1.36+ adds CRC trailers (aws-chunked) that S3 servers other than AWS
            // may refuse; "when_required" is what those servers' users set. Not its response
            // twin: with AWS_RESPONSE_CHECKSUM_VALIDATION=when_required, `aws s3 cp s3://… -`
            // (aws-cli 1.46) hangs every time, all threads waiting, on radosgw 16.
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
            .env("BENCH_S3_ENDPOINT", &self.endpoint)
    }

    /// `peer_boto3.py OP ARGS` (see the script).
    pub fn boto3(&self, args: &[&str]) -> Option<Cmd> {
        let py = self.python.as_ref()?;
        Some(self.with_env(Cmd::new(py).arg(&self.script).args(args.iter().copied())))
    }

    /// `aws s3 ARGS` against the endpoint.
    pub fn aws(&self, args: &[&str]) -> Option<Cmd> {
        let aws = self.aws.as_ref()?;
        Some(self.with_env(
            Cmd::new(aws).args(["--endpoint-url", &self.endpoint, "s3"]).args(args.iter().copied()),
        ))
    }

    /// `rclone ARGS` with a remote `bench:` for the endpoint (16 MiB chunks, 8 streams up and
    /// down, as the other peers).
    pub fn rclone(&self, args: &[&str]) -> Option<Cmd> {
        let r = self.rclone.as_ref()?;
        let c = Cmd::new(r)
            // --ignore-times: copy even when the destination looks the same (rclone skips it
            // otherwise, and a skipped transfer is no measurement).
            .args([
                "--config",
                "/dev/null",
                "--ignore-times",
                "--s3-chunk-size",
                "16M",
                "--s3-upload-concurrency",
                "8",
            ])
            .args(["--multi-thread-streams", "8", "--multi-thread-cutoff", "16M"])
            .args(args.iter().copied())
            .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
            .env("RCLONE_CONFIG_BENCH_PROVIDER", "Ceph")
            .env("RCLONE_CONFIG_BENCH_ENDPOINT", &self.endpoint)
            .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", &self.access_key)
            .env("RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY", &self.secret_key)
            .env("RCLONE_CONFIG_BENCH_REGION", "us-east-1")
            // rclone's S3 client refuses any AWS_CA_BUNDLE with its own transport (and the
            // endpoint is the one given, http or with a trusted CA).
            .env("AWS_CA_BUNDLE", "");
        Some(c)
    }
}

/// `fio` for one job on `file`: `rw` (write, read, randread), block size, direct or buffered,
/// queue depth (libaio), `size` bytes, fsync at the end of writes, cache dropped before reads.
/// With `numjobs` > 1, `file` is a directory and each job writes its own file in it.
pub struct Fio<'a> {
    pub fio: &'a Path,
    pub file: &'a Path,
    pub rw: &'a str,
    pub bs: &'a str,
    pub direct: bool,
    pub iodepth: u32,
    pub size: u64,
    pub numjobs: usize,
    /// For random reads: how many.
    pub ios: Option<u64>,
}

impl Fio<'_> {
    pub fn cmd(&self) -> Cmd {
        let target = if self.numjobs > 1 {
            format!("--directory={}", self.file.display())
        } else {
            format!("--filename={}", self.file.display())
        };
        let mut c = Cmd::new(self.fio)
            .arg("--name=bench")
            .arg(target)
            .arg(format!("--rw={}", self.rw))
            .arg(format!("--bs={}", self.bs))
            .arg(format!("--size={}", self.size))
            .arg(format!("--direct={}", u8::from(self.direct)))
            .arg(format!("--iodepth={}", self.iodepth))
            .arg(if self.iodepth > 1 { "--ioengine=libaio" } else { "--ioengine=psync" })
            .arg(format!("--numjobs={}", self.numjobs.max(1)))
            .arg("--randseed=11")
            .arg("--group_reporting");
        c = if self.rw == "write" {
            c.arg("--end_fsync=1")
        } else {
            // Cold: fio drops the file's cached pages before reading.
            c.arg("--invalidate=1")
        };
        if let Some(n) = self.ios {
            c = c.arg(format!("--number_ios={n}"));
        }
        c
    }
}
