//! A deterministic synthetic NOMIS estate, written straight into the tables.
//!
//! It is history waiting to be migrated, so no events are raised. The same options give
//! the same rows on a fresh database: every random choice comes from a ChaCha8 stream
//! derived from the seed and the record's position (prisoner `i`, pair `k`), and dates are
//! anchored to a fixed day rather than the clock.
//!
//! Speed matters (benchmarks seed up to a million non-association pairs): rows go in as
//! multi-row INSERTs of a few hundred rows, many statements per transaction, and ids are
//! reserved in one block per sequence.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbErr, Value,
    sea_query::{Alias, Query},
};
use tandem_platform::db::Db;

use crate::{NomisError, keys, prisoners::default_cell};

/// What to seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOptions {
    pub prisoners: usize,
    /// Prison ids to spread prisoners over; empty means every prison NOMIS knows.
    pub prisons: Vec<String>,
    pub seed: u64,
    /// Non-association pairs; `None` gives one pair per four prisoners.
    pub non_association_pairs: Option<usize>,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            prisoners: 1000,
            prisons: Vec::new(),
            seed: 1,
            non_association_pairs: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeedSummary {
    pub prisoners: usize,
    pub bookings: usize,
    pub non_association_pairs: usize,
    /// Rows in `offender_na_details`: two per non-association (one per direction).
    pub non_association_details: usize,
}

/// Seeded data describes the estate as of this day, whatever the clock says, so a seed
/// reproduces the same rows on any day (it is in the past, so nothing is "in the future").
pub fn anchor_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// SQLite takes big statements happily (up to 32766 parameters).
const SQLITE_ROWS_PER_INSERT: usize = 500;
/// PostgreSQL statements are kept under ~12 KB of parameters: a larger message overruns the
/// socket's initial 16 KB send buffer and each statement then stalls on a delayed ACK
/// (~40 ms), which made 500-row inserts ten times slower than 40-row ones.
const POSTGRES_PARAMS_PER_INSERT: usize = 800;
const INSERTS_PER_TRANSACTION: usize = 200;

fn rows_per_insert(db: &Db, columns: usize) -> usize {
    if db.is_sqlite() {
        SQLITE_ROWS_PER_INSERT
    } else {
        (POSTGRES_PARAMS_PER_INSERT / columns.max(1)).max(1)
    }
}

const FIRST_NAMES: &[&str] = &[
    "JOHN",
    "DAVID",
    "MICHAEL",
    "JAMES",
    "PAUL",
    "MARK",
    "ANDREW",
    "STEVEN",
    "RICHARD",
    "CHRISTOPHER",
    "DANIEL",
    "THOMAS",
    "MATTHEW",
    "LEE",
    "CRAIG",
    "DARREN",
    "WAYNE",
    "JASON",
    "GARY",
    "KEVIN",
    "RYAN",
    "JAMIE",
    "LIAM",
    "CONNOR",
    "KYLE",
    "JORDAN",
    "MOHAMMED",
    "ADAM",
    "BEN",
    "SAMUEL",
    "JOSHUA",
    "ASHLEY",
    "DEAN",
    "SCOTT",
    "CARL",
    "TERRY",
    "ANTHONY",
    "PETER",
    "ROBERT",
    "WILLIAM",
    "GEORGE",
    "HARRY",
    "KIERAN",
    "AARON",
    "LEWIS",
    "NATHAN",
    "SEAN",
    "SHANE",
    "TYRONE",
    "DWAYNE",
    "ALI",
    "HASSAN",
    "TOMASZ",
    "PIOTR",
    "SARAH",
    "EMMA",
    "LAURA",
    "KELLY",
    "DONNA",
    "TRACEY",
];

