//! The storage layer on both backends: migrations, write transactions, rollback, unique
//! violations and schema isolation.

use sea_orm::{ConnectionTrait, TransactionTrait};
use sea_orm_migration::prelude::*;
use tandem_platform::db::{
    Db, is_unique_violation,
    testing::{TestBackend, TestStorage},
};

#[derive(DeriveIden)]
enum Probe {
    Table,
    Id,
    Name,
}

struct CreateProbe;
impl MigrationName for CreateProbe {
    fn name(&self) -> &str {
        "m0001_probe"
    }
}
#[async_trait::async_trait]
impl MigrationTrait for CreateProbe {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Probe::Table)
                .col(
                    ColumnDef::new(Probe::Id)
                        .big_integer()
                        .not_null()
                        .primary_key()
                        .auto_increment(),
                )
                .col(
                    ColumnDef::new(Probe::Name)
                        .string_len(40)
                        .not_null()
                        .unique_key(),
                )
                .to_owned(),
        )
        .await
    }
}

struct Migrator;
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateProbe)]
    }
}

async fn count(db: &Db) -> i64 {
    count_on(db.conn(), db).await
}

async fn count_on<C: ConnectionTrait>(c: &C, db: &Db) -> i64 {
    let row = c
        .query_one_raw(db.statement("SELECT COUNT(*) AS n FROM probe", vec![]))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn insert<C: ConnectionTrait>(c: &C, db: &Db, name: &str) -> Result<(), DbErr> {
    c.execute_raw(db.statement("INSERT INTO probe (name) VALUES ($1)", vec![name.into()]))
        .await
        .map(|_| ())
}

async fn writes_commit_and_roll_back(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("probe-service").await;
    db.migrate::<Migrator>().await.unwrap();
    // Migrations are idempotent at start-up.
    db.migrate::<Migrator>().await.unwrap();

    let txn = db.begin_write().await.unwrap();
    insert(&txn, &db, "kept").await.unwrap();
    txn.commit().await.unwrap();

    let txn = db.begin_write().await.unwrap();
    insert(&txn, &db, "discarded").await.unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(count(&db).await, 1);

    let err = insert(db.conn(), &db, "kept").await.unwrap_err();
    assert!(is_unique_violation(&err), "{err}");
    db.ping().await.unwrap();
}

async fn services_are_isolated(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let a = storage.db("service-a").await;
    let b = storage.db("service-b").await;
    a.migrate::<Migrator>().await.unwrap();
    b.migrate::<Migrator>().await.unwrap();
    insert(a.conn(), &a, "only-in-a").await.unwrap();
    assert_eq!(count(&a).await, 1);
    assert_eq!(count(&b).await, 0);
}

async fn concurrent_writers_queue_instead_of_failing(backend: TestBackend) {
    let storage = TestStorage::new(backend).await;
    let db = storage.db("busy").await;
    db.migrate::<Migrator>().await.unwrap();
    let mut handles = Vec::new();
    for i in 0..16 {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            let txn = db.begin_write().await.unwrap();
            let n = count_on(&txn, &db).await;
            insert(&txn, &db, &format!("w{i}-{n}")).await.unwrap();
            txn.commit().await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(count(&db).await, 16);
    let _ = db.conn().begin().await.unwrap();
}

tandem_platform::both_backends!(
    writes_commit_and_roll_back,
    services_are_isolated,
    concurrent_writers_queue_instead_of_failing
);

/// SQLite's write transactions all run on one connection that readers never get: a TEMP
/// table (private to the connection that made it) made in one write transaction is there
/// in the next, even while readers hold every other connection the pool had idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_share_one_connection_that_readers_never_get() {
    let storage = TestStorage::new(TestBackend::Sqlite).await;
    let db = storage.db("writer").await;
    db.migrate::<Migrator>().await.unwrap();
    let txn = db.begin_write().await.unwrap();
    txn.execute_unprepared("CREATE TEMP TABLE made_by_the_writer (x INTEGER)")
        .await
        .unwrap();
    txn.commit().await.unwrap();
    let mut readers = Vec::new();
    for _ in 0..4 {
        let r = db.begin_read().await.unwrap();
        count_on(&r, &db).await;
        readers.push(r);
    }
    for i in 0..4 {
        let txn = db.begin_write().await.unwrap();
        txn.execute_unprepared(&format!("INSERT INTO made_by_the_writer VALUES ({i})"))
            .await
            .unwrap_or_else(|e| panic!("write {i} ran on another connection: {e}"));
        txn.commit().await.unwrap();
    }
    drop(readers);
}

/// An integer `PRAGMA` as `conn` sees it.
async fn pragma<C: ConnectionTrait>(conn: &C, db: &Db, name: &str) -> i32 {
    conn.query_one_raw(db.statement(&format!("PRAGMA {name}"), vec![]))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("PRAGMA {name} answered nothing"))
        .try_get_by_index(0)
        .unwrap()
}

/// Statement journals stay in memory and commits leave checkpoints to the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_keep_temporary_files_in_memory_and_checkpoint_late() {
    let storage = TestStorage::new(TestBackend::Sqlite).await;
    let db = storage.db("pragmas").await;
    for conn in [
        db.begin_read().await.unwrap(),
        db.begin_write().await.unwrap(),
    ] {
        assert_eq!(
            pragma(&conn, &db, "temp_store").await,
            2,
            "temp_store = MEMORY"
        );
        assert_eq!(pragma(&conn, &db, "wal_autocheckpoint").await, 10_000);
        conn.commit().await.unwrap();
    }
}
