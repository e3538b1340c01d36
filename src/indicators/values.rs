//! Values and their workflow, as pure functions: periods, typed values checked against
//! the catalogue, the DRAFT → SUBMITTED → VALIDATED/REJECTED transitions, and how a
//! value compares with the previous period and with its target.

use std::{cmp::Ordering, fmt};

use chrono::{Datelike, NaiveDate};

use super::catalogue::{Definition, ValueType};
use crate::{proto, AppError, AppResult};

/// A reporting period: a year or one of its semesters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    pub year: i32,
    /// 1 or 2 for a semester; None for the whole year.
    pub half: Option<u8>,
}

impl Period {
    pub const MIN_YEAR: i32 = 2000;
    pub const MAX_YEAR: i32 = 2100;

    /// Parses "2026", "2026-S1" or "2026-S2" (case-insensitive `s`).
    pub fn parse(field: &str, s: &str) -> AppResult<Period> {
        let bad = || AppError::invalid(field, format!("'{s}' is not a period: YYYY, YYYY-S1 or YYYY-S2"));
        let s = s.trim();
        let (year, half) = match s.split_once('-') {
            None => (s, None),
            Some((y, h)) => match h {
                "S1" | "s1" => (y, Some(1)),
                "S2" | "s2" => (y, Some(2)),
                _ => return Err(bad()),
            },
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        if !(Self::MIN_YEAR..=Self::MAX_YEAR).contains(&year) {
            return Err(AppError::invalid(
                field,
                format!("year {year} is outside {}–{}", Self::MIN_YEAR, Self::MAX_YEAR),
            ));
        }
        Ok(Period { year, half })
    }

    /// Sort key: periods ordered by their end, a year after its second semester
    /// (the annual figure sums up the year).
    pub fn key(self) -> i64 {
        i64::from(self.year) * 10
            + match self.half {
                Some(1) => 1,
                Some(_) => 2,
                None => 3,
            }
    }

    pub fn from_key(key: i64) -> Period {
        let year = (key / 10) as i32;
        match key % 10 {
            1 => Period { year, half: Some(1) },
            2 => Period { year, half: Some(2) },
            _ => Period { year, half: None },
        }
    }

    pub fn end(self) -> NaiveDate {
        let (m, d) = if self.half == Some(1) { (6, 30) } else { (12, 31) };
        NaiveDate::from_ymd_opt(self.year, m, d).unwrap_or(NaiveDate::MAX)
    }

    /// Not yet ended on `today`: the hub's present facts can describe it.
    pub fn is_open(self, today: NaiveDate) -> bool {
        self.end() >= today
    }

    /// The year containing `today` (what a scorecard shows when no value exists yet).
    pub fn year_of(today: NaiveDate) -> Period {
        Period { year: today.year(), half: None }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.half {
            Some(h) => write!(f, "{}-S{h}", self.year),
            None => write!(f, "{}", self.year),
        }
    }
}

/// A value checked against its indicator's type and range.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Boolean(bool),
    Percent(f64),
    Count(i64),
    Date(NaiveDate),
    Status(String),
}

impl Val {
    pub fn value_type(&self) -> ValueType {
        match self {
            Val::Boolean(_) => ValueType::Boolean,
            Val::Percent(_) => ValueType::Percent,
            Val::Count(_) => ValueType::Count,
            Val::Date(_) => ValueType::Date,
            Val::Status(_) => ValueType::Status,
        }
    }

    /// Canonical text, as stored and exported ("true", "87.5", "12", "2026-03-01", "DONE").
    pub fn text(&self) -> String {
        match self {
            Val::Boolean(b) => b.to_string(),
            Val::Percent(p) => p.to_string(),
            Val::Count(c) => c.to_string(),
            Val::Date(d) => d.format("%Y-%m-%d").to_string(),
            Val::Status(s) => s.clone(),
        }
    }

