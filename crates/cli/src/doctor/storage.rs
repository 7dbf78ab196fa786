//! The checks that need the storage: the LSUs NetBackup would see (through the plug-in), the
//! data VIPs, what the S3 servers honour, whether WORM LSUs' storage holds its locks, and a
//! write/read/delete probe on every LSU.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use vast_ost_engine::config::{Config, ServerConfig};
use vast_ost_engine::http::{tls, Http, TlsSettings};
use vast_ost_engine::store::s3::probe::{Features, Support};
use vast_ost_engine::{Credentials, Engine, Secret, Server};
use vast_ost_host::abi::*;
use vast_ost_host::{get_str, Status};

use super::checks::host_port;
use super::{Doctor, Report};
use crate::fmt::human;
use crate::session::{def, Loaded, Session};

/// Bytes the probe writes on each LSU.
const PROBE_BYTES: usize = 1 << 20;

pub fn all(d: &Doctor, cfg: &Config, sc: &ServerConfig, r: &mut Report) {
    let Some((session, lsus)) = lsus(d, cfg, sc, r) else {
        for (c, item) in [
            ("vip", "data VIPs"),
            ("s3", "S3 features"),
            ("worm", "WORM"),
            ("probe", "write/read/delete probe"),
        ] {
            r.skip(c, item, "the server does not open");
        }
        return;
    };
    // The engine's view of the same server, for what the OST calls do not show.
    let creds = Credentials { user: d.user.to_string(), password: Secret::new(d.password) };
    let server = Engine::new(&d.config).and_then(|e| e.open_server(d.server, &creds));
    match &server {
        Ok(s) => {
            vips(s, sc, r);
            features(s, &lsus, r);
            worm(s, &lsus, r);
        }
        Err(e) => {
            r.fail("vip", "data VIPs", format!("opening the server: {e}"), "see the plug-in log");
        }
    }
    for l in &lsus {
        probe(&session, l, cfg, r);
    }
}

/// The reason the plug-in logged for the last failure of `call`, if any.
fn logged_reason(cfg: &Config, call: &str) -> Option<String> {
    let log = std::fs::read_to_string(cfg.log_path()).ok()?;
    let line = log.lines().rev().find(|l| l.contains(call) && l.contains("status="))?;
    line.split_once("status=").and_then(|(_, rest)| rest.split_once(": ")).map(|(_, why)| why.to_string())
}

fn status_word(e: &anyhow::Error) -> String {
    match crate::session::status_of(e) {
        Some(Status(code)) => format!("{code} ({})", status_text(code)),
        None => format!("{e:#}"),
    }
}

/// Step 6: open the server through the plug-in and list its LSUs with their capacity; every
/// LSU the config or the command line names must be among them.
fn lsus(d: &Doctor, cfg: &Config, sc: &ServerConfig, r: &mut Report) -> Option<(Session, Vec<String>)> {
    let opened = Loaded::new(d.plugin).and_then(|l| Session::open(l, d.server, d.user, d.password));
    let session = match opened {
        Ok(s) => s,
        Err(e) => {
            let why = logged_reason(cfg, "stspi_open_server").unwrap_or_else(|| format!("{e:#}"));
            r.fail(
                "lsu",
                "open_server",
                format!("{}: {why}", status_word(&e)),
                format!(
                    "the plug-in log ({}) has the line; the checks above say what is wrong",
                    cfg.log_path().display()
                ),
            );
            return None;
        }
    };
    let names = match session.p().lsu_names(session.handle) {
        Ok(n) => n,
        Err(e) => {
            let why = logged_reason(cfg, "stspi_open_lsu_list").unwrap_or_default();
            r.fail("lsu", "LSU list", format!("{e}: {why}"), "see the plug-in log");
            return None;
        }
    };
    if names.is_empty() {
        let fix = if sc.vms.is_some() {
            "create a view or bucket whose name passes lsu_prefix / lsus (vast-ost provision NAME ...), or \
             correct the filter"
        } else {
            "create one directory per LSU under the NFS mount (or a bucket the S3 keys can use)"
        };
        r.fail("lsu", "LSUs", "the server shows NetBackup no LSU", fix);
    }
    for name in &names {
        lsu_line(&session, name, r);
    }
    let wanted = sc
        .lsus
        .iter()
        .flatten()
        .map(|l| (l, "lsus in the config"))
        .chain(d.lsus.iter().map(|l| (l, "--lsu")));
    for (l, from) in wanted {
        if !names.contains(l) {
            r.fail(
                "lsu",
                format!("LSU {l}"),
                format!("named by {from} but not visible: no view or bucket of that name on the cluster, or not selected"),
                format!(
                    "create it (vast-ost provision {l} --path /<path>, or with --s3) or correct the name in {from} \
                     and the disk pool"
                ),
            );
        }
    }
    Some((session, names))
}