const LAST_NAMES: &[&str] = &[
    "SMITH",
    "JONES",
    "WILLIAMS",
    "TAYLOR",
    "BROWN",
    "DAVIES",
    "EVANS",
    "WILSON",
    "THOMAS",
    "JOHNSON",
    "ROBERTS",
    "ROBINSON",
    "THOMPSON",
    "WRIGHT",
    "WALKER",
    "WHITE",
    "EDWARDS",
    "HUGHES",
    "GREEN",
    "HALL",
    "LEWIS",
    "HARRIS",
    "CLARKE",
    "PATEL",
    "JACKSON",
    "WOOD",
    "TURNER",
    "MARTIN",
    "COOPER",
    "HILL",
    "WARD",
    "MORRIS",
    "MOORE",
    "CLARK",
    "LEE",
    "KING",
    "BAKER",
    "HARRISON",
    "MORGAN",
    "ALLEN",
    "JAMES",
    "SCOTT",
    "PHILLIPS",
    "WATSON",
    "DAVIS",
    "PARKER",
    "PRICE",
    "BENNETT",
    "YOUNG",
    "GRIFFITHS",
    "MITCHELL",
    "KELLY",
    "COOK",
    "CARTER",
    "RICHARDSON",
    "BAILEY",
    "COLLINS",
    "BELL",
    "SHAW",
    "MURPHY",
    "MILLER",
    "COX",
    "RICHARDS",
    "KHAN",
    "MARSHALL",
    "ANDERSON",
    "SIMPSON",
    "ELLIS",
    "ADAMS",
    "SINGH",
    "BEGUM",
    "WILKINSON",
    "FOSTER",
    "CHAPMAN",
    "POWELL",
    "WEBB",
    "ROGERS",
    "GRAY",
    "MASON",
    "O'BRIEN",
    "MCDONALD",
    "KOWALSKI",
];

const STAFF: &[&str] = &[
    "JSMITH_GEN",
    "AJONES_GEN",
    "KBROWN_GEN",
    "PTAYLOR_ADM",
    "SWILSON_GEN",
    "MEVANS_GEN",
    "RDAVIES_OMU",
    "LHUGHES_GEN",
    "TGREEN_SEC",
    "DCLARKE_SEC",
];

const AUTHORISERS: &[&str] = &[
    "Governor",
    "Deputy Governor",
    "Security Manager",
    "Wing Manager",
    "S/O Smith",
    "SO JONES",
    "Custodial Manager Brown",
    "Duty Governor",
    "OMU",
    "Safer Custody Team",
    "Head of Residence",
    "Intelligence Team",
];

const COMMENTS: &[&str] = &[
    "Assault on the wing, keep apart",
    "Victim of bullying by the other prisoner",
    "Gang related - rival groups",
    "Threats made during association",
    "Co-defendants, police request",
    "Fight in the servery",
    "Debt related intimidation",
    "Intelligence suggests risk of violence",
    "Prisoner requested non association following incident",
    "Ex partner's family member",
    "Do not locate together - see security report",
    "Historic NA carried over from previous establishment",
    "Racially motivated incident",
    "Bullying on the landing; reviewed by safer custody",
    "Threat to staff and other prisoners when together",
];

/// Reason pairs (reason, reciprocal reason) with their weights out of 100.
const REASONS: &[(&str, &str, u32)] = &[
    ("VIC", "PER", 24),
    ("PER", "VIC", 24),
    ("BUL", "BUL", 10),
    ("RIV", "RIV", 15),
    ("NOT_REL", "NOT_REL", 15),
    ("PER", "PER", 6),
    ("VIC", "VIC", 3),
    ("UNKNOWN", "UNKNOWN", 3),
];

const TYPES: &[(&str, u32)] = &[
    ("CELL", 30),
    ("LAND", 25),
    ("WING", 35),
    ("NONEX", 5),
    ("TNA", 5),
];

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    let total: u32 = items.iter().map(&weight).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for item in items {
        let w = weight(item);
        if roll < w {
            return item;
        }
        roll -= w;
    }
    &items[items.len() - 1]
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// An independent stream for one record, so a record's values do not depend on how many
/// random numbers earlier records drew.
fn stream(seed: u64, kind: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((kind << 48) ^ index);
    rng
}