    /// Parses the canonical text of a type (stored values, command-line input).
    /// Range and allowed stages are checked by [`check`], not here.
    pub fn parse_text(t: ValueType, s: &str) -> Result<Val, String> {
        let s = s.trim();
        match t {
            ValueType::Boolean => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "oui" => Ok(Val::Boolean(true)),
                "false" | "no" | "non" => Ok(Val::Boolean(false)),
                _ => Err(format!("'{s}' is not a boolean (true or false)")),
            },
            ValueType::Percent => s
                .trim_end_matches('%')
                .trim()
                .parse::<f64>()
                .map(Val::Percent)
                .map_err(|_| format!("'{s}' is not a percentage")),
            ValueType::Count => s.parse::<i64>().map(Val::Count).map_err(|_| format!("'{s}' is not a whole number")),
            ValueType::Date => parse_date(s).map(Val::Date),
            ValueType::Status => Ok(Val::Status(s.to_string())),
        }
    }

    pub fn to_proto(&self) -> proto::Value {
        use proto::value::Kind;
        let kind = match self {
            Val::Boolean(b) => Kind::Boolean(*b),
            Val::Percent(p) => Kind::Percent(*p),
            Val::Count(c) => Kind::Count(*c),
            Val::Date(_) => Kind::Date(self.text()),
            Val::Status(s) => Kind::Status(s.clone()),
        };
        proto::Value { kind: Some(kind) }
    }

    /// Position on the indicator's scale, for trends and targets: higher is further
    /// along. None for dates, which have no better or worse.
    pub fn rank(&self, def: &Definition) -> Option<f64> {
        match self {
            Val::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
            Val::Percent(p) => Some(*p),
            Val::Count(c) => Some(*c as f64),
            Val::Date(_) => None,
            Val::Status(s) => def.allowed_values.iter().position(|a| a == s).map(|i| i as f64),
        }
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("'{s}' is not a date (YYYY-MM-DD)"))?;
    if !(Period::MIN_YEAR..=Period::MAX_YEAR).contains(&d.year()) {
        return Err(format!("date {s} is outside the years {}–{}", Period::MIN_YEAR, Period::MAX_YEAR));
    }
    Ok(d)
}

fn kind_name(k: &proto::value::Kind) -> &'static str {
    use proto::value::Kind;
    match k {
        Kind::Boolean(_) => "a boolean",
        Kind::Percent(_) => "a percent",
        Kind::Count(_) => "a count",
        Kind::Date(_) => "a date",
        Kind::Status(_) => "a status",
    }
}

/// Checks a value's range against its definition (percent 0–100, count ≥ 0, a stage
/// among the allowed ones); the reason names what is wrong, not the indicator.
pub fn check_range(def: &Definition, v: Val) -> Result<Val, String> {
    match &v {
        Val::Percent(p) if !p.is_finite() || *p < 0.0 || *p > 100.0 => {
            Err(format!("a percentage must be between 0 and 100, got {p}"))
        }
        Val::Count(c) if *c < 0 => Err(format!("a count cannot be negative, got {c}")),
        Val::Status(s) if !def.allowed_values.iter().any(|a| a == s) => {
            Err(format!("'{s}' is not one of {}", def.allowed_values.join(", ")))
        }
        _ => Ok(v),
    }
}

/// Checks a wire value against the indicator: the right kind, in range. Errors are
/// INVALID_ARGUMENT on `field` and name the indicator code.
pub fn check(field: &str, def: &Definition, value: Option<&proto::Value>) -> AppResult<Val> {
    use proto::value::Kind;
    let code = &def.code;
    let kind = value
        .and_then(|v| v.kind.as_ref())
        .ok_or_else(|| AppError::invalid(field, format!("{code} needs a {} value", def.value_type.as_str())))?;
    let v = match (def.value_type, kind) {
        (ValueType::Boolean, Kind::Boolean(b)) => Val::Boolean(*b),
        (ValueType::Percent, Kind::Percent(p)) => Val::Percent(*p),
        (ValueType::Count, Kind::Count(c)) => Val::Count(*c),
        (ValueType::Date, Kind::Date(d)) => {
            Val::Date(parse_date(d.trim()).map_err(|e| AppError::invalid(field, format!("{code}: {e}")))?)
        }
        (ValueType::Status, Kind::Status(s)) => Val::Status(s.trim().to_string()),
        (t, k) => {
            return Err(AppError::invalid(
                field,
                format!("{code} expects a {} value, got {}", t.as_str(), kind_name(k)),
            ))
        }
    };
    check_range(def, v).map_err(|e| AppError::invalid(field, format!("{code}: {e}")))
}

/// Workflow status of a value revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Draft,
    Submitted,
    Validated,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::Submitted => "SUBMITTED",
            Status::Validated => "VALIDATED",
            Status::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Draft, Status::Submitted, Status::Validated, Status::Rejected].into_iter().find(|x| x.as_str() == s)
    }

    pub fn to_proto(self) -> proto::ValueStatus {
        match self {
            Status::Draft => proto::ValueStatus::Draft,
            Status::Submitted => proto::ValueStatus::Submitted,
            Status::Validated => proto::ValueStatus::Validated,
            Status::Rejected => proto::ValueStatus::Rejected,
        }
    }

    pub fn from_proto(s: proto::ValueStatus) -> Option<Status> {
        Some(match s {
            proto::ValueStatus::Unspecified => return None,
            proto::ValueStatus::Draft => Status::Draft,
            proto::ValueStatus::Submitted => Status::Submitted,
            proto::ValueStatus::Validated => Status::Validated,
            proto::ValueStatus::Rejected => Status::Rejected,
        })
    }
}

