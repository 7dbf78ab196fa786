//! The checks up to VMS authentication: the plug-in, the config, name resolution, the NFS
//! mount, TLS, the VMS login. The rest (LSUs, VIPs, S3 features, WORM, probes) is in `storage.rs`.

use std::net::ToSocketAddrs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use vast_ost_engine::config::{Config, ServerConfig};
use vast_ost_engine::control::Control;
use vast_ost_engine::http::{tls, Http};
use vast_ost_engine::vms::{AuthScheme, Vms, VmsSettings, CERT_PREFIX, TOKEN_PREFIX};
use vast_ost_engine::{version, Credentials, ErrorKind, Secret};
use vast_ost_host::{get_str, Plugin};

use super::{storage, Doctor, Report};

/// The checks after the first one that cannot go on, said once each.
const LATER: &[(&str, &str)] = &[
    ("config", "config"),
    ("dns", "name resolution"),
    ("tls", "TLS"),
    ("auth", "VMS login"),
    ("lsu", "LSUs"),
    ("vip", "data VIPs"),
    ("s3", "S3 features"),
    ("worm", "WORM"),
    ("probe", "write/read/delete probe"),
];

fn skip_from(r: &mut Report, first: &str, why: &str) {
    for (check, item) in LATER.iter().skip_while(|(c, _)| *c != first) {
        r.skip(check, *item, why);
    }
}

pub fn all(d: &Doctor, r: &mut Report) {
    if !plugin(d, r) {
        return skip_from(r, "config", "the plug-in does not load");
    }
    let Some((cfg, sc)) = config(d, r) else {
        return skip_from(r, "dns", "the config is not usable");
    };
    let vms_resolves = dns(&sc, r);
    nfs_mount(&sc, r);
    let tls_ok = vms_resolves && tls_to_vms(d, &sc, r);
    match (&sc.vms, tls_ok) {
        (None, _) => {
            r.skip("auth", "VMS login", "no [server.vms]: the data path's own credentials are checked below")
        }
        (Some(_), false) => return skip_from(r, "auth", "VMS cannot be reached over TLS"),
        (Some(v), true) => {
            if !login(d, v, &sc, r) {
                return skip_from(r, "lsu", "the VMS login failed");
            }
        }
    }
    storage::all(d, &cfg, &sc, r);
}

/// Step 1: dlopen, the exports, the plug-in's own version; the CLI's beside it.
fn plugin(d: &Doctor, r: &mut Report) -> bool {
    let item = "plug-in";
    let p = match Plugin::load(d.plugin) {
        Ok(p) => p,
        Err(e) => {
            let fix = if e.contains("GLIBC_") {
                "this build needs a newer glibc than this system's: install the vast-ost package (built for \
                 glibc 2.17 and later)"
                    .to_string()
            } else if !d.plugin.exists() {
                format!(
                    "install the vast-ost package (it puts the plug-in in {}), or pass --plugin PATH",
                    vast_ost_engine::config::INSTALL_DIR
                )
            } else {
                "reinstall the vast-ost package: the file is not a loadable x86_64 build of the plug-in"
                    .into()
            };
            r.fail("plugin", item, format!("{}: {e}", d.plugin.display()), fix);
            return false;
        }
    };
    match p.plugin_info() {
        Ok(i) => {
            let vendor = get_str(&i.pi_vendor_version);
            let label = get_str(&i.pi_label);
            let build = label.split_once("; build ").map_or(label.as_str(), |(_, b)| b).to_string();
            let detail =
                format!("{} {vendor}, build {build}, at {}", get_str(&i.pi_name), d.plugin.display());
            if vendor == version::VENDOR_VERSION {
                r.ok("plugin", item, detail);
            } else {
                r.warn(
                    "plugin",
                    item,
                    format!("{detail}; this vast-ost command is {}", version::VENDOR_VERSION),
                    "install the plug-in and the command from the same vast-ost package",
                );
            }
            true
        }
        Err(e) => {
            r.fail("plugin", item, format!("stspi_get_plugin_info: {e}"), "reinstall the vast-ost package");
            false
        }
    }
}

