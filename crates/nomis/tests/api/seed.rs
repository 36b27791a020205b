use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use tandem_nomis::{SeedOptions, SeedSummary, seed};
use tandem_platform::{both_backends, db::testing::TestBackend};

use crate::support::{App, app};

/// Every seeded row, as text, in key order.
async fn dump(app: &App) -> Vec<Vec<Option<String>>> {
    let mut all = Vec::new();
    for (table, key) in [
        ("offenders", "offender_id"),
        ("offender_bookings", "offender_book_id"),
        ("offender_non_associations", "offender_id, ns_offender_id"),
        (
            "offender_na_details",
            "offender_id, ns_offender_id, type_seq",
        ),
    ] {
        all.extend(
            app.rows(&format!("SELECT * FROM {table} ORDER BY {key}"))
                .await,
        );
    }
    all
}

fn options(seed: u64) -> SeedOptions {
    SeedOptions {
        prisoners: 400,
        prisons: vec!["MDI".into(), "LEI".into()],
        seed,
        non_association_pairs: None,
    }
}

async fn the_same_seed_gives_the_same_estate(backend: TestBackend) {
    let first = app(backend).await;
    let second = app(backend).await;
    let third = app(backend).await;
    let a = seed(&first.db, &options(42)).await.unwrap();
    let b = seed(&second.db, &options(42)).await.unwrap();
    let c = seed(&third.db, &options(43)).await.unwrap();
    assert_eq!(a, b);
    let dump_a = dump(&first).await;
    assert!(!dump_a.is_empty());
    assert_eq!(dump_a, dump(&second).await, "same seed, same rows");
    assert_ne!(dump_a, dump(&third).await, "another seed, other rows");
    assert_eq!(c.prisoners, 400);

    // Counts agree with the tables; no events for history.
    assert_eq!(a.prisoners, 400);
    assert_eq!(
        a.non_association_pairs, 100,
        "one pair per four prisoners by default"
    );
    assert_eq!(first.count("offenders").await, 400);
    assert_eq!(first.count("offender_bookings").await as usize, a.bookings);
    assert!(a.bookings > 400, "some prisoners have an earlier booking");
    assert_eq!(
        first.count("offender_non_associations").await as usize,
        2 * a.non_association_pairs
    );
    assert_eq!(
        first.count("offender_na_details").await as usize,
        a.non_association_details
    );
    assert!(
        a.non_association_details > 2 * a.non_association_pairs,
        "several sequences for some pairs"
    );
    assert_eq!(first.count("outbox").await, 0);
    let (_, page) = first.get("/non-associations/ids?size=1").send().await;
    assert_eq!(page["totalElements"], 100);
}

async fn seeded_data_looks_like_nomis(backend: TestBackend) {
    let app = app(backend).await;
    let summary: SeedSummary = seed(
        &app.db,
        &SeedOptions {
            prisoners: 300,
            prisons: vec![],
            seed: 7,
            non_association_pairs: Some(150),
        },
    )
    .await
    .unwrap();
    assert_eq!(summary.non_association_pairs, 150);
    let details = app
        .rows(
            "SELECT d.offender_id, d.ns_offender_id, d.type_seq, d.ns_type, d.ns_reason_code, d.recip_ns_reason_code, \
             d.ns_expiry_date, d.authorized_staff, d.comment_text, d.ns_effective_date FROM offender_na_details d",
        )
        .await;
    let mut seqs: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut reasons: BTreeMap<(String, String, String), (String, String)> = BTreeMap::new();
    for d in &details {
        let (x, y) = (d[0].clone().unwrap(), d[1].clone().unwrap());
        seqs.entry((x.clone(), y.clone()))
            .or_default()
            .insert(d[2].clone().unwrap());
        reasons.insert(
            (x, y, d[2].clone().unwrap()),
            (d[4].clone().unwrap(), d[5].clone().unwrap()),
        );
    }
    for ((x, y), s) in &seqs {
        assert_eq!(
            seqs.get(&(y.clone(), x.clone())),
            Some(s),
            "both directions carry the same sequences"
        );
        for seq in s {
            let forward = &reasons[&(x.clone(), y.clone(), seq.clone())];
            let reverse = &reasons[&(y.clone(), x.clone(), seq.clone())];
            assert_eq!(
                (&forward.0, &forward.1),
                (&reverse.1, &reverse.0),
                "reasons swap between directions"
            );
        }
    }
    let types: BTreeSet<_> = details.iter().filter_map(|d| d[3].clone()).collect();
    for t in ["CELL", "LAND", "WING", "NONEX", "TNA"] {
        assert!(types.contains(t), "type {t} appears: {types:?}");
    }
    assert!(details.iter().any(|d| d[6].is_none()), "open records");
    assert!(details.iter().any(|d| d[6].is_some()), "closed records");
    assert!(
        details.iter().any(|d| d[7].is_none()),
        "a missing authoriser"
    );
    assert!(
        details
            .iter()
            .any(|d| d[8].as_deref().is_some_and(|c| c.ends_with(' '))),
        "trailing spaces"
    );
    assert!(
        details
            .iter()
            .any(|d| d[9].as_deref().is_some_and(|e| e.starts_with("199"))),
        "1990s records"
    );
    assert!(
        details.iter().any(|d| d[4].as_deref() == Some("UNKNOWN")),
        "an UNKNOWN reason"
    );
    let bad_numbers = app.rows("SELECT offender_no FROM offenders").await;
    assert!(
        bad_numbers
            .iter()
            .all(|r| tandem_platform::ids::PrisonerNumber::looks_like(r[0].as_deref().unwrap()))
    );

    // The seeded estate reads through the API like any other.
    let pair = app
        .rows(
            "SELECT o1.offender_no, o2.offender_no FROM offender_na_details d \
             JOIN offenders o1 ON o1.offender_id = d.offender_id JOIN offenders o2 ON o2.offender_id = d.ns_offender_id \
             ORDER BY o1.offender_no, o2.offender_no",
        )
        .await;
    let (a, b) = (pair[0][0].clone().unwrap(), pair[0][1].clone().unwrap());
    let (status, all) = app
        .get(&format!(
            "/non-associations/offender/{a}/ns-offender/{b}/all"
        ))
        .send()
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert!(!all.as_array().unwrap().is_empty());

    // Seeding again adds a new estate beside the first.
    let more = seed(
        &app.db,
        &SeedOptions {
            prisoners: 10,
            prisons: vec![],
            seed: 7,
            non_association_pairs: Some(2),
        },
    )
    .await
    .unwrap();
    assert_eq!(more.prisoners, 10);
    assert_eq!(app.count("offenders").await, 310);
}

async fn impossible_seeds_are_refused(backend: TestBackend) {
    let app = app(backend).await;
    let err = seed(
        &app.db,
        &SeedOptions {
            prisoners: 4,
            prisons: vec![],
            seed: 1,
            non_association_pairs: Some(10),
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("at most"), "{err}");
    let err = seed(
        &app.db,
        &SeedOptions {
            prisoners: 4,
            prisons: vec!["NOPE".into()],
            seed: 1,
            non_association_pairs: None,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("NOPE"), "{err}");
    assert_eq!(app.count("offenders").await, 0);
}

both_backends!(
    the_same_seed_gives_the_same_estate,
    seeded_data_looks_like_nomis,
    impossible_seeds_are_refused
);