/// What a declaration does, given the status of the value's latest revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclareEffect {
    /// No value yet: revision 1.
    First,
    /// DRAFT or REJECTED: the revision is declared again (History keeps the old value).
    Redeclare,
    /// VALIDATED: immutable, so the correction opens the next revision.
    NewRevision,
}

pub fn on_declare(latest: Option<Status>, what: &str) -> AppResult<DeclareEffect> {
    match latest {
        None => Ok(DeclareEffect::First),
        Some(Status::Draft | Status::Rejected) => Ok(DeclareEffect::Redeclare),
        Some(Status::Validated) => Ok(DeclareEffect::NewRevision),
        Some(Status::Submitted) => Err(AppError::precondition(format!(
            "{what} is SUBMITTED and awaits the ARS's review: it cannot be declared again until validated or rejected"
        ))),
    }
}

/// The ARS reviews SUBMITTED values only.
pub fn on_review(current: Status, what: &str) -> AppResult<()> {
    match current {
        Status::Submitted => Ok(()),
        other => {
            Err(AppError::precondition(format!("{what} is {}: only a SUBMITTED value can be reviewed", other.as_str())))
        }
    }
}

/// The value's direction against an earlier one.
pub fn trend(def: &Definition, current: Option<&Val>, previous: Option<&Val>) -> proto::Trend {
    let (Some(c), Some(p)) = (current, previous) else { return proto::Trend::None };
    if let (Val::Date(a), Val::Date(b)) = (c, p) {
        return if a == b { proto::Trend::Stable } else { proto::Trend::None };
    }
    match (c.rank(def), p.rank(def)) {
        (Some(a), Some(b)) => match a.partial_cmp(&b) {
            Some(Ordering::Greater) => proto::Trend::Up,
            Some(Ordering::Less) => proto::Trend::Down,
            _ => proto::Trend::Stable,
        },
        _ => proto::Trend::None,
    }
}

/// Whether the value meets the definition's target (a date meets it on or before).
pub fn target_reached(def: &Definition, value: Option<&Val>) -> proto::TargetReached {
    let (Some(v), Some(t)) = (value, def.target.as_ref()) else { return proto::TargetReached::Unknown };
    let reached = match (v, t) {
        (Val::Date(a), Val::Date(b)) => a <= b,
        _ => match (v.rank(def), t.rank(def)) {
            (Some(a), Some(b)) => a >= b,
            _ => return proto::TargetReached::Unknown,
        },
    };
    if reached {
        proto::TargetReached::Yes
    } else {
        proto::TargetReached::No
    }
}

/// Progress towards the target, 0–100 (our own measure, see `ScorecardRow.attainment`).
pub fn attainment(def: &Definition, value: &Val) -> f64 {
    let target_rank = def.target.as_ref().and_then(|t| t.rank(def)).filter(|r| *r > 0.0);
    let share = |x: f64, full: f64| (x / full * 100.0).clamp(0.0, 100.0);
    match value {
        Val::Boolean(b) => {
            if *b {
                100.0
            } else {
                0.0
            }
        }
        Val::Date(_) => 100.0,
        Val::Percent(p) => share(*p, target_rank.unwrap_or(100.0)),
        Val::Count(c) => match target_rank {
            Some(t) => share(*c as f64, t),
            None if *c > 0 => 100.0,
            None => 0.0,
        },
        Val::Status(_) => {
            let last = def.allowed_values.len().saturating_sub(1).max(1) as f64;
            value.rank(def).map(|r| share(r, target_rank.unwrap_or(last))).unwrap_or(0.0)
        }
    }
}

/// Percentages closer than this (in points) are not a disagreement: the declaring side
/// may round differently from the hub.
pub const PERCENT_TOLERANCE: f64 = 1.0;