const PRISONER_STREAM: u64 = 1;
const PAIR_STREAM: u64 = 2;
const PAIR_CHOICE_STREAM: u64 = 3;

fn at(date: NaiveDate, rng: &mut ChaCha8Rng) -> DateTime<Utc> {
    let secs = rng.random_range(7 * 3600..19 * 3600);
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap_or(NaiveTime::MIN);
    date.and_time(time).and_utc()
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Rows for one table, flushed as multi-row INSERTs.
struct Batch {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Value>>,
    limit: usize,
}

impl Batch {
    fn new(db: &Db, table: &'static str, columns: &'static [&'static str]) -> Self {
        let limit = rows_per_insert(db, columns.len());
        Self {
            table,
            columns,
            rows: Vec::with_capacity(limit),
            limit,
        }
    }

    fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= self.limit
    }

    async fn flush<C: ConnectionTrait>(&mut self, conn: &C) -> Result<(), DbErr> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(self.table))
            .columns(self.columns.iter().map(|c| Alias::new(*c)));
        for row in self.rows.drain(..) {
            insert.values_panic(row.into_iter().map(sea_orm::sea_query::Expr::from));
        }
        conn.execute(&insert).await?;
        Ok(())
    }
}

/// A write transaction that commits every few statements, so a big seed neither holds
/// one enormous transaction nor pays a commit per statement.
struct Writer<'a> {
    db: &'a Db,
    txn: Option<DatabaseTransaction>,
    statements: usize,
}

impl<'a> Writer<'a> {
    fn new(db: &'a Db) -> Self {
        Self {
            db,
            txn: None,
            statements: 0,
        }
    }

    async fn txn(&mut self) -> Result<&DatabaseTransaction, NomisError> {
        if self.statements >= INSERTS_PER_TRANSACTION {
            if let Some(txn) = self.txn.take() {
                txn.commit().await?;
            }
            self.statements = 0;
        }
        if self.txn.is_none() {
            self.txn = Some(self.db.begin_write().await?);
        }
        self.statements += 1;
        self.txn
            .as_ref()
            .ok_or_else(|| NomisError::Invalid("seed transaction unavailable".into()))
    }

    async fn flush(&mut self, batch: &mut Batch) -> Result<(), NomisError> {
        if batch.rows.is_empty() {
            return Ok(());
        }
        let txn = self.txn().await?;
        batch.flush(txn).await?;
        Ok(())
    }

    async fn finish(mut self) -> Result<(), NomisError> {
        if let Some(txn) = self.txn.take() {
            txn.commit().await?;
        }
        Ok(())
    }
}

const AUDIT: [&str; 5] = [
    "create_datetime",
    "create_user_id",
    "modify_datetime",
    "modify_user_id",
    "audit_module_name",
];

const OFFENDER_COLUMNS: &[&str] = &[
    "offender_id",
    "offender_no",
    "first_name",
    "last_name",
    "birth_date",
    AUDIT[0],
    AUDIT[1],
    AUDIT[2],
    AUDIT[3],
    AUDIT[4],
];

const BOOKING_COLUMNS: &[&str] = &[
    "offender_book_id",
    "offender_id",
    "booking_seq",
    "active_flag",
    "agy_loc_id",
    "booking_begin_date",
    "booking_end_date",
    "living_unit_description",
    AUDIT[0],
    AUDIT[1],
    AUDIT[2],
    AUDIT[3],
    AUDIT[4],
];

const HEADER_COLUMNS: &[&str] = &[
    "offender_id",
    "ns_offender_id",
    "offender_book_id",
    "ns_offender_book_id",
    "ns_reason_code",
    "recip_ns_reason_code",
    "ns_level_code",
    "internal_location_flag",
    "transport_flag",
    AUDIT[0],
    AUDIT[1],
    AUDIT[2],
    AUDIT[3],
    AUDIT[4],
];