fn lsu_line(s: &Session, name: &str, r: &mut Report) {
    let item = format!("LSU {name}");
    let info =
        s.lsu(name).map_err(|e| e.to_string()).and_then(|l| s.p().lsu_prop(&l).map_err(|e| e.to_string()));
    let i = match info {
        Ok(i) => i,
        Err(e) => return r.fail("lsu", item, e, "see the plug-in log"),
    };
    let kind = if i.lsu_flags & STS_LSUF_S3 != 0 { "S3" } else { "NFS" };
    let pct = i.lsu_used.saturating_mul(100).checked_div(i.lsu_capacity).unwrap_or(100);
    let detail = format!(
        "{kind}, {} of {} used ({pct}%), {} image(s); {}",
        human(i.lsu_used),
        human(i.lsu_capacity),
        i.lsu_images,
        get_str(&i.lsu_description)
    );
    if i.lsu_capacity == 0 || pct >= 95 {
        r.warn(
            "lsu",
            item,
            detail,
            format!("raise the view's quota (vast-ost provision {name} --quota SIZE) or expire images: NetBackup stops writing at its high water mark"),
        );
    } else {
        r.ok("lsu", item, detail);
    }
}

/// Step 7: every S3 endpoint answers: TCP for http, a TLS handshake for https.
fn vips(s: &Server, sc: &ServerConfig, r: &mut Report) {
    let endpoints = s.s3_endpoints();
    if endpoints.is_empty() {
        r.skip("vip", "data VIPs", "no [server.s3]: the NFS mount carries the data");
        return;
    }
    let tls_settings = sc.s3.as_ref().map(|s| s.tls.clone()).unwrap_or_default();
    for url in endpoints {
        let item = format!("data VIP {url}");
        let fix =
            "check the VIP pool in VMS (vip_pool, or endpoints), and routing and firewalls from this media \
                   server: streams avoid a dead VIP, but lose its bandwidth";
        let Some((host, port)) = host_port(&url, 80) else {
            r.fail("vip", item, "not a URL", "correct [server.s3] endpoints");
            continue;
        };
        let start = Instant::now();
        let res = if url.starts_with("https://") { https(&url, &tls_settings) } else { tcp(&host, port) };
        match res {
            Ok(()) => r.ok("vip", item, format!("answers ({} ms)", start.elapsed().as_millis())),
            Err(e) => r.fail("vip", item, e, fix),
        }
    }
}

