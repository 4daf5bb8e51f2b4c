//! One database per test, on SQLite or on PostgreSQL (127.0.0.1:5432, a fresh database
//! per test), and `on_both!`, which runs each named test on both: shared by the store's
//! suites so the two implementations behind `Store` cannot drift apart.
// Each suite uses part of this.
#![allow(dead_code)]

use writ_store::{Backend, Store};

pub(crate) const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database for one test, removed when dropped.
pub(crate) enum Db {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Db::Postgres(name) = self {
            let name = name.clone();
            // Dropping runs outside the test's runtime, which may be gone.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(pool) = sqlx::PgPool::connect(PG_ADMIN_URL).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&pool)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

impl Db {
    pub(crate) fn path(&self) -> std::path::PathBuf {
        match self {
            Db::Sqlite(dir) => dir.path().join("writ.db"),
            Db::Postgres(_) => unreachable!("a PostgreSQL database has no path"),
        }
    }

    pub(crate) fn url(&self) -> String {
        match self {
            Db::Postgres(name) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
            Db::Sqlite(_) => unreachable!("a SQLite database has no URL"),
        }
    }

    pub(crate) async fn open(&self) -> Store {
        match self {
            Db::Sqlite(_) => Store::open(&self.path()).await.expect("open SQLite"),
            Db::Postgres(_) => Store::connect(&self.url())
                .await
                .expect("connect PostgreSQL"),
        }
    }
}

pub(crate) async fn database(backend: Backend) -> Db {
    match backend {
        Backend::Sqlite => Db::Sqlite(tempfile::tempdir().expect("tempdir")),
        Backend::Postgres => {
            let name = format!("writ_store_{}", hex::encode(rand::random::<[u8; 6]>()));
            let pool = sqlx::PgPool::connect(PG_ADMIN_URL)
                .await
                .expect("PostgreSQL on 127.0.0.1:5432 (database `test`) must be reachable");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create database");
            Db::Postgres(name)
        }
    }
}

/// Runs `$body` (an async fn taking a `Db`) on both databases.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::database(writ_store::Backend::Sqlite).await).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::database(writ_store::Backend::Postgres).await).await })*
        }
    };
}