/// A declared and a computed value disagree.
pub fn disagree(declared: &Val, computed: &Val) -> bool {
    match (declared, computed) {
        (Val::Percent(a), Val::Percent(b)) => (a - b).abs() > PERCENT_TOLERANCE,
        (a, b) => a != b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::catalogue::tests::def;

    #[test]
    fn periods_parse_order_and_refuse_junk() {
        let p = |s| Period::parse("period", s);
        assert_eq!(p("2026").unwrap(), Period { year: 2026, half: None });
        assert_eq!(p("2026-S1").unwrap().to_string(), "2026-S1");
        assert_eq!(p(" 2026-s2 ").unwrap().to_string(), "2026-S2");
        for bad in ["", "26", "2026-S3", "2026-s", "2026-H1", "20261", "1999", "2101", "２０２６", "2026-S1-x", "+202"]
        {
            assert!(p(bad).is_err(), "{bad} accepted");
        }
        let keys: Vec<i64> = ["2025-S1", "2025-S2", "2025", "2026-S1"].iter().map(|s| p(s).unwrap().key()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        for s in ["2025-S1", "2025-S2", "2025"] {
            assert_eq!(Period::from_key(p(s).unwrap().key()).to_string(), s);
        }
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert!(p("2026-S1").unwrap().is_open(d(2026, 6, 30)));
        assert!(!p("2026-S1").unwrap().is_open(d(2026, 7, 1)));
        assert!(p("2026").unwrap().is_open(d(2026, 12, 31)));
        assert!(!p("2025").unwrap().is_open(d(2026, 1, 1)));
    }

    fn v(k: proto::value::Kind) -> proto::Value {
        proto::Value { kind: Some(k) }
    }

    #[test]
    fn values_are_checked_by_type_and_range_naming_the_code() {
        use proto::value::Kind;
        let pct = def("CONV-3.1", ValueType::Percent, &[]);
        assert_eq!(check("value", &pct, Some(&v(Kind::Percent(87.5)))).unwrap(), Val::Percent(87.5));
        assert!(check("value", &pct, Some(&v(Kind::Percent(0.0)))).is_ok());
        assert!(check("value", &pct, Some(&v(Kind::Percent(100.0)))).is_ok());
        for bad in [100.01, -0.5, f64::NAN, f64::INFINITY] {
            let e = check("value", &pct, Some(&v(Kind::Percent(bad)))).unwrap_err().to_string();
            assert!(e.contains("CONV-3.1") && e.contains("between 0 and 100"), "{e}");
        }
        let e = check("value", &pct, Some(&v(Kind::Count(50)))).unwrap_err().to_string();
        assert!(e.contains("CONV-3.1 expects a PERCENT value, got a count"), "{e}");
        let e = check("value", &pct, None).unwrap_err().to_string();
        assert!(e.contains("CONV-3.1"), "{e}");

        let b = def("CONV-2.1", ValueType::Boolean, &[]);
        let e = check("value", &b, Some(&v(Kind::Status("yes".into())))).unwrap_err().to_string();
        assert!(e.starts_with("invalid value: CONV-2.1 expects a BOOLEAN value, got a status"), "{e}");

        let st = def("CONV-1.2", ValueType::Status, &["NOT_STARTED", "IN_PROGRESS", "DONE"]);
        assert_eq!(check("value", &st, Some(&v(Kind::Status(" DONE ".into())))).unwrap(), Val::Status("DONE".into()));
        let e = check("value", &st, Some(&v(Kind::Status("done".into())))).unwrap_err().to_string();
        assert!(e.contains("CONV-1.2: 'done' is not one of NOT_STARTED, IN_PROGRESS, DONE"), "{e}");

        let c = def("CONV-5.2", ValueType::Count, &[]);
        assert!(check("value", &c, Some(&v(Kind::Count(-1)))).unwrap_err().to_string().contains("CONV-5.2"));
        assert!(check("value", &c, Some(&v(Kind::Count(0)))).is_ok());

        let d = def("X-1", ValueType::Date, &[]);
        assert!(check("value", &d, Some(&v(Kind::Date("2026-02-30".into())))).is_err());
        assert!(check("value", &d, Some(&v(Kind::Date("1850-01-01".into())))).is_err());
        assert_eq!(check("value", &d, Some(&v(Kind::Date("2026-02-28".into())))).unwrap().text(), "2026-02-28");
    }

    #[test]
    fn text_round_trips() {
        for (t, s) in [
            (ValueType::Boolean, "true"),
            (ValueType::Percent, "87.5"),
            (ValueType::Percent, "0.1"),
            (ValueType::Count, "12"),
            (ValueType::Date, "2026-03-01"),
            (ValueType::Status, "DONE"),
        ] {
            assert_eq!(Val::parse_text(t, s).unwrap().text(), s);
        }
        assert_eq!(Val::parse_text(ValueType::Percent, "40 %").unwrap(), Val::Percent(40.0));
        assert_eq!(Val::parse_text(ValueType::Boolean, "Oui").unwrap(), Val::Boolean(true));
        assert!(Val::parse_text(ValueType::Boolean, "maybe").is_err());
        assert!(Val::parse_text(ValueType::Count, "1.5").is_err());
    }

    #[test]
    fn workflow_transitions() {
        assert_eq!(on_declare(None, "x").unwrap(), DeclareEffect::First);
        assert_eq!(on_declare(Some(Status::Draft), "x").unwrap(), DeclareEffect::Redeclare);
        assert_eq!(on_declare(Some(Status::Rejected), "x").unwrap(), DeclareEffect::Redeclare);
        assert_eq!(on_declare(Some(Status::Validated), "x").unwrap(), DeclareEffect::NewRevision);
        assert_eq!(on_declare(Some(Status::Submitted), "x").unwrap_err().code(), tonic::Code::FailedPrecondition);
        assert!(on_review(Status::Submitted, "x").is_ok());
        for s in [Status::Draft, Status::Validated, Status::Rejected] {
            assert_eq!(on_review(s, "x").unwrap_err().code(), tonic::Code::FailedPrecondition);
        }
    }

    #[test]
    fn trend_target_attainment_disagreement() {
        let mut st = def("S", ValueType::Status, &["NOT_STARTED", "IN_PROGRESS", "DONE", "VALIDATED"]);
        let s = |x: &str| Val::Status(x.into());
        assert_eq!(trend(&st, Some(&s("DONE")), Some(&s("IN_PROGRESS"))), proto::Trend::Up);
        assert_eq!(trend(&st, Some(&s("NOT_STARTED")), Some(&s("IN_PROGRESS"))), proto::Trend::Down);
        assert_eq!(trend(&st, Some(&s("DONE")), Some(&s("DONE"))), proto::Trend::Stable);
        assert_eq!(trend(&st, Some(&s("DONE")), None), proto::Trend::None);
        assert_eq!(target_reached(&st, Some(&s("DONE"))), proto::TargetReached::Unknown);
        st.target = Some(s("DONE"));
        assert_eq!(target_reached(&st, Some(&s("VALIDATED"))), proto::TargetReached::Yes);
        assert_eq!(target_reached(&st, Some(&s("IN_PROGRESS"))), proto::TargetReached::No);
        assert_eq!(target_reached(&st, None), proto::TargetReached::Unknown);
        assert_eq!(attainment(&st, &s("IN_PROGRESS")), 50.0);
        assert_eq!(attainment(&st, &s("VALIDATED")), 100.0);

        let mut pct = def("P", ValueType::Percent, &[]);
        assert_eq!(attainment(&pct, &Val::Percent(40.0)), 40.0);
        pct.target = Some(Val::Percent(80.0));
        assert_eq!(attainment(&pct, &Val::Percent(40.0)), 50.0);
        assert_eq!(attainment(&pct, &Val::Percent(95.0)), 100.0);
        assert_eq!(target_reached(&pct, Some(&Val::Percent(80.0))), proto::TargetReached::Yes);
        assert_eq!(trend(&pct, Some(&Val::Percent(40.0)), Some(&Val::Percent(60.0))), proto::Trend::Down);

        let cnt = def("C", ValueType::Count, &[]);
        assert_eq!(attainment(&cnt, &Val::Count(0)), 0.0);
        assert_eq!(attainment(&cnt, &Val::Count(3)), 100.0);
        let b = def("B", ValueType::Boolean, &[]);
        assert_eq!(trend(&b, Some(&Val::Boolean(true)), Some(&Val::Boolean(false))), proto::Trend::Up);
        let d = def("D", ValueType::Date, &[]);
        let day = |n| Val::Date(NaiveDate::from_ymd_opt(2026, 1, n).unwrap());
        assert_eq!(trend(&d, Some(&day(2)), Some(&day(1))), proto::Trend::None);
        assert_eq!(trend(&d, Some(&day(2)), Some(&day(2))), proto::Trend::Stable);

        assert!(!disagree(&Val::Percent(50.0), &Val::Percent(50.9)));
        assert!(disagree(&Val::Percent(50.0), &Val::Percent(51.5)));
        assert!(disagree(&s("DONE"), &s("IN_PROGRESS")));
        assert!(!disagree(&Val::Boolean(true), &Val::Boolean(true)));
    }
}
