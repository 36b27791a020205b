//! What a mapping kind is: its table, its DPS key, its NOMIS key, and how each column
//! appears in JSON. The store, the schema and the conflict logic are written once against
//! this description; a domain supplies a [`MappingKind`] and a DTO implementing [`Mapping`].
//!
//! Rows travel between the database and the DTO as JSON objects keyed by the DTO's field
//! names, so the generic code never needs to know a domain's Rust types, and a DTO's serde
//! rules (prisoner-number format, enums) stay the single validation of its input.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// The SQL type of a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `bigint`: NOMIS ids, DPS numeric ids.
    BigInt,
    /// `int`: NOMIS sequences.
    Int,
    /// `varchar(n)`: prisoner numbers, DPS string/UUID ids.
    Text(u32),
}

/// One column of a mapping table and the JSON field it is read from and written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub column: &'static str,
    pub json: &'static str,
    pub ty: ColType,
}

impl Field {
    pub const fn new(column: &'static str, json: &'static str, ty: ColType) -> Self {
        Self { column, json, ty }
    }
}

/// The columns every mapping table has besides its keys (HMPPS mapping tables all carry them).
pub const LABEL: &str = "label";
pub const MAPPING_TYPE: &str = "mapping_type";
pub const WHEN_CREATED: &str = "when_created";
/// Their JSON names.
pub const LABEL_JSON: &str = "label";
pub const MAPPING_TYPE_JSON: &str = "mappingType";
pub const WHEN_CREATED_JSON: &str = "whenCreated";

/// A mapping table: DPS key (the primary key) ⇄ NOMIS key (unique unless stated otherwise).
#[derive(Debug)]
pub struct MappingKind {
    /// How people call one row, for messages: "Non-association".
    pub name: &'static str,
    pub table: &'static str,
    /// The DPS id: the primary key.
    pub dps_key: &'static [Field],
    /// The NOMIS id (possibly composite).
    pub nomis_key: &'static [Field],
    /// False only where NOMIS itself may map one id to several DPS rows (adjudication
    /// hearings); then the NOMIS key is indexed but not unique and never causes a 409.
    pub nomis_key_unique: bool,
    /// Longest `label` (a migration id) the table accepts.
    pub label_len: u32,
}

impl MappingKind {
    /// Every key field, DPS first.
    pub fn key_fields(&self) -> impl Iterator<Item = &'static Field> + use<> {
        let (dps, nomis) = (self.dps_key, self.nomis_key);
        dps.iter().chain(nomis.iter())
    }

    /// The field whose JSON name is `json` (including the common columns), for sorting.
    pub fn column_for_json(&self, json: &str) -> Option<&'static str> {
        match json {
            LABEL_JSON => Some(LABEL),
            MAPPING_TYPE_JSON => Some(MAPPING_TYPE),
            WHEN_CREATED_JSON => Some(WHEN_CREATED),
            _ => self.key_fields().find(|f| f.json == json).map(|f| f.column),
        }
    }

    /// Every JSON field a row has, for messages naming what can be sorted on.
    pub fn json_fields(&self) -> Vec<&'static str> {
        self.key_fields()
            .map(|f| f.json)
            .chain([LABEL_JSON, MAPPING_TYPE_JSON, WHEN_CREATED_JSON])
            .collect()
    }

    /// `nonAssociationId=1, firstOffenderNo=A1234BC, …` — a mapping as a person reads it.
    pub fn describe(&self, obj: &Map<String, Value>) -> String {
        self.key_fields()
            .map(|f| f.json)
            .chain([LABEL_JSON, MAPPING_TYPE_JSON])
            .map(|name| format!("{name}={}", show(obj.get(name))))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `nonAssociationId=1` — a key as a person reads it.
    pub fn describe_key(&self, fields: &[Field], key: &[KeyValue]) -> String {
        fields
            .iter()
            .zip(key)
            .map(|(f, v)| format!("{}={v}", f.json))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "null".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// One component of a key, as a caller looks a mapping up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for KeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyValue::Int(i) => write!(f, "{i}"),
            KeyValue::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for KeyValue {
    fn from(v: i64) -> Self {
        KeyValue::Int(v)
    }
}
impl From<i32> for KeyValue {
    fn from(v: i32) -> Self {
        KeyValue::Int(v.into())
    }
}
impl From<&str> for KeyValue {
    fn from(v: &str) -> Self {
        KeyValue::Text(v.to_string())
    }
}
impl From<String> for KeyValue {
    fn from(v: String) -> Self {
        KeyValue::Text(v)
    }
}
impl From<&tandem_platform::ids::PrisonerNumber> for KeyValue {
    fn from(v: &tandem_platform::ids::PrisonerNumber) -> Self {
        KeyValue::Text(v.as_str().to_string())
    }
}

impl KeyValue {
    /// The key component as the JSON a row carries.
    pub fn to_json(&self) -> Value {
        match self {
            KeyValue::Int(i) => Value::from(*i),
            KeyValue::Text(s) => Value::from(s.as_str()),
        }
    }
}

/// How a mapping came to exist. Stored and returned in the canonical spelling; the legacy
/// per-domain spellings of "created in DPS and copied to NOMIS" are accepted on input so
/// callers written against the older HMPPS endpoints keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MappingType {
    /// Written by a migration; `label` is the migration id.
    Migrated,
    /// Created in NOMIS and synchronised to DPS.
    NomisCreated,
    /// Created in DPS and synchronised to NOMIS (legacy: `NON_ASSOCIATION_CREATED`,
    /// `ADJUDICATION_CREATED`).
    #[serde(alias = "NON_ASSOCIATION_CREATED", alias = "ADJUDICATION_CREATED")]
    DpsCreated,
}

impl MappingType {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingType::Migrated => "MIGRATED",
            MappingType::NomisCreated => "NOMIS_CREATED",
            MappingType::DpsCreated => "DPS_CREATED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::from(s)).ok()
    }
}

