//! Assembles a scorecard from a catalogue, the stored revisions of one GHT (or one
//! establishment) and, for open periods, the hub's computed values. Pure: the service
//! fetches, this decides what each row says.

use std::collections::{BTreeMap, HashMap};

use super::{
    catalogue::{Catalogue, Definition, Scope},
    formulas::Computed,
    store::ValueRow,
    values::{self, Period, Status, Val},
};
use crate::proto;

/// What the service hands over.
pub struct Input<'a> {
    pub catalogue: &'a Catalogue,
    /// Which indicators of the catalogue (GHT or ESTABLISHMENT scope).
    pub scope: Scope,
    pub ght_id: &'a str,
    pub establishment_id: &'a str,
    pub period: Period,
    /// Every revision of every value of this GHT (or establishment) in the catalogue.
    pub rows: &'a [ValueRow],
    /// Computed values by indicator code, with their computation time; None when the
    /// period is closed (computed values describe the present).
    pub computed: Option<(HashMap<String, Computed>, String)>,
}

/// A revision's value, if it has the type the current definition expects (a value
/// declared under an older catalogue version with another type is shown, not compared).
fn typed(def: &Definition, row: &ValueRow) -> Option<Val> {
    row.value().filter(|v| v.value_type() == def.value_type)
}

/// The period to show when none is asked: the latest with a value, else the current year.
pub fn default_period(rows: &[ValueRow], today: chrono::NaiveDate) -> Period {
    rows.iter().map(|r| r.period_key).max().map(Period::from_key).unwrap_or_else(|| Period::year_of(today))
}

/// The latest revision among a value's revisions.
fn latest_of<'r>(revs: &[&'r ValueRow]) -> Option<&'r ValueRow> {
    revs.iter().max_by_key(|r| r.revision).copied()
}

