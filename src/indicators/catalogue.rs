//! Indicator catalogues as data: the YAML format of `referentials/*.yaml`, checked on
//! load so a malformed entry is refused with its code, and the versions embedded in the
//! hub (loaded into an empty database at first use).

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{
    formulas::Formula,
    values::{check_range, Val},
};
use crate::{proto, validate, AppError, AppResult};

/// The GHT convergence indicators (scope GHT).
pub const GHT_CONVERGENCE: &str = "ght-convergence";
/// The hôpital numérique prerequisites (scope ESTABLISHMENT).
pub const HN_PREREQUISITES: &str = "hn-prerequisites";

/// The default versions, written into an empty database at first use.
pub const EMBEDDED: [&str; 2] = [
    include_str!("../../referentials/ght-convergence-indicators.yaml"),
    include_str!("../../referentials/hn-prerequisites.yaml"),
];

/// Largest catalogue file accepted.
pub const MAX_YAML_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    Boolean,
    Percent,
    Count,
    Date,
    Status,
}

impl ValueType {
    pub const ALL: [ValueType; 5] =
        [ValueType::Boolean, ValueType::Percent, ValueType::Count, ValueType::Date, ValueType::Status];

    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Boolean => "BOOLEAN",
            ValueType::Percent => "PERCENT",
            ValueType::Count => "COUNT",
            ValueType::Date => "DATE",
            ValueType::Status => "STATUS",
        }
    }

    pub fn parse(s: &str) -> Option<ValueType> {
        ValueType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn to_proto(self) -> proto::ValueType {
        match self {
            ValueType::Boolean => proto::ValueType::Boolean,
            ValueType::Percent => proto::ValueType::Percent,
            ValueType::Count => proto::ValueType::Count,
            ValueType::Date => proto::ValueType::Date,
            ValueType::Status => proto::ValueType::Status,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Ght,
    Establishment,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ght => "GHT",
            Scope::Establishment => "ESTABLISHMENT",
        }
    }
}

/// One indicator of a catalogue version.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub code: String,
    pub domain: u32,
    pub label_fr: String,
    pub label_en: String,
    pub definition: String,
    pub value_type: ValueType,
    /// STATUS only: the stages, first to last.
    pub allowed_values: Vec<String>,
    pub unit: String,
    /// Some for COMPUTED indicators.
    pub formula: Option<Formula>,
    pub formula_definition: String,
    pub target: Option<Val>,
    pub thresholds: Vec<(String, Val)>,
    pub provisional: bool,
    pub scope: Scope,
    pub notes: String,
}

