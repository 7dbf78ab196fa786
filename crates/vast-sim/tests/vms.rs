//! VMS REST API tests, written from shared/reference/vast-rest-api.md (section numbers in
//! test names and comments).

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// §1, §12.1: `/api/`, `/api/vN/`, `/api/latest/` route to the same handlers; the trailing
/// slash is optional; self links carry the requested version segment.
#[test]
fn s1_routing_versions_and_trailing_slash() {
    let env = start();
    let auth = env.admin_auth();
    for prefix in ["/api", "/api/v1", "/api/v5", "/api/latest"] {
        for slash in ["/", ""] {
            let r = env.raw("GET", &format!("{prefix}/versions{slash}?status=success"), Some(&auth), None);
            assert_eq!(r.status, 200, "{prefix} {slash}: {}", r.text);
            let v = r.json();
            assert_eq!(v[0]["sys_version"], "5.3.1.0.1");
            let url = v[0]["url"].as_str().unwrap();
            assert!(url.starts_with(env.sim.vms_url()), "{url}");
            assert!(url.ends_with(&format!("{prefix}/versions/1/")), "{url} for {prefix}");
        }
    }
    assert_eq!(env.raw("GET", "/api/v99/versions/", Some(&auth), None).status, 404);
    let r = env.raw("GET", "/api/latest/nosuchresource/", Some(&auth), None);
    assert_eq!((r.status, r.json()), (404, json!({"detail": "Not found."})));
    // §1: cluster version via clusters/ too, with the §7 capacity fields.
    let c = env.api("GET", "clusters/", None).json();
    assert_eq!(c[0]["sw_version"], "5.3.1.0.1");
    assert_eq!(c[0]["name"], "vast-sim");
    for f in [
        "logical_space",
        "logical_space_in_use",
        "free_logical_space",
        "physical_space",
        "physical_space_in_use",
        "free_physical_space",
        "usable_capacity_bytes",
        "free_usable_capacity",
        "auxiliary_space_in_use",
        "quotas_allocated_capacity",
        "quotas_used_capacity",
        "logical_space_tb",
        "drr",
    ] {
        assert!(c[0].get(f).is_some(), "cluster field {f}");
    }
    assert_eq!(c[0]["logical_space"], json!(10u64 << 40));
    assert_eq!(env.api("GET", "health/", None).json()["status"], "ok");
    let vms = env.api("GET", "vms/", None).json();
    assert_eq!(vms[0]["access_token_lifetime"], "00:05:00");
}

/// §2: Basic, Api-Token (create 201, use, revoke, per-user limit 503 with a JSON string).
#[test]
fn s2_basic_and_api_tokens() {
    let env = start_with(|c| c.max_api_tokens_per_user = 2);
    assert_eq!(env.raw("GET", "/api/views/", Some(&env.admin_auth()), None).status, 200);
    let bad = env.raw("GET", "/api/views/", Some(&basic("admin", "wrong")), None);
    assert_eq!(bad.status, 403, "VMS answers auth failures with 403");
    assert_eq!(env.raw("GET", "/api/views/", None, None).status, 403);

    let t = env.api("POST", "apitokens/", Some(json!({"name": "ci", "expiry_date": "2d"})));
    assert_eq!(t.status, 201, "{}", t.text);
    let t = t.json();
    assert!(t["id"].is_string(), "API-token ids are strings (§12.8)");
    let token = t["token"].as_str().unwrap().to_string();
    let auth = format!("Api-Token {token}");
    assert_eq!(env.raw("GET", "/api/v5/clusters/", Some(&auth), None).status, 200);
    let list = env.api("GET", "apitokens/?owner=admin", None).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["last_used"].is_string());

    assert_eq!(env.api("POST", "apitokens/", Some(json!({"name": "second"}))).status, 201);
    let over = env.api("POST", "apitokens/", Some(json!({"name": "third"})));
    assert_eq!(over.status, 503);
    assert!(over.json().is_string(), "limit error is a bare JSON string: {}", over.text);
    let badexp = env.api("POST", "apitokens/", Some(json!({"expiry_date": "soon"})));
    assert_eq!(badexp.status, 400);
    assert!(badexp.json().is_string());

    // Revoke (no trailing slash in the schema path; both accepted).
    let id = t["id"].as_str().unwrap();
    assert_eq!(env.api("PATCH", &format!("apitokens/{id}/revoke"), None).status, 200);
    assert_eq!(env.raw("GET", "/api/v5/clusters/", Some(&auth), None).status, 403);
    assert_eq!(env.api("PATCH", "apitokens/nosuch/revoke/", None).status, 404);
    // A revoked token frees a slot.
    assert_eq!(env.api("POST", "apitokens/", Some(json!({}))).status, 201);
}

