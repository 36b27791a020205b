//! Where NOMIS keys come from: named sequences (as Oracle's `OFFENDER_ID_SEQ` …) kept in
//! the `id_sequences` table, and offender numbers derived from offender ids.
//!
//! A sequence row is bumped with `UPDATE … RETURNING` inside the caller's transaction, so
//! ids are allocated in blocks (the seed takes thousands at once) on both backends.

use sea_orm::{
    ConnectionTrait, DbErr,
    sea_query::{Alias, Expr, ExprTrait, Query},
};

pub const OFFENDER_ID: &str = "OFFENDER_ID";
pub const OFFENDER_BOOK_ID: &str = "OFFENDER_BOOK_ID";

/// Reserves `count` consecutive values of `sequence`; returns the first.
pub async fn allocate<C: ConnectionTrait>(
    conn: &C,
    sequence: &str,
    count: i64,
) -> Result<i64, DbErr> {
    let next = Alias::new("next_value");
    let stmt = Query::update()
        .table(Alias::new("id_sequences"))
        .value(next.clone(), Expr::col(next.clone()).add(count))
        .and_where(Expr::col(Alias::new("name")).eq(sequence))
        .returning_col(next)
        .to_owned();
    let row = conn
        .query_one(&stmt)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("id sequence {sequence}")))?;
    let after: i64 = row.try_get("", "next_value")?;
    Ok(after - count)
}

/// The number of distinct offender numbers `[A-Z][0-9]{4}[A-Z]{2}`.
const SPACE: i64 = 26 * 10_000 * 26 * 26;
/// Coprime with [`SPACE`], so `id ↦ id·M + C (mod SPACE)` is a bijection: distinct ids
/// give distinct numbers without a lookup, and the numbers look scattered as real ones do.
const MULTIPLIER: i64 = 61_803_397;
const OFFSET: i64 = 12_345_678;

/// The offender number NOMIS gives the offender with this id (a fixed permutation).
pub fn offender_no_for(offender_id: i64) -> String {
    let idx = (offender_id.rem_euclid(SPACE) * MULTIPLIER + OFFSET).rem_euclid(SPACE);
    let first = (b'A' + (idx / (10_000 * 676)) as u8) as char;
    let rest = idx % (10_000 * 676);
    let digits = rest / 676;
    let tail = rest % 676;
    let second = (b'A' + (tail / 26) as u8) as char;
    let third = (b'A' + (tail % 26) as u8) as char;
    format!("{first}{digits:04}{second}{third}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }

    #[test]
    fn offender_numbers_are_well_formed_and_distinct() {
        assert_eq!(gcd(MULTIPLIER, SPACE), 1);
        let mut seen = HashSet::new();
        for id in 2_500_001..2_600_001 {
            let no = offender_no_for(id);
            assert!(
                tandem_platform::ids::PrisonerNumber::looks_like(&no),
                "{no}"
            );
            assert!(seen.insert(no), "duplicate for {id}");
        }
        assert_eq!(offender_no_for(2_500_001), offender_no_for(2_500_001));
    }
}
