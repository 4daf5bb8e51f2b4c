//! `FreshDatabase`: a PostgreSQL database of one test's own on 127.0.0.1:5432, dropped
//! when the test is done, so tests sharing the server never see each other's rows.

/// The server tests create their databases on (trust auth, database `test` to connect to).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database created for one test; dropped (forcibly) with this value.
pub struct FreshDatabase {
    name: String,
}

impl FreshDatabase {
    /// Creates one. Panics, saying what is needed, when PostgreSQL is not reachable.
    pub async fn create() -> Self {
        let name = format!("writ_test_{}", hex::encode(rand::random::<[u8; 6]>()));
        let pool = sqlx::PgPool::connect(POSTGRES_ADMIN_URL)
            .await
            .expect("PostgreSQL must be reachable on 127.0.0.1:5432 (trust auth, database `test`)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .expect("create a test database");
        pool.close().await;
        Self { name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Dropped outside the test's runtime, which may already be gone.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(POSTGRES_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                }
            });
        })
        .join();
    }
}