/// A domain's mapping DTO. Its JSON form has one field per [`Field`] of `KIND` plus
/// `label`, `mappingType` and `whenCreated`.
pub trait Mapping: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: &'static MappingKind;

    /// Checks beyond what the DTO's types enforce (e.g. positive ids); the message names
    /// the field.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static KIND: MappingKind = MappingKind {
        name: "Thing",
        table: "thing_mapping",
        dps_key: &[Field::new("dps_id", "dpsId", ColType::Text(36))],
        nomis_key: &[
            Field::new("nomis_id", "nomisId", ColType::BigInt),
            Field::new("nomis_seq", "nomisSeq", ColType::Int),
        ],
        nomis_key_unique: true,
        label_len: 20,
    };

    #[test]
    fn mapping_type_accepts_legacy_spellings_and_writes_the_canonical_one() {
        assert_eq!(
            MappingType::parse("NON_ASSOCIATION_CREATED"),
            Some(MappingType::DpsCreated)
        );
        assert_eq!(
            MappingType::parse("ADJUDICATION_CREATED"),
            Some(MappingType::DpsCreated)
        );
        assert_eq!(MappingType::parse("MIGRATED"), Some(MappingType::Migrated));
        assert_eq!(MappingType::parse("migrated"), None);
        assert_eq!(
            serde_json::to_value(MappingType::DpsCreated).unwrap(),
            "DPS_CREATED"
        );
        for t in [
            MappingType::Migrated,
            MappingType::NomisCreated,
            MappingType::DpsCreated,
        ] {
            assert_eq!(MappingType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn describes_a_mapping_in_field_order() {
        let obj = serde_json::json!({
            "nomisSeq": 2, "dpsId": "abc", "nomisId": 7, "mappingType": "MIGRATED", "label": null
        });
        assert_eq!(
            KIND.describe(obj.as_object().unwrap()),
            "dpsId=abc, nomisId=7, nomisSeq=2, label=null, mappingType=MIGRATED"
        );
        assert_eq!(
            KIND.describe_key(KIND.nomis_key, &[7i64.into(), 2i32.into()]),
            "nomisId=7, nomisSeq=2"
        );
    }

    #[test]
    fn sort_columns_come_from_the_json_names() {
        assert_eq!(KIND.column_for_json("nomisSeq"), Some("nomis_seq"));
        assert_eq!(KIND.column_for_json("whenCreated"), Some("when_created"));
        assert_eq!(KIND.column_for_json("nomis_seq"), None);
        assert_eq!(KIND.json_fields().len(), 6);
    }
}
