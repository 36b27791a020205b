//! The schema enforces the invariants itself (reference §3.1), whatever writes to it.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::NotSet, IntoActiveModel};
use tandem_non_associations::entity::non_association::{ActiveModel, Model};
use tandem_platform::db::is_unique_violation;
use tandem_platform::db::testing::TestBackend;

use crate::support::*;

fn row(first: &str, second: &str) -> Model {
    let (low, high) = if first < second {
        (first, second)
    } else {
        (second, first)
    };
    let now = tandem_non_associations::store::stamp(Utc::now());
    Model {
        id: 0,
        first_prisoner_number: first.into(),
        first_prisoner_role: "VICTIM".into(),
        second_prisoner_number: second.into(),
        second_prisoner_role: "PERPETRATOR".into(),
        reason: "THREAT".into(),
        restriction_type: "CELL".into(),
        comment: "c".into(),
        authorised_by: None,
        when_created: now,
        when_updated: now,
        updated_by: "U".into(),
        is_closed: false,
        closed_by: None,
        closed_reason: None,
        closed_at: None,
        pair_low: low.into(),
        pair_high: high.into(),
        nomis_type_sequence: None,
    }
}

fn active(m: Model) -> ActiveModel {
    let mut am = m.into_active_model().reset_all();
    am.id = NotSet;
    am
}

async fn schema_enforces_invariants(backend: TestBackend) {
    let app = App::new(backend).await;
    let conn = app.db.conn();

    active(row(A, B)).insert(conn).await.expect("a valid row");

    // Checks: two different people; closed ⇔ closure details; the pair columns.
    assert!(
        active(row(A, A)).insert(conn).await.is_err(),
        "same prisoner twice"
    );
    let mut closed_without_details = row(C, D);
    closed_without_details.is_closed = true;
    assert!(active(closed_without_details).insert(conn).await.is_err());
    let mut open_with_details = row(C, D);
    open_with_details.closed_by = Some("X".into());
    assert!(active(open_with_details).insert(conn).await.is_err());
    let mut wrong_pair = row(C, D);
    wrong_pair.pair_low = A.into();
    assert!(active(wrong_pair).insert(conn).await.is_err());
    let mut empty_comment = row(C, D);
    empty_comment.comment = String::new();
    assert!(active(empty_comment).insert(conn).await.is_err());

    // One open per unordered pair; closed duplicates are fine.
    let e = active(row(B, A)).insert(conn).await.unwrap_err();
    assert!(is_unique_violation(&e), "{e}");
    let mut closed = row(B, A);
    closed.is_closed = true;
    closed.closed_by = Some("X".into());
    closed.closed_reason = Some("r".into());
    closed.closed_at = Some(closed.when_created);
    active(closed.clone())
        .insert(conn)
        .await
        .expect("closed duplicate");
    active(closed.clone())
        .insert(conn)
        .await
        .expect("another closed duplicate");

    // One DPS record per NOMIS record.
    closed.nomis_type_sequence = Some(3);
    active(closed.clone())
        .insert(conn)
        .await
        .expect("first with the NOMIS key");
    let e = active(closed).insert(conn).await.unwrap_err();
    assert!(is_unique_violation(&e), "{e}");
    assert!(
        e.to_string().contains("nomis_type_sequence"),
        "recognisable: {e}"
    );
    assert_eq!(app.row_count().await, 4);
}

tandem_platform::both_backends!(schema_enforces_invariants);