impl Definition {
    pub fn to_proto(&self) -> proto::IndicatorDefinition {
        proto::IndicatorDefinition {
            code: self.code.clone(),
            domain: self.domain,
            label_fr: self.label_fr.clone(),
            label_en: self.label_en.clone(),
            definition: self.definition.clone(),
            value_type: self.value_type.to_proto() as i32,
            allowed_values: self.allowed_values.clone(),
            unit: self.unit.clone(),
            obtained: if self.formula.is_some() { proto::Obtained::Computed } else { proto::Obtained::Declared } as i32,
            formula: self.formula.map(|f| f.name().to_string()).unwrap_or_default(),
            formula_definition: self.formula_definition.clone(),
            target: self.target.as_ref().map(Val::to_proto),
            thresholds: self
                .thresholds
                .iter()
                .map(|(label, v)| proto::Threshold { label: label.clone(), value: Some(v.to_proto()) })
                .collect(),
            provisional: self.provisional,
            scope: match self.scope {
                Scope::Ght => proto::IndicatorScope::Ght,
                Scope::Establishment => proto::IndicatorScope::Establishment,
            } as i32,
            notes: self.notes.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainDef {
    pub number: u32,
    pub label_fr: String,
    pub label_en: String,
}

/// One catalogue version, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    pub id: String,
    pub version: String,
    pub title_fr: String,
    pub title_en: String,
    pub source: String,
    pub domains: Vec<DomainDef>,
    pub indicators: Vec<Definition>,
}

impl Catalogue {
    pub fn get(&self, code: &str) -> Option<&Definition> {
        self.indicators.iter().find(|d| d.code == code)
    }

    pub fn domain(&self, number: u32) -> Option<&DomainDef> {
        self.domains.iter().find(|d| d.number == number)
    }

    pub fn to_proto(&self) -> proto::Catalogue {
        proto::Catalogue {
            id: self.id.clone(),
            version: self.version.clone(),
            title_fr: self.title_fr.clone(),
            title_en: self.title_en.clone(),
            source: self.source.clone(),
            domains: self
                .domains
                .iter()
                .map(|d| proto::CatalogueDomain {
                    number: d.number,
                    label_fr: d.label_fr.clone(),
                    label_en: d.label_en.clone(),
                })
                .collect(),
            indicators: self.indicators.iter().map(Definition::to_proto).collect(),
            ..Default::default()
        }
    }
}

/// SHA-256 (hex) of a catalogue file, to tell a reload of the same version apart from
/// a different file reusing a version name.
pub fn sha256_hex(yaml: &str) -> String {
    hex::encode(Sha256::digest(yaml.as_bytes()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    id: String,
    version: String,
    title_fr: String,
    title_en: String,
    source: String,
    domains: Vec<RawDomain>,
    indicators: Vec<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    number: i64,
    label_fr: String,
    label_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    code: String,
    domain: i64,
    label_fr: String,
    label_en: String,
    definition: String,
    #[serde(rename = "type")]
    value_type: String,
    #[serde(default)]
    allowed_values: Vec<String>,
    #[serde(default)]
    unit: String,
    obtained: String,
    #[serde(default)]
    formula: Option<String>,
    #[serde(default)]
    formula_definition: String,
    #[serde(default)]
    target: Option<serde_yaml::Value>,
    #[serde(default)]
    thresholds: Vec<RawThreshold>,
    provisional: bool,
    scope: String,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    label: String,
    value: serde_yaml::Value,
}

/// A YAML scalar as a value of the definition's type (targets, thresholds).
fn yaml_value(def: &Definition, y: &serde_yaml::Value) -> Result<Val, String> {
    use serde_yaml::Value as Y;
    let t = def.value_type;
    let v = match (t, y) {
        (ValueType::Boolean, Y::Bool(b)) => Val::Boolean(*b),
        (ValueType::Percent, Y::Number(n)) if n.as_f64().is_some() => Val::Percent(n.as_f64().unwrap_or_default()),
        (ValueType::Count, Y::Number(n)) if n.as_i64().is_some() => Val::Count(n.as_i64().unwrap_or_default()),
        (ValueType::Date | ValueType::Status, Y::String(s)) => Val::parse_text(t, s)?,
        _ => return Err(format!("is not a {} value", t.as_str())),
    };
    check_range(def, v)
}

/// Parses and checks a catalogue file. Errors are INVALID_ARGUMENT naming the entry
/// (`indicators[CONV-1.4].type`) or, before its code is known, its position.
pub fn parse(yaml: &str) -> AppResult<Catalogue> {
    if yaml.len() > MAX_YAML_BYTES {
        return Err(AppError::invalid("yaml", format!("larger than {MAX_YAML_BYTES} bytes")));
    }
    let raw: RawCatalogue =
        serde_yaml::from_str(yaml).map_err(|e| AppError::invalid("catalogue", format!("not a catalogue file: {e}")))?;
    let id = validate::token("id", &raw.id, 64)?;
    // The workflow knows two catalogues: GHT indicators and establishment prerequisites.
    let scope = match id.as_str() {
        GHT_CONVERGENCE => Scope::Ght,
        HN_PREREQUISITES => Scope::Establishment,
        other => {
            return Err(AppError::invalid(
                "id",
                format!(
                    "unknown catalogue '{other}' ({GHT_CONVERGENCE} or {HN_PREREQUISITES}): a new version keeps the id"
                ),
            ))
        }
    };
    let version = validate::token("version", &raw.version, 64)?;
    let title_fr = validate::text("title_fr", &raw.title_fr, 300)?;
    let title_en = validate::text("title_en", &raw.title_en, 300)?;
    let source = validate::text("source", &raw.source, 4000)?;

    let mut domains: Vec<DomainDef> = Vec::new();
    for (i, d) in raw.domains.iter().enumerate() {
        let field = format!("domains[{i}]");
        if !(1..=5).contains(&d.number) {
            return Err(AppError::invalid(format!("{field}.number"), format!("{} is not a domain 1 to 5", d.number)));
        }
        let number = d.number as u32;
        if domains.iter().any(|x| x.number == number) {
            return Err(AppError::invalid(format!("{field}.number"), format!("domain {number} is listed twice")));
        }
        domains.push(DomainDef {
            number,
            label_fr: validate::text(&format!("{field}.label_fr"), &d.label_fr, 300)?,
            label_en: validate::text(&format!("{field}.label_en"), &d.label_en, 300)?,
        });
    }
    if domains.is_empty() {
        return Err(AppError::invalid("domains", "must list at least one domain"));
    }
    domains.sort_by_key(|d| d.number);

    if raw.indicators.is_empty() {
        return Err(AppError::invalid("indicators", "must list at least one indicator"));
    }
    let mut indicators: Vec<Definition> = Vec::with_capacity(raw.indicators.len());
    let mut first_at: HashMap<String, usize> = HashMap::new();
    for (i, entry) in raw.indicators.iter().enumerate() {
        // Name the entry by its code as soon as there is one, so errors point at it.
        let name = match entry.get("code").and_then(|c| c.as_str()) {
            Some(c) if !c.trim().is_empty() => format!("indicators[{}]", c.trim()),
            _ => format!("indicators[{i}]"),
        };
        let r: RawIndicator =
            serde_yaml::from_value(entry.clone()).map_err(|e| AppError::invalid(&name, e.to_string()))?;
        let def = check_indicator(&name, r, &domains)?;
        if def.scope != scope {
            return Err(AppError::invalid(
                format!("{name}.scope"),
                format!("catalogue {id} holds {} indicators, not {}", scope.as_str(), def.scope.as_str()),
            ));
        }
        if let Some(first) = first_at.insert(def.code.clone(), i) {
            return Err(AppError::invalid(
                format!("{name}.code"),
                format!("duplicate code {} (entries {first} and {i})", def.code),
            ));
        }
        indicators.push(def);
    }
    Ok(Catalogue { id, version, title_fr, title_en, source, domains, indicators })
}

fn check_indicator(name: &str, r: RawIndicator, domains: &[DomainDef]) -> AppResult<Definition> {
    let f = |field: &str| format!("{name}.{field}");
    let code = validate::token(&f("code"), &r.code, 32)?;
    if !domains.iter().any(|d| i64::from(d.number) == r.domain) {
        let listed: Vec<String> = domains.iter().map(|d| d.number.to_string()).collect();
        return Err(AppError::invalid(
            f("domain"),
            format!("{} is not a domain of this catalogue ({})", r.domain, listed.join(", ")),
        ));
    }
    let value_type = ValueType::parse(r.value_type.trim()).ok_or_else(|| {
        AppError::invalid(
            f("type"),
            format!("unknown value type '{}' (BOOLEAN, PERCENT, COUNT, DATE or STATUS)", r.value_type.trim()),
        )
    })?;
    let mut allowed_values = Vec::with_capacity(r.allowed_values.len());
    for (j, a) in r.allowed_values.iter().enumerate() {
        let a = validate::token(&f(&format!("allowed_values[{j}]")), a, 64)?;
        if allowed_values.contains(&a) {
            return Err(AppError::invalid(f("allowed_values"), format!("'{a}' is listed twice")));
        }
        allowed_values.push(a);
    }
    match (value_type, allowed_values.len()) {
        (ValueType::Status, n) if n < 2 => {
            return Err(AppError::invalid(f("allowed_values"), "a STATUS indicator needs at least two stages"))
        }
        (t, n) if t != ValueType::Status && n > 0 => {
            return Err(AppError::invalid(f("allowed_values"), "only STATUS indicators have allowed values"))
        }
        _ => {}
    }
    let scope = match r.scope.trim() {
        "GHT" => Scope::Ght,
        "ESTABLISHMENT" => Scope::Establishment,
        other => return Err(AppError::invalid(f("scope"), format!("unknown scope '{other}' (GHT or ESTABLISHMENT)"))),
    };
    let formula = match (r.obtained.trim(), r.formula.as_deref().map(str::trim)) {
        ("DECLARED", None) => None,
        ("DECLARED", Some(_)) => {
            return Err(AppError::invalid(f("formula"), "a DECLARED indicator has no formula"));
        }
        ("COMPUTED", None) => return Err(AppError::invalid(f("formula"), "a COMPUTED indicator names its formula")),
        ("COMPUTED", Some(name)) => {
            let formula = Formula::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Formula::ALL.iter().map(|x| x.name()).collect();
                AppError::invalid(
                    f("formula"),
                    format!("unknown formula '{name}' (the hub computes: {})", known.join(", ")),
                )
            })?;
            if formula.value_type() != value_type {
                return Err(AppError::invalid(
                    f("formula"),
                    format!(
                        "{name} computes a {} value, the indicator is {}",
                        formula.value_type().as_str(),
                        value_type.as_str()
                    ),
                ));
            }
            if formula.scope() != scope {
                return Err(AppError::invalid(
                    f("formula"),
                    format!(
                        "{name} computes per {}, the indicator's scope is {}",
                        formula.scope().as_str(),
                        scope.as_str()
                    ),
                ));
            }
            for stage in formula.stages() {
                if !allowed_values.iter().any(|a| a == stage) {
                    return Err(AppError::invalid(
                        f("allowed_values"),
                        format!("{name} yields the stage {stage}, which is not allowed"),
                    ));
                }
            }
            Some(formula)
        }
        (other, _) => {
            return Err(AppError::invalid(f("obtained"), format!("unknown way '{other}' (DECLARED or COMPUTED)")));
        }
    };
    let mut def = Definition {
        code,
        domain: r.domain as u32,
        label_fr: validate::text(&f("label_fr"), &r.label_fr, 300)?,
        label_en: validate::text(&f("label_en"), &r.label_en, 300)?,
        definition: validate::text(&f("definition"), &r.definition, 4000)?,
        value_type,
        allowed_values,
        unit: validate::opt_text(&f("unit"), &r.unit, 40)?.unwrap_or_default(),
        formula,
        formula_definition: validate::opt_text(&f("formula_definition"), &r.formula_definition, 4000)?
            .unwrap_or_default(),
        target: None,
        thresholds: Vec::new(),
        provisional: r.provisional,
        scope,
        notes: validate::opt_text(&f("notes"), &r.notes, 4000)?.unwrap_or_default(),
    };
    if let Some(t) = &r.target {
        def.target = Some(yaml_value(&def, t).map_err(|e| AppError::invalid(f("target"), e))?);
    }
    for (j, t) in r.thresholds.iter().enumerate() {
        let field = f(&format!("thresholds[{j}]"));
        let label = validate::text(&format!("{field}.label"), &t.label, 200)?;
        let v = yaml_value(&def, &t.value).map_err(|e| AppError::invalid(format!("{field}.value"), e))?;
        def.thresholds.push((label, v));
    }
    Ok(def)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal definition for value tests.
    pub(crate) fn def(code: &str, t: ValueType, allowed: &[&str]) -> Definition {
        Definition {
            code: code.into(),
            domain: 1,
            label_fr: "l".into(),
            label_en: "l".into(),
            definition: "d".into(),
            value_type: t,
            allowed_values: allowed.iter().map(|s| s.to_string()).collect(),
            unit: String::new(),
            formula: None,
            formula_definition: String::new(),
            target: None,
            thresholds: vec![],
            provisional: true,
            scope: Scope::Ght,
            notes: String::new(),
        }
    }

    #[test]
    fn embedded_catalogues_load() {
        let conv = parse(EMBEDDED[0]).unwrap();
        assert_eq!(conv.id, GHT_CONVERGENCE);
        assert_eq!(conv.indicators.len(), 18);
        assert!(conv.indicators.iter().all(|d| d.provisional && d.scope == Scope::Ght));
        let per_domain: Vec<usize> =
            (1..=5).map(|n| conv.indicators.iter().filter(|d| d.domain == n).count()).collect();
        assert_eq!(per_domain, vec![4, 4, 4, 4, 2]);
        let computed: Vec<&str> =
            conv.indicators.iter().filter(|d| d.formula.is_some()).map(|d| d.code.as_str()).collect();
        assert_eq!(
            computed,
            vec!["CONV-1.1", "CONV-2.4", "CONV-3.2", "CONV-4.1", "CONV-4.2", "CONV-4.3", "CONV-4.4", "CONV-5.2"]
        );
        // Every formula the hub implements is used by the catalogue.
        for f in Formula::ALL {
            assert!(conv.indicators.iter().any(|d| d.formula == Some(f)), "{} unused", f.name());
        }
        assert_eq!(conv.get("CONV-1.2").unwrap().target, Some(Val::Status("VALIDATED".into())));
        assert_eq!(conv.get("CONV-3.1").unwrap().target, Some(Val::Percent(100.0)));

        let hn = parse(EMBEDDED[1]).unwrap();
        assert_eq!(hn.id, HN_PREREQUISITES);
        assert_eq!(hn.indicators.len(), 10);
        assert!(hn.indicators.iter().all(|d| d.provisional && d.scope == Scope::Establishment));
        assert_eq!(hn.get("P1.2").unwrap().target, Some(Val::Percent(90.0)));
    }

    fn with_entry(extra: &str) -> String {
        format!("{}\n{extra}", EMBEDDED[0])
    }

    fn err(yaml: &str) -> String {
        let e = parse(yaml).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        e.to_string()
    }

    const ENTRY: &str = "  - code: CONV-9.9\n    domain: 5\n    label_fr: x\n    label_en: x\n    definition: x\n    \
                         type: BOOLEAN\n    obtained: DECLARED\n    provisional: true\n    scope: GHT\n";

    #[test]
    fn a_well_formed_extra_entry_loads() {
        assert_eq!(parse(&with_entry(ENTRY)).unwrap().indicators.len(), 19);
    }

    #[test]
    fn malformed_entries_are_refused_with_their_code() {
        let dup = with_entry(&ENTRY.replace("CONV-9.9", "CONV-1.1"));
        let e = err(&dup);
        assert!(
            e.contains("indicators[CONV-1.1].code") && e.contains("duplicate code CONV-1.1 (entries 0 and 18)"),
            "{e}"
        );

        let e = err(&with_entry(&ENTRY.replace("type: BOOLEAN", "type: PERCENTAGE")));
        assert!(e.contains("indicators[CONV-9.9].type") && e.contains("unknown value type 'PERCENTAGE'"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("domain: 5", "domain: 6")));
        assert!(e.contains("indicators[CONV-9.9].domain") && e.contains("6 is not a domain"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("    label_en: x\n", "")));
        assert!(e.contains("indicators[CONV-9.9]") && e.contains("missing field `label_en`"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("    provisional: true\n", "")));
        assert!(e.contains("indicators[CONV-9.9]") && e.contains("provisional"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("scope: GHT", "scope: GHT\n    colour: red")));
        assert!(e.contains("indicators[CONV-9.9]") && e.contains("unknown field `colour`"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("obtained: DECLARED", "obtained: COMPUTED\n    formula: guesswork")));
        assert!(e.contains("indicators[CONV-9.9].formula") && e.contains("unknown formula 'guesswork'"), "{e}");

        let e = err(&with_entry(
            &ENTRY.replace("obtained: DECLARED", "obtained: COMPUTED\n    formula: share_of_parties_on_target_dpi"),
        ));
        assert!(e.contains("computes a PERCENT value, the indicator is BOOLEAN"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("obtained: DECLARED", "obtained: GUESSED")));
        assert!(e.contains("indicators[CONV-9.9].obtained"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("type: BOOLEAN", "type: STATUS")));
        assert!(e.contains("indicators[CONV-9.9].allowed_values"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("type: BOOLEAN", "type: PERCENT\n    target: 120")));
        assert!(e.contains("indicators[CONV-9.9].target") && e.contains("between 0 and 100"), "{e}");

        let e = err(&with_entry(
            &ENTRY.replace("type: BOOLEAN", "type: STATUS\n    allowed_values: [A, B]\n    target: C"),
        ));
        assert!(e.contains("indicators[CONV-9.9].target") && e.contains("'C' is not one of A, B"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("scope: GHT", "scope: REGION")));
        assert!(e.contains("indicators[CONV-9.9].scope"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("scope: GHT", "scope: ESTABLISHMENT")));
        assert!(e.contains("indicators[CONV-9.9].scope") && e.contains("holds GHT indicators"), "{e}");

        let e = err(&EMBEDDED[0].replace("id: ght-convergence", "id: ght-convergence-official"));
        assert!(e.contains("invalid id") && e.contains("unknown catalogue"), "{e}");

        let e = err(&with_entry(&ENTRY.replace("code: CONV-9.9", "code: ''")));
        assert!(e.contains("indicators[18].code"), "{e}");

        let e = err(&EMBEDDED[0].replace("version: \"2026.1-provisional\"", "version: \"bad version\""));
        assert!(e.contains("invalid version"), "{e}");

        let e = err(&EMBEDDED[0].replace("  - number: 5\n", "  - number: 0\n"));
        assert!(e.contains("domains[4].number"), "{e}");

        assert!(err("just text").contains("not a catalogue file"));
        assert!(err(&"x".repeat(MAX_YAML_BYTES + 1)).contains("larger than"));
    }
}