const EXPIRED_BODY: &str = r#"{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken","token_type":"access","message":"Token is invalid or expired"}]}"#;

/// §2: JWT login, use, refresh rotation, 403 "Token is invalid or expired" for garbage and
/// after forced expiry, 401 on bad credentials.
#[test]
fn s2_jwt_refresh_rotation_and_forced_expiry() {
    let env = start();
    let bad = env.raw("POST", "/api/token/", None, Some(&json!({"username": "admin", "password": "nope"})));
    assert_eq!(bad.status, 401);
    let r = env.raw("POST", "/api/token/", None, Some(&json!({"username": "admin", "password": "123456"})));
    assert_eq!(r.status, 200, "{}", r.text);
    let pair = r.json();
    let access = pair["access"].as_str().unwrap().to_string();
    let refresh = pair["refresh"].as_str().unwrap().to_string();
    assert_eq!(env.raw("GET", "/api/v5/views/", Some(&format!("Bearer {access}")), None).status, 200);

    // CSI starts with `Bearer #` and waits for this exact 403.
    let g = env.raw("GET", "/api/v1/views/", Some("Bearer #"), None);
    assert_eq!(g.status, 403);
    assert_eq!(g.json(), serde_json::from_str::<Value>(EXPIRED_BODY).unwrap());
    assert!(g.text.contains("Token is invalid or expired"));

    // CSI uses the versioned token path.
    assert_eq!(
        env.raw("POST", "/api/v1/token/", None, Some(&json!({"username": "admin", "password": "123456"})))
            .status,
        200
    );

    env.sim.expire_access_tokens();
    let e = env.raw("GET", "/api/v5/views/", Some(&format!("Bearer {access}")), None);
    assert_eq!(e.status, 403);
    assert_eq!(e.json(), serde_json::from_str::<Value>(EXPIRED_BODY).unwrap());

    let r2 = env.raw("POST", "/api/token/refresh/", None, Some(&json!({"refresh": refresh})));
    assert_eq!(r2.status, 200, "{}", r2.text);
    let p2 = r2.json();
    assert_ne!(p2["refresh"], json!(refresh), "refresh tokens rotate");
    assert_eq!(
        env.raw("GET", "/api/v5/views/", Some(&format!("Bearer {}", p2["access"].as_str().unwrap())), None)
            .status,
        200
    );
    let reuse = env.raw("POST", "/api/token/refresh/", None, Some(&json!({"refresh": refresh})));
    assert_eq!(reuse.status, 401, "a rotated refresh token is spent");

    // The admin endpoint can force expiry too.
    let a2 = p2["access"].as_str().unwrap();
    assert_eq!(env.raw("POST", "/_sim/faults", None, Some(&json!({"expire_tokens": true}))).status, 200);
    assert_eq!(env.raw("GET", "/api/v5/views/", Some(&format!("Bearer {a2}")), None).status, 403);
}

