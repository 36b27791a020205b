//! Non-association mappings: DPS non-association id ⇄ NOMIS (first offender, second
//! offender, type sequence).
//!
//! Everything generic (create, look-ups, paging, latest, deletes) is the store's; this
//! module adds the DTO and the operations only non-associations have, for prisoner-number
//! churn: merges, booking moves and NOMIS re-sequencing.
//!
//! Every creator writes the pair smaller prisoner number first (NOMIS stores each
//! non-association in both directions; the sync services take the smaller as "first").
//! The rewrites below keep that order, so a look-up by NOMIS key after a merge finds the
//! row (the HMPPS service rewrote in place, leaving `first` larger than `second`).

pub mod routes;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDateTime;
use sea_orm::sea_query::{Cond, Expr, ExprTrait};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tandem_platform::ids::PrisonerNumber;
use utoipa::ToSchema;

use crate::error::MappingError;
use crate::kind::{ColType, Field, Mapping, MappingKind, MappingType};
use crate::store::{self, MappingStore};

const FIRST: &str = "first_offender_no";
const SECOND: &str = "second_offender_no";

/// The `non_association_mapping` table (HMPPS `V1_31`).
pub static KIND: MappingKind = MappingKind {
    name: "Non-association",
    table: "non_association_mapping",
    dps_key: &[Field::new(
        "non_association_id",
        "nonAssociationId",
        ColType::BigInt,
    )],
    nomis_key: &[
        Field::new(FIRST, "firstOffenderNo", ColType::Text(10)),
        Field::new(SECOND, "secondOffenderNo", ColType::Text(10)),
        Field::new("nomis_type_sequence", "nomisTypeSequence", ColType::Int),
    ],
    nomis_key_unique: true,
    label_len: 40,
};

/// NOMIS `OFFENDER_NA_DETAILS.TYPE_SEQ` is `NUMBER(3)`.
pub const MAX_TYPE_SEQUENCE: i32 = 999;

/// A non-association mapping, as sent to and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NonAssociationMapping {
    /// The DPS non-association id.
    #[schema(example = 1234)]
    pub non_association_id: i64,
    /// The smaller of the two prisoner numbers.
    pub first_offender_no: PrisonerNumber,
    /// The larger of the two prisoner numbers.
    pub second_offender_no: PrisonerNumber,
    /// NOMIS type sequence of the pair (1 to 999).
    #[schema(example = 1)]
    pub nomis_type_sequence: i32,
    /// The migration id, for `MIGRATED` mappings (at most 40 characters: migration ids are local timestamps to the millisecond).
    #[schema(example = "2024-03-01T10:15:30")]
    pub label: Option<String>,
    /// `NON_ASSOCIATION_CREATED` is accepted as `DPS_CREATED`.
    pub mapping_type: MappingType,
    /// When the mapping was stored (Europe/London local time); set by the service, ignored on input.
    #[schema(read_only, value_type = Option<String>, example = "2024-03-01T10:15:30.123456")]
    pub when_created: Option<NaiveDateTime>,
}

impl Mapping for NonAssociationMapping {
    const KIND: &'static MappingKind = &KIND;

    fn validate(&self) -> Result<(), String> {
        if self.non_association_id < 1 {
            return Err(format!(
                "nonAssociationId: must be a positive DPS id, was {}",
                self.non_association_id
            ));
        }
        check_sequence("nomisTypeSequence", self.nomis_type_sequence)?;
        if self.first_offender_no == self.second_offender_no {
            return Err(format!(
                "secondOffenderNo: must differ from firstOffenderNo ({})",
                self.first_offender_no
            ));
        }
        // Every look-up by NOMIS key names the smaller number first (as the sync services
        // do), so a pair stored the other way round could never be found again.
        if self.first_offender_no > self.second_offender_no {
            return Err(format!(
                "firstOffenderNo: must be the smaller of the two prisoner numbers ({} sorts after {}); put {} first",
                self.first_offender_no, self.second_offender_no, self.second_offender_no
            ));
        }
        Ok(())
    }
}

