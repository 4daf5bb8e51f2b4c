//! What operators install besides the binary: the hardened systemd unit
//! (`contrib/writ.service`, checked by `systemd-analyze verify`, its command line accepted
//! by `writ`), shell completions and man pages generated from the command line.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_writ");

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/writ.service");
    std::fs::read_to_string(path).unwrap()
}

/// `systemd-analyze verify` on `text` (with its `ExecStart` binary pointed at this build):
/// its status and what it said.
fn verify(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("writ.service");
    std::fs::write(&path, text.replace("/usr/local/bin/writ", BIN)).unwrap();
    // `--man=no`: the page `Documentation=` names is installed with the binary, not here.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian: apt-get install systemd) must be installed");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let text = unit();
    let (ok, said) = verify(&text);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "Environment=WRIT_LOG_FORMAT=json",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}");
    }
    // The check can fail: a misspelled or mistyped setting is reported.
    let (_, said) = verify(&text.replace("ProtectHome=yes", "ProtectHome=bogus"));
    assert!(said.contains("bogus"), "{said}");
    let (_, said) = verify(&text.replace("PrivateTmp=yes", "PrivateTemp=yes"));
    assert!(said.contains("PrivateTemp"), "{said}");
}

#[test]
fn the_units_command_line_is_one_writ_accepts() {
    let exec = unit()
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    assert_eq!(args[0], "serve");
    // Every flag it passes is one `writ serve` has.
    let flags: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| a.starts_with("--"))
        .collect();
    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in flags {
        assert!(help.contains(flag), "writ serve has no {flag}: {help}");
    }
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let bash = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.contains("_writ()") && bash.contains("approve"),
        "{bash}"
    );
    let zsh = String::from_utf8_lossy(&run(&["completions", "zsh"]).stdout).to_string();
    assert!(zsh.starts_with("#compdef writ"), "{zsh}");
    let bad = run(&["completions", "cmd.exe"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));

    let man = run(&["man"]);
    assert!(man.status.success());
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH writ 1"), "{man}");
    assert!(man.contains("serve"), "{man}");
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["man", "--dir", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in ["writ.1", "writ-serve.1", "writ-approve.1"] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
}