fn tcp(host: &str, port: u16) -> Result<(), String> {
    let addrs: Vec<_> =
        (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    let mut last = format!("{host} has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

fn https(url: &str, t: &TlsSettings) -> Result<(), String> {
    let http = Http::new(t, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    match tls::try_get(&http, url, "[server.s3.tls]") {
        Ok(_) => Ok(()),
        Err(u) => Err(match u.problem {
            Some(p) => format!("{}; {}", p.problem, p.fix),
            None => u.error.to_string(),
        }),
    }
}

/// Step 8: what each bucket's server does with conditional writes and CRC32C.
fn features(s: &Server, lsus: &[String], r: &mut Report) {
    let mut any = false;
    for l in lsus {
        let item = format!("S3 features {l}");
        match s.s3_features(l) {
            Ok(None) => {}
            Ok(Some(f)) => {
                any = true;
                feature_line(item, f, r);
            }
            Err(e) => {
                any = true;
                r.fail(
                    "s3",
                    item,
                    e.to_string(),
                    "the bucket must accept PUT and DELETE of the S3 keys configured",
                );
            }
        }
    }
    if !any {
        r.skip("s3", "S3 features", "no S3 LSU (or create_mode does not probe)");
    }
}

fn feature_line(item: String, f: Features, r: &mut Report) {
    let detail = f.to_string();
    let mut fixes = Vec::new();
    if f.if_none_match != Support::Honoured || f.if_match != Support::Honoured {
        fixes.push(
            "conditional writes are not all enforced: manifests use the claim protocol for them (safe, one more \
             round trip per commit; docs/commit-protocol.md)",
        );
    }
    match f.crc32c {
        Support::Honoured => {}
        Support::Ignored => fixes.push(
            "CRC32C is accepted and not checked: corruption in flight is caught on read by the image CRC32C; \
             checksum = \"md5\" in [server.s3] makes the server check every request",
        ),
        Support::Refused => fixes.push("CRC32C is refused: requests go without a checksum (checksum = \"md5\" checks them)"),
    }
    if fixes.is_empty() {
        r.ok("s3", item, detail);
    } else {
        r.warn("s3", item, detail, fixes.join("; "));
    }
}

/// Step 9: on each LSU whose view locks, whether the storage holds the locks (the plug-in's
/// Object Lock probe: a lock set on a probe object and read back).
fn worm(s: &Server, lsus: &[String], r: &mut Report) {
    let mut any = false;
    for l in lsus {
        let item = format!("WORM {l}");
        let policy = match s.view_worm(l) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                r.fail("worm", item, e.to_string(), "see the plug-in log");
                continue;
            }
        };
        any = true;
        let max = match policy.max_secs {
            0 | u64::MAX => "no maximum".to_string(),
            m => format!("at most {m} s"),
        };
        match s.verify_worm(l, &policy) {
            Ok(()) => r.ok(
                "worm",
                item,
                format!("{} locks held by the storage; at least {} s, {max}", policy.mode.as_str(), policy.min_secs),
            ),
            Err(e) => r.fail(
                "worm",
                item,
                format!("the view locks, but {e}"),
                "enable S3 Object Lock for the view's bucket on the cluster, or do not use this LSU for WORM storage \
                 units (NetBackup sees it as not WORM)",
            ),
        }
    }
    if !any {
        r.skip("worm", "WORM", "no LSU on a WORM-enabled view");
    }
}

/// Step 10: write 1 MiB to a new image on `lsu`, close it complete, read it back, compare, delete.
fn probe(s: &Session, lsu: &str, cfg: &Config, r: &mut Report) {
    let item = format!("probe {lsu}");
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let name = format!("vast-ost-doctor_{now}_{}", std::process::id());
    let start = Instant::now();
    let written = round_trip(s, lsu, &name);
    // Whatever happened, the probe leaves nothing behind.
    let removed = s.lsu(lsu).and_then(|l| {
        let d = def(&name, "", "")?;
        s.p()
            .delete_image(&l, &d)
            .map_err(|e| anyhow::Error::new(e).context(format!("deleting image '{name}'")))
    });
    let outcome = match (written, removed) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(("stspi_delete_image", e)),
    };
    match outcome {
        Ok(()) => r.ok(
            "probe",
            item,
            format!(
                "{} written, read back identical and deleted in {} ms",
                human(PROBE_BYTES as u64),
                start.elapsed().as_millis()
            ),
        ),
        Err((call, e)) => {
            let why = logged_reason(cfg, call).map(|w| format!(": {w}")).unwrap_or_default();
            let fix = match crate::session::status_of(&e).map(|s| s.0) {
                Some(STS_ENOSPC) => "the LSU is full: raise its quota or expire images".to_string(),
                Some(STS_EACCESS) => {
                    "the storage refused: the NFS view must be writable by root on this media \
                                      server (no root squash), a bucket usable by the S3 key's user"
                        .to_string()
                }
                Some(STS_ECORRUPT) => "what was read back is not what was written: keep the plug-in log and \
                                       report it"
                    .to_string(),
                _ => format!("the plug-in log ({}) has the line of {call}", cfg.log_path().display()),
            };
            r.fail("probe", item, format!("{e:#}{why}"), fix);
        }
    }
}

type Step = (&'static str, anyhow::Error);

fn round_trip(s: &Session, lsu: &str, name: &str) -> Result<(), Step> {
    let data: Vec<u8> =
        (0..PROBE_BYTES).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1]).collect();
    let at = |call: &'static str| move |e: anyhow::Error| (call, e);
    let d = def(name, "0", "vast-ost-doctor").map_err(at("stspi_create_image"))?;
    let img = s.create(lsu, &d).map_err(at("stspi_create_image"))?;
    for (n, chunk) in data.chunks(256 << 10).enumerate() {
        img.write(chunk, (n * (256 << 10)) as u64).map_err(at("stspi_write_image"))?;
    }
    img.close(true).map_err(at("stspi_close_image"))?;
    let img = s.open_read(lsu, name).map_err(at("stspi_open_image"))?;
    let mut back = vec![0u8; PROBE_BYTES + 1];
    let mut got = 0;
    loop {
        let n = img.read(&mut back[got..], got as u64).map_err(at("stspi_read_image"))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    img.close(false).map_err(at("stspi_close_image"))?;
    if back[..got] != data[..] {
        return Err((
            "stspi_read_image",
            anyhow::anyhow!("read back {got} bytes that differ from the {} written", data.len()),
        ));
    }
    Ok(())
}