impl NonAssociationMapping {
    /// The pair with `from` replaced by `to`, smaller number first.
    fn renumbered(&self, from: &PrisonerNumber, to: &PrisonerNumber) -> Self {
        let swap = |p: &PrisonerNumber| if p == from { to.clone() } else { p.clone() };
        let (a, b) = (
            swap(&self.first_offender_no),
            swap(&self.second_offender_no),
        );
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        Self {
            first_offender_no: first,
            second_offender_no: second,
            ..self.clone()
        }
    }

    /// The other prisoner of the pair, when `p` is one of them.
    fn other_than(&self, p: &PrisonerNumber) -> Option<&PrisonerNumber> {
        if &self.first_offender_no == p {
            Some(&self.second_offender_no)
        } else if &self.second_offender_no == p {
            Some(&self.first_offender_no)
        } else {
            None
        }
    }

    fn involves(&self, p: &PrisonerNumber) -> bool {
        self.other_than(p).is_some()
    }
}

fn check_sequence(field: &str, seq: i32) -> Result<(), String> {
    if (1..=MAX_TYPE_SEQUENCE).contains(&seq) {
        Ok(())
    } else {
        Err(format!(
            "{field}: must be between 1 and {MAX_TYPE_SEQUENCE}, was {seq}"
        ))
    }
}

fn check_distinct(old: &PrisonerNumber, new: &PrisonerNumber) -> Result<(), MappingError> {
    if old == new {
        Err(MappingError::Invalid(format!(
            "the old and new prisoner numbers are both {old}; nothing to replace"
        )))
    } else {
        Ok(())
    }
}

fn involving(numbers: &[&PrisonerNumber]) -> Cond {
    let values: Vec<String> = numbers.iter().map(|p| p.as_str().to_string()).collect();
    Cond::any()
        .add(Expr::col(FIRST).is_in(values.clone()))
        .add(Expr::col(SECOND).is_in(values))
}

fn clash(m: &NonAssociationMapping, old: &PrisonerNumber, new: &PrisonerNumber) -> MappingError {
    MappingError::Invalid(format!(
        "replacing {old} with {new} would leave non-association {} ({} and {}, type sequence {}) \
         between {new} and itself; this needs manual intervention",
        m.non_association_id, m.first_offender_no, m.second_offender_no, m.nomis_type_sequence,
    ))
}

/// Rewrites each mapping in `targets` from `old` to `new` inside one transaction.
async fn renumber_all(
    targets: Vec<NonAssociationMapping>,
    old: &PrisonerNumber,
    new: &PrisonerNumber,
    txn: sea_orm::DatabaseTransaction,
) -> Result<Vec<NonAssociationMapping>, MappingError> {
    let mut updated = Vec::with_capacity(targets.len());
    for m in targets {
        if m.involves(new) {
            return Err(clash(&m, old, new));
        }
        let renamed = m.renumbered(old, new);
        store::rewrite(&txn, &[m.non_association_id.into()], &renamed).await?;
        updated.push(renamed);
    }
    txn.commit().await?;
    Ok(updated)
}

/// The most pairs or mappings one batch call takes.
pub const MAX_BATCH: usize = 1000;

/// A pair of prisoners, smaller number first (as mappings store it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PairKey {
    pub first_offender_no: PrisonerNumber,
    pub second_offender_no: PrisonerNumber,
}

fn check_batch(len: usize) -> Result<(), MappingError> {
    if len > MAX_BATCH {
        Err(MappingError::Invalid(format!(
            "at most {MAX_BATCH} entries per call, got {len}"
        )))
    } else {
        Ok(())
    }
}