const DETAIL_COLUMNS: &[&str] = &[
    "offender_id",
    "ns_offender_id",
    "type_seq",
    "offender_book_id",
    "ns_offender_book_id",
    "ns_reason_code",
    "recip_ns_reason_code",
    "ns_level_code",
    "ns_type",
    "ns_effective_date",
    "ns_expiry_date",
    "authorized_staff",
    "comment_text",
    AUDIT[0],
    AUDIT[1],
    AUDIT[2],
    AUDIT[3],
    AUDIT[4],
];

/// The facts about prisoner `i` that non-associations need, derived without storing them.
struct Prisoner {
    offender_id: i64,
    booking_id: i64,
}

fn prisoner(first_offender_id: i64, first_booking_id: i64, i: usize) -> Prisoner {
    Prisoner {
        offender_id: first_offender_id + i as i64,
        // Two booking ids are reserved per prisoner (current, previous); gaps are as
        // normal in NOMIS as they are in any Oracle sequence.
        booking_id: first_booking_id + 2 * i as i64,
    }
}

/// One non-association pair as drawn: everything both directions' rows need.
struct PairPlan {
    details: Vec<DetailPlan>,
    last_reasons: (&'static str, &'static str),
    internal: &'static str,
    transport: &'static str,
    header_at: DateTime<Utc>,
}

struct DetailPlan {
    seq: i32,
    effective: NaiveDate,
    expiry: Option<NaiveDate>,
    reason: &'static str,
    recip: &'static str,
    na_type: &'static str,
    authorised: Option<&'static str>,
    comment: Option<String>,
    user: &'static str,
    module: &'static str,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
}

fn plan_pair(seed: u64, k: u64, anchor: NaiveDate) -> PairPlan {
    let mut rng = stream(seed, PAIR_STREAM, k);
    let start = NaiveDate::from_ymd_opt(1992, 1, 1).unwrap_or(NaiveDate::MIN);
    let span = ((anchor - start).num_days() - 30).max(1);
    let sequences = match rng.random_range(0..100) {
        0..70 => 1,
        70..90 => 2,
        90..97 => 3,
        _ => 4,
    };
    let mut effective = start + days(rng.random_range(0..span));
    let mut details = Vec::with_capacity(sequences);
    for seq in 1..=sequences {
        if seq > 1 {
            effective = (effective + days(rng.random_range(30..2000))).min(anchor);
        }
        let last = seq == sequences;
        let expiry = if !last {
            Some((effective + days(rng.random_range(1..1500))).min(anchor))
        } else {
            match rng.random_range(0..100) {
                0..55 => None,
                55..65 => Some(anchor + days(rng.random_range(200..5000))),
                _ => Some((effective + days(rng.random_range(1..3000))).min(anchor)),
            }
        };
        let &(reason, recip, _) = weighted(&mut rng, REASONS, |r| r.2);
        let &(na_type, _) = weighted(&mut rng, TYPES, |t| t.1);
        let authorised = if rng.random_range(0..100) < 8 {
            None
        } else {
            Some(pick(&mut rng, AUTHORISERS))
        };
        let comment = match rng.random_range(0..100) {
            0..10 => None,
            10..13 => Some(format!("{}   ", pick(&mut rng, COMMENTS))),
            _ => Some(pick(&mut rng, COMMENTS).to_string()),
        };
        let user = pick(&mut rng, STAFF);
        let module = if rng.random_range(0..100) < 97 {
            "OIDSENAD"
        } else {
            "DPS_SYNCHRONISATION"
        };
        let created = at(effective, &mut rng);
        let modified = match expiry {
            Some(e) if e <= anchor => at(e, &mut rng).max(created),
            _ => created,
        };
        details.push(DetailPlan {
            seq: seq as i32,
            effective,
            expiry,
            reason,
            recip,
            na_type,
            authorised,
            comment,
            user,
            module,
            created,
            modified,
        });
    }
    let last_reasons = details
        .last()
        .map(|d| (d.reason, d.recip))
        .unwrap_or(("NOT_REL", "NOT_REL"));
    PairPlan {
        last_reasons,
        internal: if rng.random_range(0..100) < 10 {
            "Y"
        } else {
            "N"
        },
        transport: if rng.random_range(0..100) < 5 {
            "Y"
        } else {
            "N"
        },
        header_at: at(effective, &mut rng),
        details,
    }
}

