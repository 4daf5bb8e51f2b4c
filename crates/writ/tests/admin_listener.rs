//! `[admin] listen`: the admin API, `/metrics` and the console on a listener of their own,
//! the data plane on the other, each answering 404 for the other's routes; a real
//! `writ serve` process, reached with `curl`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use writ_testkit::{ServeProcess, TestCertificates};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `curl` `url` with `args`: the status and the body.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_string())
}

fn get(url: &str) -> (u16, String) {
    curl(url, &[])
}

fn with_writ(url: &str, writ: &str) -> (u16, String) {
    curl(url, &["-H", &format!("Authorization: Bearer {writ}")])
}

fn chat(url: &str, writ: &str) -> (u16, String) {
    curl(
        url,
        &[
            "-H",
            &format!("Authorization: Bearer {writ}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            CHAT,
        ],
    )
}

/// The gateway's JSON 404, as for any unknown path.
fn assert_not_found((status, body): (u16, String), what: &str) {
    assert_eq!(status, 404, "{what}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body}"));
    assert_eq!(v["error"]["code"], "not_found", "{what}: {body}");
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A gateway with the demo, its data plane on a port picked at start and its admin
/// surface at `127.0.0.1:<admin_port>` (fixed, so the CLI finds it from `writ.toml`).
fn split_gateway(dir: &Path, admin_port: u16, extra: &str) -> ServeProcess {
    std::fs::write(
        dir.join("writ.toml"),
        format!("{extra}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
    )
    .unwrap();
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

#[test]
fn the_admin_surface_is_served_apart_and_the_data_plane_port_answers_it_404() {
    let dir = tempfile::tempdir().unwrap();
    let admin_port = free_port();
    let server = split_gateway(dir.path(), admin_port, "");
    assert_eq!(
        server.admin_url(""),
        format!("http://127.0.0.1:{admin_port}")
    );
    assert!(
        server
            .banner()
            .contains(&format!("admin: http://127.0.0.1:{admin_port} (admin API")),
        "{}",
        server.banner()
    );
    let (data, admin) = (|p: &str| server.url(p), |p: &str| server.admin_url(p));

    // Health on both.
    for url in [
        data("/healthz"),
        admin("/healthz"),
        data("/readyz"),
        admin("/readyz"),
    ] {
        assert_eq!(get(&url).0, 200, "{url}");
    }
    // The public key set on both: agents and verifiers read it.
    assert_eq!(get(&data("/.well-known/writ-keys")).0, 200);
    assert_eq!(get(&admin("/.well-known/writ-keys")).0, 200);

    // The admin surface on the admin port: the API with an admin writ, /metrics, the
    // console's sign-in page and its assets.
    let admin_writ = ok(server.writ(&["admin", "token"])).trim().to_string();
    let (status, body) = with_writ(&admin("/admin/v1/tenants"), &admin_writ);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("default"), "{body}");
    let (status, metrics) = get(&admin("/metrics"));
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE"), "{metrics}");
    let (status, page) = get(&admin("/console/sign-in"));
    assert_eq!(status, 200);
    assert!(page.contains("<form"), "{page}");
    assert_eq!(get(&admin("/console/assets/console.css")).0, 200);
    assert_eq!(get(&admin("/admin/v1/openapi.json")).0, 200);

    // None of it on the data-plane port: the usual JSON 404, writ or not.
    for path in [
        "/metrics",
        "/admin/v1/openapi.json",
        "/console",
        "/console/sign-in",
        "/console/assets/console.css",
        "/console/approvals",
    ] {
        assert_not_found(get(&data(path)), path);
    }
    assert_not_found(
        with_writ(&data("/admin/v1/tenants"), &admin_writ),
        "admin API with an admin writ",
    );
    let signed_in = curl(
        &data("/console/session"),
        &["-d", &format!("writ={admin_writ}")],
    );
    assert_not_found(signed_in, "console sign-in on the data port");

    // The data plane on its port, and not on the admin port.
    let writ = server.mint(GRANT, "30s");
    let (status, body) = chat(&data("/v1/chat/completions"), &writ);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("chat.completion"), "{body}");
    assert_not_found(
        chat(&admin("/v1/chat/completions"), &writ),
        "chat on the admin port",
    );
    assert_not_found(
        curl(
            &admin("/oauth2/token"),
            &["-d", "grant_type=client_credentials"],
        ),
        "token endpoint on the admin port",
    );
    assert_not_found(
        get(&admin("/.well-known/oauth-authorization-server")),
        "discovery on the admin port",
    );

    // The CLI finds the admin API at [admin] listen without being told.
    let agents = ok(server.writ(&["agent", "list"]));
    assert!(agents.contains("default/demo"), "{agents}");
    assert!(server.stop().success());
}

/// The console on the admin port: an admin writ signs in there, the session cookie is
/// set, and the approvals page opens with it.
#[test]
fn the_console_signs_in_on_the_admin_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = split_gateway(dir.path(), free_port(), "");
    let admin_writ = ok(server.writ(&["admin", "token"])).trim().to_string();
    let jar = dir.path().join("cookies");
    let jar = jar.to_str().unwrap();
    let origin = server.admin_url("");
    let (status, body) = curl(
        &server.admin_url("/console/session"),
        &[
            "-c",
            jar,
            "-H",
            &format!("Origin: {origin}"),
            "-d",
            &format!("writ={admin_writ}"),
        ],
    );
    assert_eq!(status, 303, "{body}");
    let cookies = std::fs::read_to_string(jar).unwrap();
    assert!(cookies.contains("/console"), "{cookies}");
    let (status, page) = curl(&server.admin_url("/console/approvals"), &["-b", jar]);
    assert_eq!(status, 200, "{page}");
    // A form sent from the data plane's origin is another site's.
    let (status, _) = curl(
        &server.admin_url("/console/session"),
        &[
            "-H",
            &format!("Origin: {}", server.url("")),
            "-d",
            &format!("writ={admin_writ}"),
        ],
    );
    assert_eq!(status, 403);
}