/// §2: token lifetimes are cluster settings; a short one really expires.
#[test]
fn s2_short_access_lifetime_expires() {
    let env = start_with(|c| c.access_token_lifetime = Duration::from_secs(1));
    let p = env
        .raw("POST", "/api/token/", None, Some(&json!({"username": "admin", "password": "123456"})))
        .json();
    let auth = format!("Bearer {}", p["access"].as_str().unwrap());
    assert_eq!(env.raw("GET", "/api/views/", Some(&auth), None).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let r = env.raw("GET", "/api/views/", Some(&auth), None);
    assert_eq!(r.status, 403);
    assert!(r.text.contains("Token is invalid or expired"));
    // PATCH vms/1/ changes the lifetime as on a real cluster.
    let v = env.api("PATCH", "vms/1/", Some(json!({"access_token_lifetime": "00:10:00"})));
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.json()["access_token_lifetime"], "00:10:00");
}

/// §4: bare array without page_size; DRF envelope with page_size, following absolute `next`.
#[test]
fn s4_array_vs_envelope_pagination() {
    let env = start();
    for i in 0..7 {
        let r = env.api("POST", "quotas/", Some(json!({"name": format!("q{i}"), "path": format!("/p/q{i}"), "create_dir": true, "hard_limit": 1000 + i})));
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let all = env.api("GET", "quotas/", None).json();
    assert_eq!(all.as_array().unwrap().len(), 7);
    let first = env.raw("GET", "/api/v5/quotas/?page_size=3", Some(&env.admin_auth()), None).json();
    assert_eq!(first["count"], 7);
    assert!(first["previous"].is_null());
    let mut names: Vec<String> = Vec::new();
    let mut page = first;
    let mut pages = 0;
    loop {
        pages += 1;
        names.extend(
            page["results"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap().to_string()),
        );
        let Some(next) = page["next"].as_str().map(String::from) else { break };
        assert!(
            next.starts_with(&format!("{}/api/v5/quotas/?", env.sim.vms_url())),
            "absolute, versioned next: {next}"
        );
        page = env.raw("GET", &next, Some(&env.admin_auth()), None).json();
        assert!(page["previous"].is_string());
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("q{i}")).collect::<Vec<_>>());
    assert_eq!(env.api("GET", "quotas/?page_size=3&page=9", None).status, 404);
    assert_eq!(env.api("GET", "quotas/?page_size=0", None).status, 400);
}