/// Where the seeded records' ids start; prisoner `i` derives everything else from it.
#[derive(Clone, Copy)]
struct Estate {
    seed: u64,
    prisoners: usize,
    first_offender_id: i64,
    first_booking_id: i64,
    anchor: NaiveDate,
}

impl Estate {
    fn prisoner(&self, i: usize) -> Prisoner {
        prisoner(self.first_offender_id, self.first_booking_id, i)
    }
}

/// Seeds prisoners, their bookings and non-associations. See the module docs.
pub async fn seed(db: &Db, opts: &SeedOptions) -> Result<SeedSummary, NomisError> {
    let n = opts.prisoners;
    let pairs_wanted = opts.non_association_pairs.unwrap_or(n / 4);
    let max_pairs = n.saturating_mul(n.saturating_sub(1)) / 4;
    if pairs_wanted > max_pairs {
        return Err(NomisError::Invalid(format!(
            "Cannot seed {pairs_wanted} non-association pairs among {n} prisoners: at most {max_pairs} (a quarter of all possible pairs)"
        )));
    }
    let prisons = seed_prisons(db, &opts.prisons).await?;
    if n == 0 {
        return Ok(SeedSummary::default());
    }

    let (first_offender_id, first_booking_id) = {
        let txn = db.begin_write().await?;
        let o = keys::allocate(&txn, keys::OFFENDER_ID, n as i64).await?;
        let b = keys::allocate(&txn, keys::OFFENDER_BOOK_ID, 2 * n as i64).await?;
        txn.commit().await?;
        (o, b)
    };
    let estate = Estate {
        seed: opts.seed,
        prisoners: n,
        first_offender_id,
        first_booking_id,
        anchor: anchor_date(),
    };
    let started = std::time::Instant::now();
    let mut summary = SeedSummary {
        prisoners: n,
        ..Default::default()
    };
    let mut writer = Writer::new(db);

    summary.bookings = seed_prisoners(db, &mut writer, &estate, &prisons).await?;
    tracing::info!(
        prisoners = n,
        bookings = summary.bookings,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seeded prisoners"
    );

    let (pairs, details) =
        seed_non_associations(db, &mut writer, &estate, &prisons, pairs_wanted).await?;
    summary.non_association_pairs = pairs;
    summary.non_association_details = details;
    writer.finish().await?;
    tracing::info!(
        pairs,
        details,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seeded non-associations"
    );

    analyze(db).await?;
    Ok(summary)
}

/// The prisons to spread prisoners over: the ones asked for (each must be a known prison),
/// else every prison.
async fn seed_prisons(db: &Db, wanted: &[String]) -> Result<Vec<String>, NomisError> {
    let known = crate::prisoners::prisons(db.conn()).await?;
    if wanted.is_empty() {
        if known.is_empty() {
            return Err(NomisError::Invalid(
                "No prisons to seed prisoners into".into(),
            ));
        }
        return Ok(known.iter().map(|p| p.agy_loc_id.clone()).collect());
    }
    for p in wanted {
        if !known.iter().any(|k| &k.agy_loc_id == p) {
            let ids: Vec<&str> = known.iter().map(|k| k.agy_loc_id.as_str()).collect();
            return Err(NomisError::Invalid(format!(
                "Unknown prison '{p}': known prisons are {}",
                ids.join(", ")
            )));
        }
    }
    Ok(wanted.to_vec())
}

