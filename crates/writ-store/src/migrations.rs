//! The schema, one list of steps per database, applied in order; `schema_version` records
//! how far a database has come. Both lists describe the same tables with the same column
//! types as the queries read them (BIGINT for integers, TEXT, BLOB/BYTEA); a step once
//! released is never edited, only followed by another.

/// The credentials table, with the database's type for bytes.
macro_rules! credentials_table {
    ($bytes:literal) => {
        concat!(
            "CREATE TABLE credentials (
                tenant        TEXT NOT NULL,
                upstream      TEXT NOT NULL,
                version       BIGINT NOT NULL,
                fingerprint   TEXT NOT NULL,
                master_kid    TEXT,
                wrapped_key   ",
            $bytes,
            ",
                ciphertext    ",
            $bytes,
            ",
                active        BIGINT NOT NULL,
                created_at    BIGINT NOT NULL,
                activated_at  BIGINT,
                retired_at    BIGINT,
                created_by    TEXT,
                PRIMARY KEY (tenant, upstream, version)
            )"
        )
    };
}

/// The approvals table, with the database's type for bytes. `writ_revocation_ids` holds the
/// writ's blocks' revocation ids (hex) separated by spaces.
macro_rules! approvals_table {
    ($bytes:literal) => {
        concat!(
            "CREATE TABLE approvals (
                id                   TEXT PRIMARY KEY,
                tenant               TEXT NOT NULL,
                agent                TEXT NOT NULL,
                kind                 TEXT NOT NULL,
                status               TEXT NOT NULL,
                reason               TEXT NOT NULL,
                summary              TEXT NOT NULL,
                summary_digest       TEXT NOT NULL,
                request_digest       TEXT NOT NULL,
                writ_token_id        TEXT,
                writ_revocation_ids  TEXT NOT NULL,
                writ_issued_at       BIGINT,
                ticket               ",
            $bytes,
            ",
                mint_request         TEXT,
                created_at           BIGINT NOT NULL,
                expires_at           BIGINT NOT NULL,
                decided_by           TEXT,
                decided_method       TEXT,
                decided_at           BIGINT,
                decision_reason      TEXT,
                block                ",
            $bytes,
            ",
                poll_interval        BIGINT NOT NULL,
                next_poll_at         BIGINT NOT NULL,
                finished_at          BIGINT
            )"
        )
    };
}

/// SQLite. The first seven steps predate PostgreSQL support.
pub(crate) const SQLITE: &[&str] = &[
    "CREATE TABLE agents (
        tenant        TEXT NOT NULL,
        name          TEXT NOT NULL,
        ceiling       TEXT NOT NULL,
        max_ttl_secs  INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
    )",
    "CREATE TABLE revocations (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        body        TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    )",
    "ALTER TABLE agents ADD COLUMN credentials TEXT NOT NULL DEFAULT '{}'",
    // Who revoked and why; when and by whom a revocation was lifted. Older rows keep
    // NULLs: recorded by nobody named, for no stated reason, in force.
    "ALTER TABLE revocations ADD COLUMN revoked_by TEXT",
    "ALTER TABLE revocations ADD COLUMN reason TEXT",
    "ALTER TABLE revocations ADD COLUMN lifted_at INTEGER",
    "ALTER TABLE revocations ADD COLUMN lifted_by TEXT",
    TENANTS,
    // Every tenant an agent names exists.
    "INSERT INTO tenants (name, created_at) SELECT DISTINCT tenant, 0 FROM agents",
    UPSTREAMS,
    credentials_table!("BLOB"),
    POLICIES,
    LIMITS,
    "CREATE TABLE changes (
        seq   INTEGER PRIMARY KEY AUTOINCREMENT,
        at    BIGINT NOT NULL,
        what  TEXT NOT NULL
    )",
    approvals_table!("BLOB"),
    APPROVALS_WAITING,
    APPROVERS,
    CONSOLE_ADMINS,
    ENROLMENTS,
    PASSKEYS,
    CEREMONIES,
    CONSOLE_SESSIONS,
];

/// PostgreSQL: the same tables, spelled for it, created at once.
pub(crate) const POSTGRES: &[&str] = &[
    "CREATE TABLE agents (
        tenant        TEXT NOT NULL,
        name          TEXT NOT NULL,
        ceiling       TEXT NOT NULL,
        max_ttl_secs  BIGINT NOT NULL,
        credentials   TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (tenant, name)
    )",
    "CREATE TABLE revocations (
        id          BIGSERIAL PRIMARY KEY,
        body        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        revoked_by  TEXT,
        reason      TEXT,
        lifted_at   BIGINT,
        lifted_by   TEXT
    )",
    TENANTS,
    UPSTREAMS,
    credentials_table!("BYTEA"),
    POLICIES,
    LIMITS,
    "CREATE TABLE changes (
        seq   BIGSERIAL PRIMARY KEY,
        at    BIGINT NOT NULL,
        what  TEXT NOT NULL
    )",
    approvals_table!("BYTEA"),
    APPROVALS_WAITING,
    APPROVERS,
    CONSOLE_ADMINS,
    ENROLMENTS,
    PASSKEYS,
    CEREMONIES,
    CONSOLE_SESSIONS,
];

const TENANTS: &str = "CREATE TABLE tenants (
    name          TEXT PRIMARY KEY,
    display_name  TEXT,
    created_at    BIGINT NOT NULL
)";

/// `tenant` is `''` for a shared upstream (serving every tenant).
const UPSTREAMS: &str = "CREATE TABLE upstreams (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
)";

const POLICIES: &str = "CREATE TABLE policies (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    datalog     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
)";

const LIMITS: &str = "CREATE TABLE limits (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
)";

/// Approvals are counted per agent and tenant while they wait.
const APPROVALS_WAITING: &str =
    "CREATE INDEX approvals_waiting ON approvals (tenant, agent, status, expires_at)";

/// `token_hash` is the SHA-256 (hex) of the approver's token; the token is never stored.
const APPROVERS: &str = "CREATE TABLE approvers (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
)";

/// People who may sign in to the console as admins; `tenant` is `''` for an admin of
/// every tenant.
const CONSOLE_ADMINS: &str = "CREATE TABLE console_admins (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
)";

/// One-time enrolment links: `token_hash` is the SHA-256 (hex) of the link's token; the
/// token is never stored. `role` is `admin` or `approver`.
const ENROLMENTS: &str = "CREATE TABLE enrolments (
    token_hash  TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
)";

/// Console passkeys: the public key and counter, as the WebAuthn library's JSON.
const PASSKEYS: &str = "CREATE TABLE passkeys (
    credential_id  TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    name           TEXT NOT NULL,
    passkey        TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
)";

/// WebAuthn ceremonies between their two halves (any gateway may finish one another
/// began); `id_hash` is the SHA-256 (hex) of the id the browser holds.
const CEREMONIES: &str = "CREATE TABLE ceremonies (
    id_hash     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
)";

/// `id_hash` is the SHA-256 (hex) of the session id; the id is never stored.
const CONSOLE_SESSIONS: &str = "CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    person      TEXT NOT NULL,
    tenant      TEXT,
    role        TEXT NOT NULL,
    method      TEXT NOT NULL,
    proof       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    idle_until  BIGINT NOT NULL
)";