/// Every mapping of the given pairs (either order accepted): the migration's one look-up
/// for a whole batch of pairs.
pub async fn of_pairs(
    store: &MappingStore,
    pairs: &[PairKey],
) -> Result<Vec<NonAssociationMapping>, MappingError> {
    check_batch(pairs.len())?;
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    // One `IN` on the first number (an OR per pair grows SQLite's expression tree past
    // its depth limit at a thousand pairs), then only the asked pairs are kept.
    let wanted: std::collections::HashSet<(&str, &str)> = pairs
        .iter()
        .map(|p| {
            let (a, b) = (p.first_offender_no.as_str(), p.second_offender_no.as_str());
            if a <= b { (a, b) } else { (b, a) }
        })
        .collect();
    let mut firsts: Vec<&str> = wanted.iter().map(|(a, _)| *a).collect();
    firsts.sort_unstable();
    firsts.dedup();
    let firsts = tandem_platform::db::padded_in_list(firsts);
    let found: Vec<NonAssociationMapping> = store::select(
        store.db().conn(),
        Cond::all().add(Expr::col(FIRST).is_in(firsts)),
    )
    .await?;
    Ok(found
        .into_iter()
        .filter(|m| wanted.contains(&(m.first_offender_no.as_str(), m.second_offender_no.as_str())))
        .collect())
}