/// Step 2: the file: there, parses, has the server, not open to others.
fn config(d: &Doctor, r: &mut Report) -> Option<(Config, ServerConfig)> {
    let path = &d.config;
    let item = "config";
    if !path.exists() {
        r.fail(
            "config",
            item,
            format!("{} does not exist", path.display()),
            format!(
                "write it (the package installs a commented template at {}/vast-ost.toml), or point \
                 --config / VAST_OST_CONFIG at yours",
                vast_ost_engine::config::INSTALL_DIR
            ),
        );
        return None;
    }
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            let fix = "correct the line and column named (every key and its values: the admin guide)";
            r.fail("config", item, e.message().to_string(), fix);
            return None;
        }
    };
    let cluster = match vast_ost_engine::names::parse_server_name(d.server) {
        Ok(c) => c,
        Err(e) => {
            r.fail(
                "config",
                item,
                e.message().to_string(),
                "name the storage server as NetBackup does: VastData:<cluster>",
            );
            return None;
        }
    };
    let Some(sc) = cfg.server(cluster).cloned() else {
        let have: Vec<&str> = cfg.servers.iter().map(|s| s.cluster()).collect();
        r.fail(
            "config",
            item,
            format!(
                "{}: no [[server]] named '{cluster}' (configured: {})",
                path.display(),
                list_or_none(&have)
            ),
            format!(
                "add a [[server]] with name = \"{}\" and its [server.vms], [server.nfs] or [server.s3]",
                d.server
            ),
        );
        return None;
    };
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
    if let Some(w) = cfg.secrets_exposed(path) {
        r.fail("config", item, w, format!("chmod 600 {}", path.display()));
    } else if mode & 0o022 != 0 {
        r.fail(
            "config",
            item,
            format!(
                "{} is writable by group or others (mode {mode:o}): they could send backups elsewhere",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        );
    } else {
        let paths: Vec<String> = [
            sc.vms.as_ref().map(|v| format!("VMS {}", v.address)),
            sc.nfs.as_ref().map(|n| format!("NFS {}", n.mount.display())),
            sc.s3.as_ref().map(|_| "S3".to_string()),
        ]
        .into_iter()
        .flatten()
        .collect();
        r.ok(
            "config",
            item,
            format!("{}: [[server]] {cluster} ({}), mode {mode:o}", path.display(), paths.join(", ")),
        );
    }
    Some((cfg, sc))
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// `host` and `port` of a URL or `host[:port]`; `default` when no port is given.
pub fn host_port(address: &str, default: u16) -> Option<(String, u16)> {
    let (scheme, rest) = address.split_once("://").unwrap_or(("", address));
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => default,
    };
    let hostport = rest.split('/').next()?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
            _ => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// Step 3: every host name of the config resolves. Returns whether VMS's does (true without VMS).
fn dns(sc: &ServerConfig, r: &mut Report) -> bool {
    let mut names: Vec<(String, String)> = Vec::new();
    if let Some(v) = &sc.vms {
        names.push(("[server.vms] address".into(), v.origin()));
    }
    for e in sc.s3.iter().flat_map(|s| s.endpoints.iter()) {
        names.push(("[server.s3] endpoints".into(), e.clone()));
    }
    if names.is_empty() {
        r.ok("dns", "name resolution", "no host names in the config (the NFS mount is the data path)");
        return true;
    }
    let mut vms_ok = true;
    for (i, (key, address)) in names.iter().enumerate() {
        let Some((host, port)) = host_port(address, 443) else {
            r.fail(
                "dns",
                format!("name {address}"),
                "not a host, host:port or URL",
                format!("correct {key}"),
            );
            vms_ok &= !(i == 0 && sc.vms.is_some());
            continue;
        };
        match (host.as_str(), port).to_socket_addrs() {
            Ok(addrs) => {
                let ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                r.ok("dns", format!("name {host}"), format!("resolves to {}", ips.join(", ")));
            }
            Err(e) => {
                r.fail(
                    "dns",
                    format!("name {host}"),
                    format!("cannot resolve '{host}' ({key}): {e}"),
                    format!(
                        "correct {key}, or make the name resolvable on this media server (DNS, /etc/hosts)"
                    ),
                );
                vms_ok &= !(i == 0 && sc.vms.is_some());
            }
        }
    }
    vms_ok
}

/// Step 3b: the NFS mount is there.
fn nfs_mount(sc: &ServerConfig, r: &mut Report) {
    let Some(n) = &sc.nfs else { return };
    let item = format!("NFS mount {}", n.mount.display());
    match std::fs::metadata(&n.mount) {
        Ok(m) if m.is_dir() => r.ok("nfs", item, format!("a directory; VAST path {} is mounted here", n.view_root)),
        Ok(_) => r.fail("nfs", item, "not a directory", "correct [server.nfs] mount"),
        Err(e) => r.fail(
            "nfs",
            item,
            e.to_string(),
            format!(
                "mount VAST's export of {} there (mount -t nfs <data VIP>:{} {}), or correct [server.nfs] mount",
                n.view_root,
                n.view_root,
                n.mount.display()
            ),
        ),
    }
}

/// The client certificate of `cert:` credentials, if usable (the login check says why not).
fn identity(password: &str) -> Option<tls::ClientCert> {
    password.strip_prefix(CERT_PREFIX).and_then(|p| tls::client_cert(std::path::Path::new(p)).ok())
}

/// Step 4: TLS to VMS: connects, and the certificate verifies.
fn tls_to_vms(d: &Doctor, sc: &ServerConfig, r: &mut Report) -> bool {
    let Some(v) = &sc.vms else {
        r.skip("tls", "TLS", "no [server.vms]");
        return true;
    };
    let origin = v.origin();
    let where_ = host_port(&origin, 443).map(|(h, p)| format!("{h}:{p}")).unwrap_or_else(|| origin.clone());
    let item = format!("TLS to VMS {where_}");
    let http = match Http::with_identity(&v.tls, Duration::from_secs(15), identity(d.password)) {
        Ok(h) => h,
        Err(e) => {
            r.fail(
                "tls",
                item,
                e.message().to_string(),
                "point ca_file in [server.vms] at a readable PEM file of VMS's CA",
            );
            return false;
        }
    };
    match tls::try_get(&http, &format!("{origin}/api/"), "[server.vms]") {
        Ok(_) if origin.starts_with("http://") => {
            r.warn(
                "tls",
                item,
                "VMS is reached over plain HTTP: credentials cross the network unencrypted",
                "use the https address of VMS in [server.vms] address",
            );
            true
        }
        Ok(_) if v.tls.insecure => {
            r.warn(
                "tls",
                item,
                "connected; the certificate is NOT checked (insecure = true)",
                "set ca_file in [server.vms] to the PEM of VMS's CA and remove insecure",
            );
            true
        }
        Ok(_) => {
            let against = match &v.tls.ca_file {
                Some(ca) => format!("ca_file {}", ca.display()),
                None => "the system's CA roots".into(),
            };
            r.ok("tls", item, format!("certificate verified against {against}"));
            true
        }
        Err(u) => match (u.problem, u.error) {
            (Some(p), _) => {
                r.fail("tls", item, p.problem, p.fix);
                false
            }
            (None, e) => {
                let fix = match e.kind() {
                    ErrorKind::Connect => {
                        "check [server.vms] address and port, the firewalls between, and that VMS is up"
                    }
                    _ => "check [server.vms] address: it must be VMS's HTTPS address",
                };
                r.fail("tls", item, e.message().to_string(), fix);
                false
            }
        },
    }
}

/// Which credential form `password` is, for the reader.
fn form(v: &VmsSettings, user: &str, password: &str) -> String {
    if password.starts_with(TOKEN_PREFIX) {
        "API token (token:)".into()
    } else if let Some(p) = password.strip_prefix(CERT_PREFIX) {
        format!("client certificate {p} (cert:)")
    } else if v.auth == AuthScheme::Basic {
        format!("user {user}, HTTP Basic")
    } else {
        format!("user {user}, password login (JWT)")
    }
}

/// Step 5: log in to VMS with the credentials given, and read the cluster.
fn login(d: &Doctor, v: &VmsSettings, sc: &ServerConfig, r: &mut Report) -> bool {
    let how = form(v, d.user, d.password);
    let item = "VMS login";
    let creds = Credentials { user: d.user.to_string(), password: Secret::new(d.password) };
    let res = Vms::connect(v, &creds)
        .map(|vms| Control::new(vms.with_retry(sc.retry.into()), sc.filter(), Duration::from_secs(1)))
        .and_then(|c| c.cluster());
    let e = match res {
        Ok(c) => {
            r.ok("auth", item, format!("{how}: cluster '{}', VAST {}, guid {}", c.name, c.version, c.guid));
            return true;
        }
        Err(e) => e,
    };
    let fix = match (e.kind(), d.password) {
        (ErrorKind::Auth, p) if p.starts_with(TOKEN_PREFIX) => {
            "the API token is unknown, revoked or expired: create one in VMS (API tokens, VAST 5.3 and later) and \
             give it with tpconfig -update ... -password 'token:<token>'"
                .to_string()
        }
        (ErrorKind::Auth | ErrorKind::Tls, p) if p.starts_with(CERT_PREFIX) => {
            "the PEM file must hold the client certificate and its key, issued by a CA VMS trusts for a VMS user"
                .to_string()
        }
        (ErrorKind::Auth, _) if d.user.is_empty() => {
            "no user given: pass the user NetBackup stores (tpconfig -sts_user_id) with --user".to_string()
        }
        (ErrorKind::Auth, _) => format!(
            "give the user's right password to NetBackup (tpconfig -update -storage_server {} -stype VastData \
             -sts_user_id {} -password ...) and here with --password",
            d.server, d.user
        ),
        (ErrorKind::Access, _) => {
            "the user may log in but not read the cluster: give it a VMS role that can read clusters, views, \
             quotas and VIP pools"
                .to_string()
        }
        (ErrorKind::Tls, _) => "see the TLS line above".to_string(),
        _ => "check that [server.vms] address is VMS and that it is up".to_string(),
    };
    r.fail("auth", item, format!("{how}: {}", e.message()), fix);
    false
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_and_port_of_addresses() {
        let hp = |a: &str| host_port(a, 443);
        assert_eq!(hp("vms.example.com"), Some(("vms.example.com".into(), 443)));
        assert_eq!(hp("vms:8443"), Some(("vms".into(), 8443)));
        assert_eq!(hp("https://10.0.0.1:4443/api"), Some(("10.0.0.1".into(), 4443)));
        assert_eq!(hp("http://10.0.0.2"), Some(("10.0.0.2".into(), 80)));
        assert_eq!(hp("http://[::1]:9000"), Some(("::1".into(), 9000)));
        assert_eq!(hp("https://"), None);
    }
}