pub fn build(input: Input<'_>) -> proto::Scorecard {
    let key = input.period.key();
    // code → period key → revisions (ascending).
    let mut by_code: HashMap<&str, BTreeMap<i64, Vec<&ValueRow>>> = HashMap::new();
    for r in input.rows {
        by_code.entry(r.key.indicator_code.as_str()).or_default().entry(r.period_key).or_default().push(r);
    }
    let computed = input.computed.as_ref().map(|(c, _)| c);
    let mut rows = Vec::new();
    for def in input.catalogue.indicators.iter().filter(|d| d.scope == input.scope) {
        let periods = by_code.get(def.code.as_str());
        let here = periods.and_then(|p| p.get(&key));
        let declared = here.and_then(|revs| latest_of(revs));
        let validated = here
            .and_then(|revs| revs.iter().filter(|r| r.status == Status::Validated).max_by_key(|r| r.revision).copied())
            .filter(|v| declared.is_some_and(|d| d.revision != v.revision));
        let previous: Vec<(&ValueRow, Option<Val>)> = periods
            .map(|p| p.range(..key).filter_map(|(_, revs)| latest_of(revs)).map(|r| (r, typed(def, r))).collect())
            .unwrap_or_default();

        let comp = match (def.formula, computed) {
            (Some(_), Some(c)) => c.get(&def.code),
            _ => None,
        };
        let declared_val = declared.and_then(|d| typed(def, d));
        let computed_val = comp.and_then(|c| c.value.clone());
        let (reference, ref_val) = match (&declared_val, &computed_val) {
            (Some(v), _) => (proto::ReferenceValue::Declared, Some(v.clone())),
            (None, Some(v)) => (proto::ReferenceValue::Computed, Some(v.clone())),
            (None, None) => (proto::ReferenceValue::None, None),
        };
        let prev_val = previous.iter().rev().find_map(|(_, v)| v.clone());
        let disagreement = match (&declared_val, &computed_val) {
            (Some(d), Some(c)) => values::disagree(d, c),
            _ => false,
        };
        rows.push(proto::ScorecardRow {
            indicator: Some(def.to_proto()),
            declared: declared.map(ValueRow::to_proto),
            validated: validated.map(ValueRow::to_proto),
            computed: comp.map(|c| proto::ComputedValue {
                computable: c.value.is_some(),
                value: c.value.as_ref().map(Val::to_proto),
                numerator: c.numerator,
                denominator: c.denominator,
                detail: c.detail.clone(),
                formula: def.formula.map(|f| f.name().to_string()).unwrap_or_default(),
            }),
            disagreement,
            reference: reference as i32,
            trend: values::trend(def, ref_val.as_ref(), prev_val.as_ref()) as i32,
            previous: previous
                .iter()
                .map(|(r, v)| proto::PeriodPoint {
                    period: r.key.period.clone(),
                    value: r.value().map(|x| x.to_proto()),
                    status: r.status.to_proto() as i32,
                    attainment: v.as_ref().map(|x| values::attainment(def, x)).unwrap_or(-1.0),
                })
                .collect(),
            target_reached: values::target_reached(def, ref_val.as_ref()) as i32,
            attainment: ref_val.as_ref().map(|v| values::attainment(def, v)).unwrap_or(-1.0),
        });
    }

    let domains = input
        .catalogue
        .domains
        .iter()
        .filter_map(|d| {
            let of: Vec<&proto::ScorecardRow> =
                rows.iter().filter(|r| r.indicator.as_ref().is_some_and(|i| i.domain == d.number)).collect();
            if of.is_empty() {
                return None;
            }
            let valued: Vec<f64> = of.iter().map(|r| r.attainment).filter(|a| *a >= 0.0).collect();
            Some(proto::DomainSummary {
                number: d.number,
                label_fr: d.label_fr.clone(),
                label_en: d.label_en.clone(),
                indicators: of.len() as u32,
                valued: valued.len() as u32,
                validated: of
                    .iter()
                    .filter(|r| r.declared.as_ref().is_some_and(|v| v.status == proto::ValueStatus::Validated as i32))
                    .count() as u32,
                targets_reached: of.iter().filter(|r| r.target_reached == proto::TargetReached::Yes as i32).count()
                    as u32,
                attainment: if valued.is_empty() { -1.0 } else { valued.iter().sum::<f64>() / valued.len() as f64 },
            })
        })
        .collect();

    let mut period_keys: Vec<i64> = input.rows.iter().map(|r| r.period_key).collect();
    period_keys.sort_unstable();
    period_keys.dedup();
    proto::Scorecard {
        ght_id: input.ght_id.to_string(),
        establishment_id: input.establishment_id.to_string(),
        period: input.period.to_string(),
        catalogue: input.catalogue.id.clone(),
        catalogue_version: input.catalogue.version.clone(),
        rows,
        domains,
        periods: period_keys.into_iter().map(|k| Period::from_key(k).to_string()).collect(),
        computed_shown: input.computed.is_some(),
        computed_at: input.computed.as_ref().map(|(_, at)| at.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{catalogue, store::ValueKey};

    fn conv() -> Catalogue {
        catalogue::parse(catalogue::EMBEDDED[0]).unwrap()
    }

    fn row(code: &str, period: &str, revision: i64, text: &str, status: Status) -> ValueRow {
        let cat = conv();
        let def = cat.get(code).unwrap();
        let p = Period::parse("p", period).unwrap();
        ValueRow {
            id: format!("{code}/{period}/{revision}"),
            key: ValueKey {
                ght_id: "G".into(),
                establishment_id: String::new(),
                indicator_code: code.into(),
                period: p.to_string(),
            },
            ars_region: "44".into(),
            catalogue: cat.id.clone(),
            catalogue_version: cat.version.clone(),
            domain: i64::from(def.domain),
            period_key: p.key(),
            revision,
            value_type: def.value_type.as_str().into(),
            value_text: text.into(),
            evidence_note: String::new(),
            evidence_ref: String::new(),
            status,
            declared_by: "dsi".into(),
            declared_at: 1,
            submitted_by: String::new(),
            submitted_at: 0,
            reviewed_by: String::new(),
            reviewed_at: 0,
            review_comment: String::new(),
            updated_at: 1,
            change_seq: revision,
        }
    }

    fn card(rows: &[ValueRow], period: &str, computed: Option<HashMap<String, Computed>>) -> proto::Scorecard {
        let cat = conv();
        build(Input {
            catalogue: &cat,
            scope: Scope::Ght,
            ght_id: "G",
            establishment_id: "",
            period: Period::parse("p", period).unwrap(),
            rows,
            computed: computed.map(|c| (c, "now".to_string())),
        })
    }

    fn find<'a>(c: &'a proto::Scorecard, code: &str) -> &'a proto::ScorecardRow {
        c.rows.iter().find(|r| r.indicator.as_ref().unwrap().code == code).unwrap()
    }

    #[test]
    fn rows_trend_target_and_corrections() {
        let rows = vec![
            row("CONV-3.1", "2024", 1, "20", Status::Validated),
            row("CONV-3.1", "2025-S1", 1, "35", Status::Rejected),
            row("CONV-3.1", "2025", 1, "40", Status::Validated),
            row("CONV-3.1", "2025", 2, "45", Status::Draft),
            row("CONV-2.1", "2025", 1, "true", Status::Submitted),
            row("CONV-2.1", "2024", 1, "true", Status::Validated),
            row("CONV-1.2", "2024", 1, "DONE", Status::Validated),
            row("CONV-1.2", "2025", 1, "IN_PROGRESS", Status::Submitted),
        ];
        let c = card(&rows, "2025", None);
        assert_eq!(c.rows.len(), 18);
        assert_eq!(c.periods, vec!["2024", "2025-S1", "2025"]);
        assert!(!c.computed_shown);

        let r = find(&c, "CONV-3.1");
        // The latest revision is the draft correction; the validated one is shown beside it.
        assert_eq!(r.declared.as_ref().unwrap().revision, 2);
        assert_eq!(r.validated.as_ref().unwrap().value_text, "40");
        assert_eq!(r.previous.iter().map(|p| p.period.as_str()).collect::<Vec<_>>(), vec!["2024", "2025-S1"]);
        assert_eq!(r.trend, proto::Trend::Up as i32); // 45 vs 35 (2025-S1)
        assert_eq!(r.target_reached, proto::TargetReached::No as i32);
        assert_eq!(r.attainment, 45.0);
        assert_eq!(r.reference, proto::ReferenceValue::Declared as i32);

        let r = find(&c, "CONV-2.1");
        assert!(r.validated.is_none());
        assert_eq!(r.trend, proto::Trend::Stable as i32);
        assert_eq!(r.target_reached, proto::TargetReached::Yes as i32);

        let r = find(&c, "CONV-1.2");
        assert_eq!(r.trend, proto::Trend::Down as i32);
        // IN_PROGRESS is stage 1 of the 3 steps up to VALIDATED.
        assert!((r.attainment - 100.0 / 3.0).abs() < 1e-9);

        let r = find(&c, "CONV-5.1");
        assert!(r.declared.is_none() && r.previous.is_empty());
        assert_eq!(r.attainment, -1.0);
        assert_eq!(r.target_reached, proto::TargetReached::Unknown as i32);
        assert_eq!(r.trend, proto::Trend::None as i32);

        let d3 = c.domains.iter().find(|d| d.number == 3).unwrap();
        assert_eq!((d3.indicators, d3.valued, d3.targets_reached), (4, 1, 0));
        assert_eq!(d3.attainment, 45.0);
        let d2 = c.domains.iter().find(|d| d.number == 2).unwrap();
        assert_eq!((d2.valued, d2.targets_reached, d2.validated), (1, 1, 0));
        let d5 = c.domains.iter().find(|d| d.number == 5).unwrap();
        assert_eq!(d5.attainment, -1.0);

        // Earlier period: later values are not "previous".
        let c = card(&rows, "2024", None);
        assert!(find(&c, "CONV-3.1").previous.is_empty());
        assert_eq!(find(&c, "CONV-3.1").declared.as_ref().unwrap().value_text, "20");
    }

    #[test]
    fn computed_values_and_disagreement() {
        let rows = vec![
            row("CONV-1.1", "2026", 1, "DONE", Status::Draft),
            row("CONV-4.4", "2026", 1, "50", Status::Draft),
            row("CONV-4.3", "2026", 1, "50", Status::Draft),
        ];
        let computed: HashMap<String, Computed> = [
            ("CONV-1.1", Some(Val::Status("NOT_STARTED".into())), 0, 2),
            ("CONV-4.4", Some(Val::Percent(50.5)), 1, 2),
            ("CONV-4.3", Some(Val::Percent(0.0)), 0, 2),
            ("CONV-4.2", None, 0, 0),
            ("CONV-5.2", Some(Val::Count(7)), 7, 0),
        ]
        .into_iter()
        .map(|(code, value, n, d)| {
            (code.to_string(), Computed { value, numerator: n, denominator: d, detail: "d".into() })
        })
        .collect();
        let c = card(&rows, "2026", Some(computed));
        assert!(c.computed_shown);
        let r = find(&c, "CONV-1.1");
        assert!(r.disagreement);
        assert_eq!(r.computed.as_ref().unwrap().numerator, 0);
        assert_eq!(r.computed.as_ref().unwrap().formula, "share_of_parties_with_current_inventory");
        assert!(!find(&c, "CONV-4.4").disagreement, "within the 1-point tolerance");
        assert!(find(&c, "CONV-4.3").disagreement);
        let r = find(&c, "CONV-4.2");
        assert!(!r.computed.as_ref().unwrap().computable && !r.disagreement);
        assert_eq!(r.reference, proto::ReferenceValue::None as i32);
        let r = find(&c, "CONV-5.2");
        assert_eq!(r.reference, proto::ReferenceValue::Computed as i32);
        assert_eq!(r.attainment, 100.0);
        // Declared-only indicators carry no computed value.
        assert!(find(&c, "CONV-3.1").computed.is_none());
    }

    #[test]
    fn default_period_is_the_latest_with_a_value() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert_eq!(default_period(&[], today).to_string(), "2026");
        let rows =
            vec![row("CONV-3.1", "2024", 1, "20", Status::Draft), row("CONV-3.1", "2025-S1", 1, "2", Status::Draft)];
        assert_eq!(default_period(&rows, today).to_string(), "2025-S1");
    }
}
