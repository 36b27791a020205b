//! Spring-style paging (`page`, `size`, `sort` in; a `Page` object out), because the
//! migration engine reads `totalElements` from it exactly as the HMPPS one does.

use sea_orm::sea_query::Order;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::MappingError;
use crate::kind::MappingKind;

/// Spring's default page size.
pub const DEFAULT_SIZE: u64 = 20;
/// Spring's default largest page.
pub const MAX_SIZE: u64 = 2000;

/// The paging query parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Zero-based page number (default 0).
    pub page: Option<u64>,
    /// Page size, 1 to 2000 (default 20).
    pub size: Option<u64>,
    /// `field` or `field,asc|desc`, e.g. `whenCreated,desc`; ties are broken by the DPS id.
    pub sort: Option<String>,
}

/// A checked page request.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub page: u64,
    pub size: u64,
    /// Column and direction.
    pub sort: Option<(&'static str, Order)>,
}

impl PageRequest {
    pub fn first(size: u64) -> Self {
        Self {
            page: 0,
            size,
            sort: None,
        }
    }

    /// Checks the parameters against the kind (sortable fields are its JSON fields).
    pub fn parse(kind: &MappingKind, params: &PageParams) -> Result<Self, MappingError> {
        let page = params.page.unwrap_or(0);
        let size = params.size.unwrap_or(DEFAULT_SIZE);
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(MappingError::Invalid(format!(
                "size: must be between 1 and {MAX_SIZE}, was {size}"
            )));
        }
        if page.checked_mul(size).is_none_or(|o| o > i64::MAX as u64) {
            return Err(MappingError::Invalid(format!("page: {page} is too large")));
        }
        let sort = match params
            .sort
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(text) => {
                let (field, dir) = match text.split_once(',') {
                    Some((f, d)) => (f.trim(), d.trim()),
                    None => (text, "asc"),
                };
                let column = kind.column_for_json(field).ok_or_else(|| {
                    MappingError::Invalid(format!(
                        "sort: unknown field '{field}'; one of {}",
                        kind.json_fields().join(", ")
                    ))
                })?;
                let order = match dir.to_ascii_lowercase().as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    other => {
                        return Err(MappingError::Invalid(format!(
                            "sort: direction must be asc or desc, was '{other}'"
                        )));
                    }
                };
                Some((column, order))
            }
        };
        Ok(Self { page, size, sort })
    }

    pub fn offset(&self) -> u64 {
        self.page * self.size
    }
}

/// Spring Data's sort summary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SortInfo {
    pub empty: bool,
    pub sorted: bool,
    pub unsorted: bool,
}

/// Spring Data's `pageable` block.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Pageable {
    pub page_number: u64,
    pub page_size: u64,
    pub offset: u64,
    pub paged: bool,
    pub unpaged: bool,
    pub sort: SortInfo,
}

/// A page of results in Spring Data's JSON shape.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub content: Vec<T>,
    /// Every matching row, across all pages.
    pub total_elements: u64,
    pub total_pages: u64,
    pub size: u64,
    /// This page's number (zero-based).
    pub number: u64,
    pub number_of_elements: u64,
    pub first: bool,
    pub last: bool,
    pub empty: bool,
    pub pageable: Pageable,
    pub sort: SortInfo,
}

impl<T> Page<T> {
    pub fn new(content: Vec<T>, request: &PageRequest, total: u64) -> Self {
        let total_pages = total.div_ceil(request.size);
        let sorted = request.sort.is_some();
        let sort = SortInfo {
            empty: !sorted,
            sorted,
            unsorted: !sorted,
        };
        let n = content.len() as u64;
        Self {
            total_elements: total,
            total_pages,
            size: request.size,
            number: request.page,
            number_of_elements: n,
            first: request.page == 0,
            last: request.page + 1 >= total_pages,
            empty: n == 0,
            pageable: Pageable {
                page_number: request.page,
                page_size: request.size,
                offset: request.offset(),
                paged: true,
                unpaged: false,
                sort: sort.clone(),
            },
            sort,
            content,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::non_associations::KIND;

    fn params(page: Option<u64>, size: Option<u64>, sort: Option<&str>) -> PageParams {
        PageParams {
            page,
            size,
            sort: sort.map(str::to_string),
        }
    }

    #[test]
    fn defaults_and_limits() {
        let r = PageRequest::parse(&KIND, &PageParams::default()).unwrap();
        assert_eq!((r.page, r.size, r.sort.clone()), (0, 20, None));
        for bad in [Some(0), Some(MAX_SIZE + 1)] {
            let e = PageRequest::parse(&KIND, &params(None, bad, None)).unwrap_err();
            assert!(e.to_string().starts_with("size:"), "{e}");
        }
        assert!(PageRequest::parse(&KIND, &params(Some(u64::MAX), Some(2), None)).is_err());
    }

    #[test]
    fn sort_names_a_json_field() {
        let r =
            PageRequest::parse(&KIND, &params(None, None, Some("firstOffenderNo,desc"))).unwrap();
        assert_eq!(r.sort, Some(("first_offender_no", Order::Desc)));
        let r = PageRequest::parse(&KIND, &params(None, None, Some("whenCreated"))).unwrap();
        assert_eq!(r.sort, Some(("when_created", Order::Asc)));
        let e =
            PageRequest::parse(&KIND, &params(None, None, Some("first_offender_no"))).unwrap_err();
        assert!(
            e.to_string().contains("unknown field 'first_offender_no'"),
            "{e}"
        );
        let e = PageRequest::parse(&KIND, &params(None, None, Some("label,up"))).unwrap_err();
        assert!(e.to_string().contains("asc or desc"), "{e}");
    }

    #[test]
    fn page_arithmetic() {
        let req = PageRequest {
            page: 1,
            size: 2,
            sort: None,
        };
        let p = Page::new(vec![1], &req, 3);
        assert_eq!(
            (p.total_pages, p.number_of_elements, p.first, p.last),
            (2, 1, false, true)
        );
        let p: Page<i32> = Page::new(vec![], &PageRequest::first(20), 0);
        assert_eq!(
            (p.total_pages, p.first, p.last, p.empty),
            (0, true, true, true)
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["totalElements"], 0);
        assert_eq!(json["pageable"]["pageSize"], 20);
    }
}