/// Creates many mappings in one transaction, each as a single create would (identical
/// re-creates are no-ops; the first clash rolls all back as a 409), and returns them as
/// stored, so a caller sees the label an already-stored mapping carries.
pub async fn create_batch(
    store: &MappingStore,
    mappings: &[NonAssociationMapping],
) -> Result<Vec<NonAssociationMapping>, MappingError> {
    check_batch(mappings.len())?;
    let records = mappings
        .iter()
        .enumerate()
        .map(|(i, m)| {
            store::Record::of(m).map_err(|e| match e {
                MappingError::Invalid(msg) => MappingError::Invalid(format!("[{i}].{msg}")),
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let created = store.create_all(&records).await?;
    // Every mapping new (a migration's batch): the answer is the input as stamped, in the
    // order a read would give, without reading it back.
    let stamped: Option<Vec<NonAssociationMapping>> = mappings
        .iter()
        .zip(&created)
        .map(|(m, c)| match c {
            store::Created::Inserted { when_created } => Some(NonAssociationMapping {
                when_created: Some(tandem_platform::time::london_local(*when_created)),
                ..m.clone()
            }),
            store::Created::AlreadyExisted => None,
        })
        .collect();
    if let Some(mut stored) = stamped {
        stored.sort_by_key(|m| m.non_association_id);
        return Ok(stored);
    }
    let ids = tandem_platform::db::padded_in_list(
        mappings
            .iter()
            .map(|m| m.non_association_id)
            .collect::<Vec<i64>>(),
    );
    store::select(
        store.db().conn(),
        Cond::all().add(Expr::col("non_association_id").is_in(ids)),
    )
    .await
}

/// After a prisoner merge: every mapping naming `old` names `new` instead (either side).
/// All or nothing; a mapping that would pair `new` with itself is a 400, and one that
/// would collide with an existing mapping of `new` is a 409 (call
/// [`common_between`] and re-sequence first).
pub async fn merge(
    store: &MappingStore,
    old: &PrisonerNumber,
    new: &PrisonerNumber,
) -> Result<Vec<NonAssociationMapping>, MappingError> {
    check_distinct(old, new)?;
    let txn = store.db().begin_write().await?;
    let targets: Vec<NonAssociationMapping> = store::select(&txn, involving(&[old])).await?;
    renumber_all(targets, old, new, txn).await
}

/// Which mappings a booking move rewrites.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateList {
    /// The other prisoners whose non-associations with `old` move (HMPPS form).
    OffenderNos(Vec<PrisonerNumber>),
    /// The non-association ids that move.
    NonAssociationIds(Vec<i64>),
}

impl UpdateList {
    /// Reads the request body: all prisoner numbers or all non-association ids.
    pub fn parse(items: &[Value]) -> Result<Self, MappingError> {
        let mut numbers = Vec::new();
        let mut ids = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => numbers.push(
                    PrisonerNumber::parse(s)
                        .map_err(|e| MappingError::Invalid(format!("[{i}]: {e}")))?,
                ),
                Value::Number(n) => match n.as_i64().filter(|id| *id > 0) {
                    Some(id) => ids.push(id),
                    None => {
                        return Err(MappingError::Invalid(format!(
                            "[{i}]: {n} is not a non-association id (a positive whole number)"
                        )));
                    }
                },
                other => {
                    return Err(MappingError::Invalid(format!(
                        "[{i}]: expected a prisoner number or a non-association id, found {other}"
                    )));
                }
            }
        }
        match (numbers.is_empty(), ids.is_empty()) {
            (_, true) => Ok(Self::OffenderNos(numbers)),
            (true, false) => Ok(Self::NonAssociationIds(ids)),
            (false, false) => Err(MappingError::Invalid(
                "the list must hold either prisoner numbers or non-association ids, not both"
                    .into(),
            )),
        }
    }
}

/// After a booking moved from prisoner `old` to `new`: the listed mappings now name `new`.
///
/// With prisoner numbers, every mapping between `old` and a listed prisoner moves (as the
/// HMPPS service does). With ids, each listed mapping naming `old` moves; an id that is
/// unknown or already names `new` is skipped, so a retried request succeeds; an id naming
/// neither is a 400. All or nothing.
pub async fn update_list(
    store: &MappingStore,
    old: &PrisonerNumber,
    new: &PrisonerNumber,
    list: &UpdateList,
) -> Result<Vec<NonAssociationMapping>, MappingError> {
    check_distinct(old, new)?;
    let txn = store.db().begin_write().await?;
    let mut targets = Vec::new();
    match list {
        UpdateList::OffenderNos(others) => {
            for other in others {
                if other == old {
                    return Err(MappingError::Invalid(format!(
                        "the old prisoner number {old} is in the list, when updating from {old} to {new}"
                    )));
                }
                if other == new {
                    return Err(MappingError::Invalid(format!(
                        "the new prisoner number {new} is in the list, when updating from {old} to {new}"
                    )));
                }
            }
            let rows: Vec<NonAssociationMapping> = store::select(&txn, involving(&[old])).await?;
            let wanted: BTreeSet<&PrisonerNumber> = others.iter().collect();
            targets.extend(
                rows.into_iter()
                    .filter(|m| m.other_than(old).is_some_and(|o| wanted.contains(o))),
            );
        }
        UpdateList::NonAssociationIds(ids) => {
            let rows: Vec<NonAssociationMapping> = store::select(
                &txn,
                Cond::all().add(Expr::col("non_association_id").is_in(ids.clone())),
            )
            .await?;
            for m in rows {
                if m.involves(old) {
                    targets.push(m);
                } else if !m.involves(new) {
                    return Err(MappingError::Invalid(format!(
                        "non-association {} is between {} and {}, not {old}",
                        m.non_association_id, m.first_offender_no, m.second_offender_no
                    )));
                }
            }
        }
    }
    renumber_all(targets, old, new, txn).await
}

/// The mappings that would collide if `a` and `b` became one prisoner: those of `a` and of
/// `b` with the same third prisoner and the same type sequence (HMPPS semantics; the sync
/// service re-sequences them before calling [`merge`]).
pub async fn common_between(
    store: &MappingStore,
    a: &PrisonerNumber,
    b: &PrisonerNumber,
) -> Result<Vec<NonAssociationMapping>, MappingError> {
    check_distinct(a, b)?;
    let rows: Vec<NonAssociationMapping> =
        store::select(store.db().conn(), involving(&[a, b])).await?;
    // (third prisoner, sequence) → which of a and b have a mapping with them.
    let mut seen: BTreeMap<(PrisonerNumber, i32), (bool, bool)> = BTreeMap::new();
    let third = |m: &NonAssociationMapping| -> Option<(PrisonerNumber, bool)> {
        match (m.other_than(a), m.other_than(b)) {
            (Some(o), None) => Some((o.clone(), true)),
            (None, Some(o)) => Some((o.clone(), false)),
            // Between a and b themselves, or neither: no third party.
            _ => None,
        }
    };
    for m in &rows {
        if let Some((other, is_a)) = third(m) {
            let entry = seen.entry((other, m.nomis_type_sequence)).or_default();
            if is_a {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    Ok(rows
        .into_iter()
        .filter(|m| {
            third(m).is_some_and(|(other, _)| {
                seen.get(&(other, m.nomis_type_sequence)) == Some(&(true, true))
            })
        })
        .collect())
}

/// Points a mapping at another NOMIS type sequence of the same pair (after NOMIS
/// re-sequenced the pair's non-associations, e.g. in a merge). 404 when unknown, 409 when
/// another mapping holds that sequence; the same sequence is a no-op.
pub async fn set_sequence(
    store: &MappingStore,
    non_association_id: i64,
    sequence: i32,
) -> Result<NonAssociationMapping, MappingError> {
    check_sequence("newSequence", sequence).map_err(MappingError::Invalid)?;
    let txn = store.db().begin_write().await?;
    let key = [non_association_id.into()];
    let found: Option<NonAssociationMapping> = store::select(
        &txn,
        Cond::all().add(Expr::col("non_association_id").eq(non_association_id)),
    )
    .await?
    .into_iter()
    .next();
    let m = found.ok_or_else(|| {
        MappingError::NotFound(format!(
            "{} mapping with {} not found",
            KIND.name,
            KIND.describe_key(KIND.dps_key, &key)
        ))
    })?;
    if m.nomis_type_sequence == sequence {
        return Ok(m);
    }
    let updated = NonAssociationMapping {
        nomis_type_sequence: sequence,
        ..m
    };
    store::rewrite(&txn, &key, &updated).await?;
    txn.commit().await?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PrisonerNumber {
        PrisonerNumber::parse(s).unwrap()
    }

    fn mapping(id: i64, a: &str, b: &str, seq: i32) -> NonAssociationMapping {
        NonAssociationMapping {
            non_association_id: id,
            first_offender_no: p(a),
            second_offender_no: p(b),
            nomis_type_sequence: seq,
            label: None,
            mapping_type: MappingType::NomisCreated,
            when_created: None,
        }
    }

    #[test]
    fn renumbering_keeps_the_smaller_number_first() {
        let m = mapping(1, "A1111AA", "B2222BB", 1);
        let r = m.renumbered(&p("A1111AA"), &p("C3333CC"));
        assert_eq!(
            (r.first_offender_no.as_str(), r.second_offender_no.as_str()),
            ("B2222BB", "C3333CC")
        );
        let r = m.renumbered(&p("B2222BB"), &p("A0000AA"));
        assert_eq!(
            (r.first_offender_no.as_str(), r.second_offender_no.as_str()),
            ("A0000AA", "A1111AA")
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert!(mapping(1, "A1111AA", "B2222BB", 1).validate().is_ok());
        assert!(
            mapping(0, "A1111AA", "B2222BB", 1)
                .validate()
                .unwrap_err()
                .starts_with("nonAssociationId")
        );
        assert!(
            mapping(1, "A1111AA", "B2222BB", 0)
                .validate()
                .unwrap_err()
                .starts_with("nomisTypeSequence")
        );
        assert!(mapping(1, "A1111AA", "B2222BB", 1000).validate().is_err());
        assert!(
            mapping(1, "A1111AA", "A1111AA", 1)
                .validate()
                .unwrap_err()
                .starts_with("secondOffenderNo")
        );
    }

    #[test]
    fn update_list_is_all_numbers_or_all_ids() {
        let v = |j: &str| serde_json::from_str::<Vec<Value>>(j).unwrap();
        assert_eq!(
            UpdateList::parse(&v(r#"["A1111AA"]"#)).unwrap(),
            UpdateList::OffenderNos(vec![p("A1111AA")])
        );
        assert_eq!(
            UpdateList::parse(&v("[3, 4]")).unwrap(),
            UpdateList::NonAssociationIds(vec![3, 4])
        );
        assert_eq!(
            UpdateList::parse(&v("[]")).unwrap(),
            UpdateList::OffenderNos(vec![])
        );
        let e = UpdateList::parse(&v(r#"["A1111AA", 3]"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not both"), "{e}");
        let e = UpdateList::parse(&v(r#"[3, "nope"]"#))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("[1]: invalid prisoner number"), "{e}");
        let e = UpdateList::parse(&v("[-3]")).unwrap_err().to_string();
        assert!(e.starts_with("[0]"), "{e}");
        assert!(UpdateList::parse(&v("[true]")).is_err());
    }
}