/// With TLS on the data plane, the admin listener serves HTTPS with the same certificate.
#[test]
fn the_admin_listener_serves_tls_when_the_data_plane_does() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate();
    let server = split_gateway(
        dir.path(),
        free_port(),
        &format!(
            "[server]\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
            certs.cert.display(),
            certs.key.display(),
            certs.ca.display()
        ),
    );
    let admin = server.admin_url("/metrics");
    assert!(admin.starts_with("https://"), "{}", server.banner());
    let ca = certs.ca.to_str().unwrap();
    assert_eq!(curl(&admin, &["--cacert", ca]).0, 200);
    // No plaintext admin port next to a TLS data plane.
    let plain = admin.replacen("https://", "http://", 1);
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", &plain])
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&out.stdout), "200");
    assert_not_found(
        curl(&server.url("/metrics"), &["--cacert", ca]),
        "metrics on the TLS data port",
    );
    // The CLI reaches the admin API over HTTPS, trusting tls_ca.
    assert!(ok(server.writ(&["agent", "list"])).contains("default/demo"));
}

fn serve_fails(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn the_data_planes_address_is_refused_for_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("writ.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"0.0.0.0:{port}\"\n"),
    )
    .unwrap();
    let check = Command::new(BIN)
        .args(["config", "check"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!check.status.success());
    let said = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        said.contains("admin.listen") && said.contains("server.listen"),
        "{said}"
    );
    let err = serve_fails(dir.path(), &[]);
    assert!(err.contains("admin.listen"), "{err}");

    // The same once --listen moves the data plane onto the admin address.
    let admin_port = free_port();
    std::fs::write(
        dir.path().join("writ.toml"),
        format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"),
    )
    .unwrap();
    let err = serve_fails(
        dir.path(),
        &["--listen", &format!("127.0.0.1:{admin_port}")],
    );
    assert!(err.contains("admin.listen"), "{err}");
}

#[test]
fn an_unbindable_admin_address_fails_the_start_naming_admin_listen() {
    let dir = tempfile::tempdir().unwrap();
    // Taken by another process; and an address of no interface of this host.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for addr in [taken.as_str(), "192.0.2.1:9091"] {
        std::fs::write(
            dir.path().join("writ.toml"),
            format!("[admin]\nlisten = \"{addr}\"\n"),
        )
        .unwrap();
        let err = serve_fails(dir.path(), &["--listen", "127.0.0.1:0"]);
        assert!(
            err.contains("[admin] listen") && err.contains(addr),
            "{addr}: {err}"
        );
    }
    // Malformed values are refused before anything is opened (a number: as a type error
    // showing the line).
    for bad in ["\"localhost\"", "\"127.0.0.1:70000\"", "9091", "\"\""] {
        std::fs::write(
            dir.path().join("writ.toml"),
            format!("[admin]\nlisten = {bad}\n"),
        )
        .unwrap();
        let err = serve_fails(dir.path(), &["--listen", "127.0.0.1:0"]);
        assert!(
            err.contains("admin.listen") || err.contains("listen = 9091"),
            "{bad}: {err}"
        );
    }
}