/// Offenders with a current booking each (a few released or in transfer) and, for some,
/// an earlier one. Returns the number of bookings.
async fn seed_prisoners(
    db: &Db,
    writer: &mut Writer<'_>,
    estate: &Estate,
    prisons: &[String],
) -> Result<usize, NomisError> {
    let anchor = estate.anchor;
    let mut count = 0;
    let mut offenders = Batch::new(db, "offenders", OFFENDER_COLUMNS);
    let mut bookings = Batch::new(db, "offender_bookings", BOOKING_COLUMNS);
    for i in 0..estate.prisoners {
        let mut rng = stream(estate.seed, PRISONER_STREAM, i as u64);
        let p = estate.prisoner(i);
        let prison = &prisons[i % prisons.len()];
        let birth = anchor - days(rng.random_range(18 * 365..75 * 365));
        let begin = anchor - days(rng.random_range(1..12 * 365));
        let created = at(begin, &mut rng);
        let clerk = pick(&mut rng, STAFF);
        offenders.push(vec![
            p.offender_id.into(),
            keys::offender_no_for(p.offender_id).into(),
            pick(&mut rng, FIRST_NAMES).into(),
            pick(&mut rng, LAST_NAMES).into(),
            birth.into(),
            created.into(),
            clerk.into(),
            created.into(),
            clerk.into(),
            "OIDADMIS".into(),
        ]);

        // A few are released (booking closed, agency OUT) or in transfer between prisons.
        let (active, agency, end, cell) = match rng.random_range(0..100) {
            0..5 => (
                "N",
                "OUT".to_string(),
                Some(anchor - days(rng.random_range(1..400))),
                None,
            ),
            5..6 => ("Y", "TRN".to_string(), None, None),
            _ => {
                let cell = format!("{prison}-{}", default_cell(rng.random_range(0..480)));
                ("Y", prison.clone(), None, Some(cell))
            }
        };
        let end = end.map(|e| e.max(begin));
        bookings.push(vec![
            p.booking_id.into(),
            p.offender_id.into(),
            1i32.into(),
            active.into(),
            agency.into(),
            begin.into(),
            end.into(),
            cell.into(),
            created.into(),
            clerk.into(),
            end.map(|e| at(e, &mut rng)).unwrap_or(created).into(),
            clerk.into(),
            if end.is_some() {
                "OIDRELSE"
            } else {
                "OIDADMIS"
            }
            .into(),
        ]);
        count += 1;
        if rng.random_range(0..100) < 15 {
            let prev_end = begin - days(rng.random_range(30..2000));
            let prev_begin = prev_end - days(rng.random_range(30..1500));
            let prev_created = at(prev_begin, &mut rng);
            bookings.push(vec![
                (p.booking_id + 1).into(),
                p.offender_id.into(),
                2i32.into(),
                "N".into(),
                "OUT".into(),
                prev_begin.into(),
                Some(prev_end).into(),
                Option::<String>::None.into(),
                prev_created.into(),
                clerk.into(),
                at(prev_end, &mut rng).into(),
                clerk.into(),
                "OIDRELSE".into(),
            ]);
            count += 1;
        }
        if offenders.is_full() {
            writer.flush(&mut offenders).await?;
        }
        if bookings.is_full() {
            // Bookings refer to offenders: write the offenders first.
            writer.flush(&mut offenders).await?;
            writer.flush(&mut bookings).await?;
        }
    }
    writer.flush(&mut offenders).await?;
    writer.flush(&mut bookings).await?;
    Ok(count)
}

