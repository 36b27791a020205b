//! Reference codes (`REFERENCE_CODES`): NOMIS validates coded fields against a domain.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::{NomisError, schema::entities::reference_codes};

/// Reasons for a non-association (`NON_ASSO_RSN`).
pub const NON_ASSO_RSN: &str = "NON_ASSO_RSN";
/// Types (scope) of a non-association (`NON_ASSO_TYP`).
pub const NON_ASSO_TYP: &str = "NON_ASSO_TYP";

/// The active codes of one domain, in list order.
pub async fn active_codes<C: ConnectionTrait>(
    conn: &C,
    domain: &str,
) -> Result<Vec<String>, NomisError> {
    Ok(reference_codes::Entity::find()
        .filter(reference_codes::Column::Domain.eq(domain))
        .filter(reference_codes::Column::ActiveFlag.eq("Y"))
        .order_by_asc(reference_codes::Column::ListSeq)
        .all(conn)
        .await?
        .into_iter()
        .map(|c| c.code)
        .collect())
}

/// The active codes of each of `domains` (in that order), in list order, in one query.
pub async fn active_codes_of<C: ConnectionTrait>(
    conn: &C,
    domains: &[&str],
) -> Result<Vec<Vec<String>>, NomisError> {
    let mut out = vec![Vec::new(); domains.len()];
    for c in reference_codes::Entity::find()
        .filter(reference_codes::Column::Domain.is_in(domains.iter().copied()))
        .filter(reference_codes::Column::ActiveFlag.eq("Y"))
        .order_by_asc(reference_codes::Column::ListSeq)
        .all(conn)
        .await?
    {
        if let Some(i) = domains.iter().position(|d| *d == c.domain) {
            out[i].push(c.code);
        }
    }
    Ok(out)
}

/// Checks `value` of request field `field` against the domain's active codes: a 400
/// naming the field and listing the valid codes otherwise.
pub fn check(field: &str, domain: &str, value: &str, valid: &[String]) -> Result<(), NomisError> {
    if valid.iter().any(|c| c == value) {
        Ok(())
    } else {
        Err(NomisError::field(
            field,
            format!(
                "'{value}' is not a valid code in domain {domain}; valid codes are {}",
                valid.join(", ")
            ),
        ))
    }
}