/// §3: exact filters and lookups on name/path/bucket/tenant_id/id, repeated keys and comma
/// lists, `fields=` projection; a filter that matches nothing is 200 [].
#[test]
fn s3_filters_and_fields() {
    let env = start();
    env.s3_user("owner1");
    for (p, b) in [("/f/alpha", "alpha"), ("/f/beta", "beta"), ("/g/gamma", "gamma")] {
        let r = env.api("POST", "views/", Some(json!({"path": p, "policy_id": 2, "protocols": ["S3"], "bucket": b, "bucket_owner": "owner1", "create_dir": true})));
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let ids = |q: &str| -> Vec<String> {
        let r = env.api("GET", &format!("views/?{q}"), None);
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        r.json().as_array().unwrap().iter().map(|v| v["bucket"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids("bucket=beta"), ["beta"]);
    assert_eq!(ids("path=/g/gamma"), ["gamma"]);
    assert_eq!(ids("path__startswith=/f/"), ["alpha", "beta"]);
    assert_eq!(ids("path__contains=amm"), ["gamma"]);
    assert_eq!(ids("name__icontains=ALP"), ["alpha"]);
    assert_eq!(ids("bucket__endswith=ta"), ["beta"]);
    assert_eq!(ids("bucket__in=alpha,gamma"), ["alpha", "gamma"]);
    assert_eq!(ids("bucket__in=alpha&bucket__in=beta"), ["alpha", "beta"]);
    assert_eq!(ids("id__gt=1&id__lte=2"), ["beta"]);
    assert_eq!(ids("id__gte=2&id__lt=3"), ["beta"]);
    assert_eq!(ids("tenant_id=1&bucket__startswith=g"), ["gamma"]);
    assert_eq!(ids("policy__name=s3_default_policy").len(), 3);
    assert!(ids("bucket=nothing").is_empty(), "no match is 200 []");
    assert_eq!(env.api("GET", "views/?no_such_field=1", None).status, 400);
    let f = env.api("GET", "views/?bucket=alpha&fields=id,path", None).json();
    assert_eq!(f, json!([{"id": 1, "path": "/f/alpha"}]));
    let f2 = env.api("GET", "views/?bucket=alpha&fields=id&fields=bucket", None).json();
    assert_eq!(f2, json!([{"id": 1, "bucket": "alpha"}]));
    // §3 filters missing from the schema but used by clients.
    assert_eq!(env.api("GET", "users/?name=owner1", None).json().as_array().unwrap().len(), 1);
    assert_eq!(env.api("GET", "vippools/?name=protocols", None).json().as_array().unwrap().len(), 1);
    assert_eq!(env.api("GET", "viewpolicies/?name=s3_default_policy", None).json()[0]["tenant_id"], 1);
}

/// §5, §12.4: 201 / 200 / 204 / 404 / 400 shapes.
#[test]
fn s5_status_codes() {
    let env = start();
    let c = env.api("POST", "viewpolicies/", Some(json!({"name": "pol", "nfs_read_write": ["10.0.0.0/8"]})));
    assert_eq!(c.status, 201);
    let id = c.json()["id"].as_u64().unwrap();
    assert!(c.json()["url"].as_str().unwrap().ends_with(&format!("/api/latest/viewpolicies/{id}/")));
    assert!(c.json()["guid"].as_str().unwrap().len() == 36);
    let p = env.api("PATCH", &format!("viewpolicies/{id}/"), Some(json!({"nfs_read_only": ["1.2.3.4"]})));
    assert_eq!(p.status, 200);
    assert_eq!(p.json()["nfs_read_only"], json!(["1.2.3.4"]));
    let d = env.api("DELETE", &format!("viewpolicies/{id}/"), None);
    assert_eq!((d.status, d.text.as_str()), (204, ""));
    let g = env.api("GET", &format!("viewpolicies/{id}/"), None);
    assert_eq!((g.status, g.json()), (404, json!({"detail": "Not found."})));
    assert_eq!(env.api("DELETE", "views/999/", None).status, 404);
    let v = env.api("POST", "quotas/", Some(json!({"path": "/x"})));
    assert_eq!(v.status, 400);
    assert_eq!(v.json()["name"], json!(["This field is required."]));
    let t = env.api("POST", "quotas/", Some(json!({"name": "x", "path": "/x", "hard_limit": "lots"})));
    assert_eq!(t.status, 400);
    assert!(t.json()["hard_limit"].is_array());
    let nj = env.raw("POST", "/api/quotas/", Some(&env.admin_auth()), None);
    assert_eq!(nj.status, 400);
}

/// §6, §12.5: view rules.
#[test]
fn s6_view_rules() {
    let env = start();
    env.s3_user("bob");
    let post = |b: Value| env.api("POST", "views/", Some(b));
    assert_eq!(post(json!({"path": "relative", "policy_id": 1, "create_dir": true})).status, 400);
    assert_eq!(post(json!({"path": "/trailing/", "policy_id": 1, "create_dir": true})).status, 400);
    assert_eq!(
        post(json!({"path": "/nodir", "policy_id": 1})).status,
        400,
        "missing directory without create_dir"
    );
    let nb = post(
        json!({"path": "/s3", "policy_id": 2, "protocols": ["S3"], "bucket_owner": "bob", "create_dir": true}),
    );
    assert_eq!(nb.status, 400);
    assert!(nb.json().get("bucket").is_some(), "{}", nb.text);
    let no = post(
        json!({"path": "/s3", "policy_id": 2, "protocols": ["S3"], "bucket": "bkt", "create_dir": true}),
    );
    assert_eq!(no.status, 400);
    assert!(no.json().get("bucket_owner").is_some(), "{}", no.text);
    let ok = post(
        json!({"path": "/s3", "policy_id": 2, "protocols": ["S3", "NFS"], "bucket": "bkt", "bucket_owner": "bob", "create_dir": true}),
    );
    assert_eq!(ok.status, 201, "{}", ok.text);
    let view = ok.json();
    assert!(env.sim.root().join("s3").is_dir(), "create_dir made <root><path>");
    let dup = post(
        json!({"path": "/s3b", "policy_id": 2, "protocols": ["S3"], "bucket": "bkt", "bucket_owner": "bob", "create_dir": true}),
    );
    assert_eq!(dup.status, 400, "bucket names are unique");
    let id = view["id"].as_u64().unwrap();
    assert_eq!(env.api("PATCH", &format!("views/{id}/"), Some(json!({"path": "/elsewhere"}))).status, 400);
    assert_eq!(env.api("PATCH", &format!("views/{id}/"), Some(json!({"tenant_id": 2}))).status, 400);
    assert_eq!(
        env.api("PATCH", &format!("views/{id}/"), Some(json!({"path": "/s3", "share": "s"}))).status,
        200
    );
    // logical_capacity = bytes under the path.
    std::fs::write(env.sim.root().join("s3/file"), vec![7u8; 1234]).unwrap();
    assert_eq!(env.api("GET", &format!("views/{id}/"), None).json()["logical_capacity"], 1234);
    // Deleting the view keeps the data.
    assert_eq!(env.api("DELETE", &format!("views/{id}/"), None).status, 204);
    assert_eq!(std::fs::read(env.sim.root().join("s3/file")).unwrap().len(), 1234);
    let nfs = post(json!({"path": "/s3", "policy_id": 1, "protocols": ["NFS"]}));
    assert_eq!(nfs.status, 201, "existing directory needs no create_dir: {}", nfs.text);
}

/// §7, §11: quota `used_capacity` follows bytes stored; `path` immutable; cluster capacity
/// follows the data; `capacity/` root_data.
#[test]
fn s7_quota_usage_and_cluster_capacity() {
    let env = start();
    let q = env.api(
        "POST",
        "quotas/",
        Some(json!({"name": "lsu1", "path": "/lsu1", "hard_limit": 1_000_000, "create_dir": true})),
    );
    assert_eq!(q.status, 201, "{}", q.text);
    let id = q.json()["id"].as_u64().unwrap();
    assert_eq!(q.json()["used_capacity"], 0);
    std::fs::create_dir_all(env.sim.root().join("lsu1/img")).unwrap();
    std::fs::write(env.sim.root().join("lsu1/img/a"), vec![1u8; 4096]).unwrap();
    std::fs::write(env.sim.root().join("lsu1/b"), vec![1u8; 100]).unwrap();
    let g = env.api("GET", &format!("quotas/{id}/"), None).json();
    assert_eq!(g["used_capacity"], 4196);
    assert_eq!(g["state"], "OK");
    assert_eq!(env.api("GET", "quotas/?path=/lsu1", None).json()[0]["used_capacity"], 4196);
    assert_eq!(env.api("PATCH", &format!("quotas/{id}/"), Some(json!({"path": "/other"}))).status, 400);
    let p = env.api("PATCH", &format!("quotas/{id}/"), Some(json!({"hard_limit": 4000})));
    assert_eq!(p.status, 200);
    assert_eq!(p.json()["state"], "HARD_EXCEEDED");
    let c = env.api("GET", "clusters/", None).json();
    assert_eq!(c[0]["logical_space_in_use"], 4196);
    assert_eq!(c[0]["free_logical_space"], json!((10u64 << 40) - 4196));
    assert_eq!(c[0]["quotas_used_capacity"], 4196);
    let cap = env.api("GET", "capacity/?path=/lsu1", None).json();
    assert_eq!(cap["root_data"], json!([4196, 4196, 4196]));
    assert_eq!(cap["capacity_rules"]["hard_limit"], 4000);
    let adhoc = env
        .api(
            "GET",
            "monitors/ad_hoc_query/?object_type=cluster&prop_list=Capacity,logical_space_in_use",
            None,
        )
        .json();
    assert_eq!(adhoc["data"][0][2], 4196);
}

/// §6, §10: users, access keys (POST 200, PATCH 204, DELETE with a JSON body 204),
/// locals3keys, s3keys.
#[test]
fn s10_users_and_access_keys() {
    let env = start();
    let (id, ak, _sk) = env.s3_user("cosi-bucket");
    let u = env.api("GET", &format!("users/{id}/"), None).json();
    assert_eq!(u["access_keys"], json!([{"key": ak, "status": "enabled"}]));
    assert!(u.get("password").is_none());
    let p = env.api(
        "PATCH",
        &format!("users/{id}/access_keys/"),
        Some(json!({"access_key": ak, "enabled": false})),
    );
    assert_eq!((p.status, p.text.as_str()), (204, ""));
    let l = env.api("GET", &format!("locals3keys/?user_id={id}"), None).json();
    assert_eq!(l[0]["enabled"], false);
    assert!(l[0].get("secret_key").is_none());
    let d = env.api("DELETE", &format!("users/{id}/access_keys/"), Some(json!({"access_key": ak})));
    assert_eq!(d.status, 204);
    assert_eq!(
        env.api("DELETE", &format!("users/{id}/access_keys/"), Some(json!({"access_key": ak}))).status,
        404
    );
    assert_eq!(
        env.api("POST", "users/", Some(json!({"name": "cosi-bucket"}))).status,
        400,
        "unique user names"
    );
    let mine = env.api("POST", "s3keys/", None);
    assert_eq!(mine.status, 201);
    let k = mine.json()["access_key"].as_str().unwrap().to_string();
    assert_eq!(env.api("GET", "s3keys/", None).json()["access_keys"][0]["access_key"], json!(k));
    assert_eq!(env.api("DELETE", &format!("s3keys/{k}/"), None).status, 204);
    let td = env.api("PATCH", &format!("users/{id}/tenant_data/"), Some(json!({"s3_superuser": true})));
    assert_eq!(td.status, 200, "{}", td.text);
    assert_eq!(td.json()["s3_superuser"], true);
    assert_eq!(env.api("GET", &format!("users/{id}/"), None).json()["s3_superuser"], true);
    assert_eq!(env.api("GET", "vtasks/", None).json(), json!([]));
    assert_eq!(env.api("GET", "vtasks/5/", None).status, 404);
    assert_eq!(env.api("DELETE", &format!("users/{id}/"), None).status, 204);
}

/// §8: the seeded VIP pool covers the VIP listeners; vips/ lists each with its pool name.
#[test]
fn s8_vippools_and_vips() {
    let env = start();
    let pools = env.api("GET", "vippools/?name=protocols", None).json();
    let pool = &pools[0];
    assert_eq!(pool["role"], "PROTOCOLS");
    assert_eq!(pool["enabled"], true);
    let ranges = pool["ip_ranges"].as_array().unwrap();
    let vips = env.api("GET", "vips/?vippool__name=protocols", None).json();
    let ips: Vec<String> =
        vips.as_array().unwrap().iter().map(|v| v["ip"].as_str().unwrap().to_string()).collect();
    for ep in env.sim.s3_endpoints() {
        let ip = ep.trim_start_matches("http://").split(':').next().unwrap().to_string();
        assert!(ips.contains(&ip), "{ip} in {ips:?}");
        let n: u32 = ip.parse::<std::net::Ipv4Addr>().unwrap().into();
        assert!(ranges.iter().any(|r| {
            let a: u32 = r[0].as_str().unwrap().parse::<std::net::Ipv4Addr>().unwrap().into();
            let b: u32 = r[1].as_str().unwrap().parse::<std::net::Ipv4Addr>().unwrap().into();
            a <= n && n <= b
        }));
    }
    assert_eq!(vips[0]["vippool"], "protocols");
    let np = env.api("POST", "vippools/", Some(json!({"name": "repl", "ip_ranges": [["10.1.0.1", "10.1.0.4"]], "subnet_cidr": 24, "role": "REPLICATION"})));
    assert_eq!(np.status, 201, "{}", np.text);
    assert_eq!(env.api("GET", "vips/?vippool__name=repl", None).json().as_array().unwrap().len(), 4);
    assert_eq!(
        env.api(
            "POST",
            "vippools/",
            Some(json!({"ip_ranges": [["10.1.0.9", "10.1.0.4"]], "subnet_cidr": 24}))
        )
        .status,
        400
    );
    assert_eq!(env.api("GET", "tenants/", None).json()[0]["id"], 1);
}

/// §9, §12.5: folders API (create, stat, trash delete and its two error texts).
#[test]
fn s9_folders() {
    let env = start();
    assert_eq!(
        env.api("POST", "folders/create_folder/", Some(json!({"path": "/tmpdir/a", "tenant_id": 1}))).status,
        200
    );
    std::fs::write(env.sim.root().join("tmpdir/a/f"), b"x").unwrap();
    let s = env.api("POST", "folders/stat_path/", Some(json!({"path": "/tmpdir/a", "tenant_id": 1})));
    assert_eq!(s.status, 200);
    assert_eq!(s.json()["is_directory"], true);
    assert_eq!(s.json()["children"], 1);
    let nd = env.api("DELETE", "folders/delete_folder/", Some(json!({"path": "/nope", "tenant_id": 1})));
    assert_eq!(nd.status, 400);
    assert!(nd.text.contains("no such directory"));
    env.sim.set_trash_enabled(false);
    let td = env.api("DELETE", "folders/delete_folder/", Some(json!({"path": "/tmpdir/a", "tenant_id": 1})));
    assert_eq!(td.status, 400);
    assert!(td.text.contains("trash folder disabled"));
    env.sim.set_trash_enabled(true);
    assert_eq!(
        env.api("DELETE", "folders/delete_folder/", Some(json!({"path": "/tmpdir/a", "tenant_id": 1})))
            .status,
        200
    );
    assert!(!env.sim.root().join("tmpdir/a").exists());
}

/// §2: X-Tenant-Name scoping; §12: plain-HTTP VMS when TLS is off.
#[test]
fn s2_tenant_header_and_plain_http() {
    let env = start_with(|c| c.tls = false);
    assert!(env.sim.vms_url().starts_with("http://"));
    assert!(env.sim.ca_pem().is_none());
    let r = env.raw("GET", "/api/views/", Some(&env.admin_auth()), None);
    assert_eq!(r.status, 200);
    let resp = env
        .agent
        .run(
            http::Request::builder()
                .uri(format!("{}/api/viewpolicies/", env.sim.vms_url()))
                .header("authorization", env.admin_auth())
                .header("x-tenant-name", "default")
                .body(Vec::new())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = env
        .agent
        .run(
            http::Request::builder()
                .uri(format!("{}/api/viewpolicies/", env.sim.vms_url()))
                .header("authorization", env.admin_auth())
                .header("x-tenant-name", "ghost")
                .body(Vec::new())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

/// §6, §12.5: snapshots keep the trailing slash on `path` and are SUCCEED at once.
#[test]
fn s6_snapshots() {
    let env = start();
    assert_eq!(
        env.api("POST", "folders/create_folder/", Some(json!({"path": "/snapme", "tenant_id": 1}))).status,
        200
    );
    let r = env.api(
        "POST",
        "snapshots/",
        Some(json!({"name": "s1", "path": "/snapme/", "indestructible": false})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let s = r.json();
    assert_eq!(s["path"], "/snapme/");
    assert_eq!(s["state"], "SUCCEED");
    assert_eq!(
        env.api("GET", "snapshots/?path__startswith=/snapme", None).json().as_array().unwrap().len(),
        1
    );
    assert_eq!(env.api("POST", "snapshots/", Some(json!({"name": "s2", "path": "/missing/"}))).status, 400);
    let id = s["id"].as_u64().unwrap();
    assert_eq!(env.api("DELETE", &format!("snapshots/{id}/"), None).status, 204);
}

#[test]
fn sim_is_send_and_sync() {
    fn is<T: Send + Sync>() {}
    is::<vast_sim::Sim>();
}