/// Distinct pairs, mostly within one prison, each with one to four type sequences; both
/// directions stored. Returns (pairs, detail rows).
async fn seed_non_associations(
    db: &Db,
    writer: &mut Writer<'_>,
    estate: &Estate,
    prisons: &[String],
    wanted: usize,
) -> Result<(usize, usize), NomisError> {
    let n = estate.prisoners;
    let mut choice = stream(estate.seed, PAIR_CHOICE_STREAM, 0);
    let mut chosen: HashSet<(u32, u32)> = HashSet::with_capacity(wanted);
    // (lower, higher) prisoner index; the order they were drawn in decides nothing else.
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(wanted);
    let per_prison = n.div_ceil(prisons.len());
    while pairs.len() < wanted {
        let a = choice.random_range(0..n);
        let b = if choice.random_range(0..100) < 80 {
            choice.random_range(0..per_prison) * prisons.len() + a % prisons.len()
        } else {
            choice.random_range(0..n)
        };
        if b >= n || a == b {
            continue;
        }
        let key = (a.min(b) as u32, a.max(b) as u32);
        if chosen.insert(key) {
            pairs.push(key);
        }
    }
    drop(chosen);

    // Rows go in key order (offender, ns offender), both directions interleaved as the key
    // space has them, so every insert appends to the indexes instead of splitting pages all
    // over them. Each direction re-derives its pair's plan from the pair's own stream.
    let mut directed: Vec<(u32, u32, u32)> = Vec::with_capacity(2 * pairs.len());
    for (k, (a, b)) in pairs.iter().enumerate() {
        directed.push((*a, *b, k as u32));
        directed.push((*b, *a, k as u32));
    }
    let pair_count = pairs.len();
    drop(pairs);
    directed.sort_unstable();

    let mut detail_count = 0;
    let mut headers = Batch::new(db, "offender_non_associations", HEADER_COLUMNS);
    let mut details = Batch::new(db, "offender_na_details", DETAIL_COLUMNS);
    for (x, y, k) in directed {
        let plan = plan_pair(estate.seed, k as u64, estate.anchor);
        // The lower-indexed prisoner of the pair holds `reason`, the other `recip`.
        let forward = x < y;
        let px = estate.prisoner(x as usize);
        let py = estate.prisoner(y as usize);
        let (last_reason, last_recip) = plan.last_reasons;
        headers.push(vec![
            px.offender_id.into(),
            py.offender_id.into(),
            Some(px.booking_id).into(),
            Some(py.booking_id).into(),
            // As NPA writes headers: the reciprocal reason on both, then per direction.
            last_recip.into(),
            Some(if forward { last_recip } else { last_reason }).into(),
            Option::<String>::None.into(),
            plan.internal.into(),
            plan.transport.into(),
            plan.header_at.into(),
            "OMS_OWNER".into(),
            plan.header_at.into(),
            "OMS_OWNER".into(),
            "OIDSENAD".into(),
        ]);
        for d in &plan.details {
            let (r1, r2) = if forward {
                (d.reason, d.recip)
            } else {
                (d.recip, d.reason)
            };
            details.push(vec![
                px.offender_id.into(),
                py.offender_id.into(),
                d.seq.into(),
                Some(px.booking_id).into(),
                Some(py.booking_id).into(),
                r1.into(),
                Some(r2).into(),
                Option::<String>::None.into(),
                d.na_type.into(),
                d.effective.into(),
                d.expiry.into(),
                d.authorised.into(),
                d.comment.clone().into(),
                d.created.into(),
                d.user.into(),
                d.modified.into(),
                d.user.into(),
                d.module.into(),
            ]);
            detail_count += 1;
        }
        if headers.is_full() {
            writer.flush(&mut headers).await?;
        }
        if details.is_full() {
            // Details refer to their headers: write the headers first.
            writer.flush(&mut headers).await?;
            writer.flush(&mut details).await?;
        }
    }
    writer.flush(&mut headers).await?;
    writer.flush(&mut details).await?;
    Ok((pair_count, detail_count))
}

/// Refreshes the planner's statistics after a bulk load, so the id walks use the offender
/// number index rather than scanning everything (neither backend has them otherwise yet).
async fn analyze(db: &Db) -> Result<(), NomisError> {
    for table in [
        "offenders",
        "offender_bookings",
        "offender_non_associations",
        "offender_na_details",
    ] {
        db.conn()
            .execute_unprepared(&format!("ANALYZE {table}"))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_repeatable() {
        let a: u64 = stream(7, PAIR_STREAM, 3).random();
        let b: u64 = stream(7, PAIR_STREAM, 3).random();
        let c: u64 = stream(7, PAIR_STREAM, 4).random();
        let d: u64 = stream(8, PAIR_STREAM, 3).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn weights_cover_every_item() {
        let mut rng = stream(1, 9, 0);
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            seen.insert(weighted(&mut rng, TYPES, |t| t.1).0);
        }
        assert_eq!(seen.len(), TYPES.len());
    }
}
