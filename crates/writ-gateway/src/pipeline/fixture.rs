//! Test fixture for the phases' unit tests: a gateway started from TOML text on a
//! temporary data directory with a fixed clock, its upstreams, and writs it trusts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_token::{ManualClock, MintRequest, VerifiedWrit, parse_grants};

use crate::config::{Config, RawConfig};
use crate::gateway::Gateway;
use crate::upstream::client::Upstream;

/// The fixed time every fixture gateway reads.
pub(crate) fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A validated config from TOML text; secrets are written inline.
pub(crate) fn config(toml: &str) -> Config {
    Config::from_raw(RawConfig::from_toml(toml).unwrap(), &|_| None).unwrap()
}

/// The upstream `name` of `toml`, built as the gateway builds it.
pub(crate) fn upstream(toml: &str, name: &str) -> Upstream {
    Upstream::new(name, &config(toml).upstreams[name]).unwrap()
}

/// A started gateway; the directory holds its data and must outlive it.
pub(crate) struct Fixture {
    pub(crate) gw: Arc<Gateway>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Starts a gateway from `toml` at [`t0`].
    pub(crate) async fn start(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = writ_store::DataDir::open_or_create(dir.path().join("writ-data")).unwrap();
        let store = writ_store::Store::open(&data.database_path())
            .await
            .unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let gw = Gateway::start(&config(toml), data, store, clock)
            .await
            .unwrap();
        Self {
            gw: Arc::new(gw),
            _dir: dir,
        }
    }

    /// A writ of agent `demo` in tenant `default`, signed by the gateway's key, whose
    /// ceiling and grants are both `grants` (JSON), bound to `cnf_jkt` when given.
    pub(crate) fn mint(&self, grants: &str, cnf_jkt: Option<&str>) -> String {
        let grants = parse_grants(grants).unwrap();
        let req = MintRequest {
            tenant: "default",
            agent: "demo",
            ceiling: &grants,
            grants: &grants,
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now: t0(),
            cnf_jkt,
            audience: None,
        };
        writ_token::mint(&self.gw.keys().signing, &req).unwrap().0
    }

    /// `writ` verified against the gateway's keys.
    pub(crate) fn verified(&self, writ: &str) -> Arc<VerifiedWrit> {
        let keys = self.gw.keys();
        Arc::new(
            writ_token::decode(writ)
                .unwrap()
                .verify(&keys.trusted)
                .unwrap(),
        )
    }
}
