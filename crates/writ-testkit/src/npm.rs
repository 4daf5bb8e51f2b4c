//! The npm packages the tests run (the MCP conformance suite, axe-core), installed by the
//! tests themselves into `target/npm` from the pinned `npm/package-lock.json`, with the
//! Node.js those packages need installed beside them as an npm package.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned manifest and lock file (exact versions, integrity hashes).
const PACKAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/npm");

/// The installed `@modelcontextprotocol/conformance` command line, run by the pinned
/// Node.js (the suite imports `fs.globSync`, which Node.js 20 lacks).
#[derive(Debug, Clone)]
pub struct McpConformance {
    node: PathBuf,
    cli: PathBuf,
}

impl McpConformance {
    /// A command running the suite's CLI with `args`, in `dir` (where it writes nothing
    /// unless told: pass `--output-dir`).
    pub fn command(&self, dir: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.node);
        command.arg(&self.cli).current_dir(dir);
        command
    }
}

/// Returns the conformance suite, installing the pinned packages into `target/npm` with
/// `npm ci` when the lock file changed. Call it from a test: test binaries live in
/// `target/<profile>/deps/`.
pub fn mcp_conformance() -> McpConformance {
    let dir = npm_env();
    let node = dir.join("node_modules/.bin/node");
    let cli = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(node.exists(), "{} missing after npm ci", node.display());
    assert!(cli.exists(), "{} missing after npm ci", cli.display());
    McpConformance { node, cli }
}

/// The `target/` directory of the running test binary (`target/<profile>/deps/<test>`).
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.ancestors()
        .nth(3)
        .expect("test binary under target/<profile>/deps/")
        .to_path_buf()
}

/// `target/npm` with the pinned packages installed.
pub(crate) fn npm_env() -> PathBuf {
    let target = target_dir();
    let dir = target.join("npm");
    let packages = Path::new(PACKAGES);
    let manifest =
        std::fs::read_to_string(packages.join("package.json")).expect("npm/package.json");
    let lock =
        std::fs::read_to_string(packages.join("package-lock.json")).expect("npm/package-lock.json");
    let wanted = format!("{manifest}{lock}");
    let ready = dir.join(".installed");
    // Several test binaries may get here at once: one installs, the others wait on the lock.
    std::fs::create_dir_all(&dir).expect("target/npm");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target.join("npm.lock"))
        .expect("lock file");
    lock_file.lock().expect("lock target/npm");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
        std::fs::write(dir.join("package.json"), &manifest).expect("copy package.json");
        std::fs::write(dir.join("package-lock.json"), &lock).expect("copy package-lock.json");
        // `npm ci` installs exactly the lock file's versions and hashes, or fails.
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("npm (install nodejs and npm)");
        assert!(
            out.status.success(),
            "npm ci in {} failed (is the npm registry reachable?):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, wanted).expect("mark target/npm ready");
    }
    drop(lock_file);
    dir
}
