//! Movement types and the input validator (pure functions).

use sha2::{Digest, Sha256};

use crate::{proto, time::parse_rfc3339, validate, AppError, AppResult};

/// HL7 v2 ADT trigger events of IHE PAM France.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    A01,
    A02,
    A03,
    A04,
    A05,
    A06,
    A07,
    A11,
    A12,
    A13,
    A21,
    A22,
    A38,
    A52,
    A53,
    Z80,
    Z81,
    Z99,
}

impl Trigger {
    pub const ALL: [Trigger; 18] = [
        Trigger::A01,
        Trigger::A02,
        Trigger::A03,
        Trigger::A04,
        Trigger::A05,
        Trigger::A06,
        Trigger::A07,
        Trigger::A11,
        Trigger::A12,
        Trigger::A13,
        Trigger::A21,
        Trigger::A22,
        Trigger::A38,
        Trigger::A52,
        Trigger::A53,
        Trigger::Z80,
        Trigger::Z81,
        Trigger::Z99,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Trigger::A01 => "A01",
            Trigger::A02 => "A02",
            Trigger::A03 => "A03",
            Trigger::A04 => "A04",
            Trigger::A05 => "A05",
            Trigger::A06 => "A06",
            Trigger::A07 => "A07",
            Trigger::A11 => "A11",
            Trigger::A12 => "A12",
            Trigger::A13 => "A13",
            Trigger::A21 => "A21",
            Trigger::A22 => "A22",
            Trigger::A38 => "A38",
            Trigger::A52 => "A52",
            Trigger::A53 => "A53",
            Trigger::Z80 => "Z80",
            Trigger::Z81 => "Z81",
            Trigger::Z99 => "Z99",
        }
    }

    pub fn parse(code: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The proto value; its number is the trigger's number (A01 = 1, Z80 = 80).
    pub fn to_proto(self) -> proto::MovementTrigger {
        let n: i32 = self.code()[1..].parse().unwrap_or(0);
        proto::MovementTrigger::try_from(n).unwrap_or(proto::MovementTrigger::Unspecified)
    }

    /// The triggers a cancellation cancels (None: not a cancellation).
    pub fn cancels(self) -> Option<&'static [Trigger]> {
        match self {
            Trigger::A11 => Some(&[Trigger::A01, Trigger::A04]),
            Trigger::A12 => Some(&[Trigger::A02]),
            Trigger::A13 => Some(&[Trigger::A03]),
            Trigger::A38 => Some(&[Trigger::A05]),
            Trigger::A52 => Some(&[Trigger::A21]),
            Trigger::A53 => Some(&[Trigger::A22]),
            Trigger::Z81 => Some(&[Trigger::Z80]),
            _ => None,
        }
    }

    /// Movements that act on another movement rather than on the encounter.
    pub fn refers_to_another(self) -> bool {
        self.cancels().is_some() || self == Trigger::Z99
    }

    pub fn is_admission(self) -> bool {
        matches!(self, Trigger::A01 | Trigger::A04)
    }

    fn needs_medical_unit(self) -> bool {
        matches!(self, Trigger::A01 | Trigger::A02 | Trigger::A04 | Trigger::A05 | Trigger::Z80)
    }
}

/// Kind of encounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    HospitalisationComplete,
    Ambulatoire,
    Urgences,
    ConsultationExterne,
    Had,
}

impl Class {
    pub fn from_proto(c: proto::EncounterClass) -> Option<Class> {
        Some(match c {
            proto::EncounterClass::Unspecified => return None,
            proto::EncounterClass::HospitalisationComplete => Class::HospitalisationComplete,
            proto::EncounterClass::Ambulatoire => Class::Ambulatoire,
            proto::EncounterClass::Urgences => Class::Urgences,
            proto::EncounterClass::ConsultationExterne => Class::ConsultationExterne,
            proto::EncounterClass::Had => Class::Had,
        })
    }
    pub fn to_proto(self) -> proto::EncounterClass {
        match self {
            Class::HospitalisationComplete => proto::EncounterClass::HospitalisationComplete,
            Class::Ambulatoire => proto::EncounterClass::Ambulatoire,
            Class::Urgences => proto::EncounterClass::Urgences,
            Class::ConsultationExterne => proto::EncounterClass::ConsultationExterne,
            Class::Had => proto::EncounterClass::Had,
        }
    }
    pub fn code(self) -> &'static str {
        self.to_proto().as_str_name().trim_start_matches("ENCOUNTER_CLASS_")
    }
    pub fn parse(s: &str) -> Option<Class> {
        proto::EncounterClass::from_str_name(&format!("ENCOUNTER_CLASS_{s}")).and_then(Class::from_proto)
    }
    pub fn is_inpatient(self) -> bool {
        matches!(self, Class::HospitalisationComplete | Class::Ambulatoire | Class::Had)
    }
}

/// A movement as validated from a request.
#[derive(Debug, Clone, PartialEq)]
pub struct MovementInput {
    pub event_id: String,
    pub establishment_id: String,
    pub ipp: String,
    pub encounter_id: String,
    pub trigger: Trigger,
    /// Unix microseconds.
    pub event_time: i64,
    pub medical_unit: String,
    pub care_unit: String,
    pub class: Option<Class>,
    pub target_event_id: Option<String>,
    pub origin_establishment_id: String,
    pub destination_establishment_id: String,
    /// Hash of the content, to tell a replay from a reused event id.
    pub content_hash: String,
}

/// Event times may run ahead of the hub's clock by this much (clock skew).
pub const MAX_CLOCK_AHEAD_MICROS: i64 = 5 * 60 * 1_000_000;

fn unit(field: &str, value: &str, required: bool) -> AppResult<String> {
    if value.trim().is_empty() {
        if required {
            return Err(AppError::invalid(field, "is required for this trigger"));
        }
        return Ok(String::new());
    }
    validate::token(field, value, 32)
}

/// Validates a published movement (pure; a fuzz target). `now` bounds the event time.
pub fn validate_movement(m: &proto::Movement, now: i64) -> AppResult<MovementInput> {
    let event_id = validate::token("event_id", &m.event_id, 64)?;
    let establishment_id = validate::finess("establishment_id", &m.establishment_id)?;
    let ipp = validate::token("ipp", &m.ipp, 64)?;
    let encounter_id = validate::token("encounter_id", &m.encounter_id, 64)?;
    if m.trigger == proto::MovementTrigger::A08UpdatePatient as i32 {
        return Err(AppError::invalid(
            "trigger",
            "A08 is forbidden by IHE PAM France: update the identity with UpsertIdentity (A31), a movement with Z99",
        ));
    }
    let t: proto::MovementTrigger = validate::enum_value("trigger", m.trigger)?;
    let trigger = Trigger::parse(t.as_str_name().trim_start_matches("MOVEMENT_TRIGGER_").get(..3).unwrap_or(""))
        .ok_or_else(|| AppError::invalid("trigger", "unknown trigger"))?;
    let event_time = parse_rfc3339("event_time", &m.event_time)?;
    if event_time > now + MAX_CLOCK_AHEAD_MICROS {
        return Err(AppError::invalid("event_time", "is in the future"));
    }
    if event_time < -2_208_988_800_000_000 {
        return Err(AppError::invalid("event_time", "is before 1900"));
    }
    let medical_unit = unit("medical_unit", &m.medical_unit, trigger.needs_medical_unit())?;
    let care_unit = unit("care_unit", &m.care_unit, false)?;
    let class = match proto::EncounterClass::try_from(m.encounter_class) {
        Ok(c) => Class::from_proto(c),
        Err(_) => {
            return Err(AppError::invalid("encounter_class", format!("unknown enum value {}", m.encounter_class)))
        }
    };
    let class_rule: Option<(fn(Class) -> bool, &str)> = match trigger {
        Trigger::A01 | Trigger::A06 => {
            Some((Class::is_inpatient, "an inpatient class (HOSPITALISATION_COMPLETE, AMBULATOIRE, HAD)"))
        }
        Trigger::A04 | Trigger::A07 => {
            Some((|c| !c.is_inpatient(), "an outpatient class (URGENCES, CONSULTATION_EXTERNE)"))
        }
        Trigger::A05 => Some((|_| true, "a class")),
        _ => None,
    };
    match (class_rule, class) {
        (Some((ok, what)), Some(c)) if !ok(c) => {
            return Err(AppError::invalid("encounter_class", format!("{} needs {what}", trigger.code())));
        }
        (Some((_, what)), None) => {
            return Err(AppError::invalid("encounter_class", format!("{} needs {what}", trigger.code())));
        }
        (None, Some(_)) => {
            return Err(AppError::invalid("encounter_class", "only A01, A04, A05, A06 and A07 carry a class"));
        }
        _ => {}
    }
    let target_event_id = match (trigger.refers_to_another(), m.target_event_id.trim()) {
        (true, "") => {
            return Err(AppError::invalid(
                "target_event_id",
                format!("{} names the movement it acts on", trigger.code()),
            ))
        }
        (true, t) => Some(validate::token("target_event_id", t, 64)?),
        (false, "") => None,
        (false, _) => {
            return Err(AppError::invalid("target_event_id", "only cancellations and Z99 name another movement"))
        }
    };
    if trigger == Trigger::Z99 && medical_unit.is_empty() && care_unit.is_empty() {
        return Err(AppError::invalid("medical_unit", "Z99 carries the new medical_unit or care_unit"));
    }
    let origin_establishment_id = match m.origin_establishment_id.trim() {
        "" => String::new(),
        o if matches!(trigger, Trigger::A01 | Trigger::A04 | Trigger::A05) => {
            validate::finess("origin_establishment_id", o)?
        }
        _ => {
            return Err(AppError::invalid("origin_establishment_id", "only admissions (A01, A04, A05) have an origin"))
        }
    };
    let destination_establishment_id = match m.destination_establishment_id.trim() {
        "" => String::new(),
        d if trigger == Trigger::A03 => validate::finess("destination_establishment_id", d)?,
        _ => return Err(AppError::invalid("destination_establishment_id", "only a discharge (A03) has a destination")),
    };
    let mut input = MovementInput {
        event_id,
        establishment_id,
        ipp,
        encounter_id,
        trigger,
        event_time,
        medical_unit,
        care_unit,
        class,
        target_event_id,
        origin_establishment_id,
        destination_establishment_id,
        content_hash: String::new(),
    };
    input.content_hash = content_hash(&input);
    Ok(input)
}

fn content_hash(m: &MovementInput) -> String {
    let mut h = Sha256::new();
    for part in [
        m.event_id.as_str(),
        &m.establishment_id,
        &m.ipp,
        &m.encounter_id,
        m.trigger.code(),
        &m.event_time.to_string(),
        &m.medical_unit,
        &m.care_unit,
        m.class.map(Class::code).unwrap_or(""),
        m.target_event_id.as_deref().unwrap_or(""),
        &m.origin_establishment_id,
        &m.destination_establishment_id,
    ] {
        h.update(part.as_bytes());
        h.update([0x1f]);
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{EncounterClass as C, MovementTrigger as T};

    fn mv(trigger: T) -> proto::Movement {
        proto::Movement {
            event_id: "EV1".into(),
            establishment_id: "540000049".into(),
            ipp: "IPP1".into(),
            encounter_id: "V1".into(),
            trigger: trigger as i32,
            event_time: "2026-03-01T08:00:00+01:00".into(),
            medical_unit: "UF1001".into(),
            ..Default::default()
        }
    }

    fn now() -> i64 {
        parse_rfc3339("t", "2026-06-01T00:00:00Z").unwrap()
    }

    #[test]
    fn trigger_numbers_match_their_codes() {
        for t in Trigger::ALL {
            assert_eq!(t.to_proto().as_str_name()[17..20].to_string(), t.code(), "{t:?}");
            assert_eq!(Trigger::parse(t.code()), Some(t));
        }
    }

    #[test]
    fn admissions_need_a_coherent_class() {
        let mut m = mv(T::A01Admit);
        assert!(validate_movement(&m, now()).unwrap_err().to_string().contains("encounter_class"));
        m.encounter_class = C::Urgences as i32;
        assert!(validate_movement(&m, now()).is_err(), "A01 is inpatient");
        m.encounter_class = C::HospitalisationComplete as i32;
        let ok = validate_movement(&m, now()).unwrap();
        assert_eq!((ok.trigger, ok.class), (Trigger::A01, Some(Class::HospitalisationComplete)));
        let mut u = mv(T::A04RegisterOutpatient);
        u.encounter_class = C::Urgences as i32;
        assert!(validate_movement(&u, now()).is_ok());
        let mut t = mv(T::A02Transfer);
        t.encounter_class = C::Urgences as i32;
        assert!(validate_movement(&t, now()).is_err(), "a transfer carries no class");
    }

    #[test]
    fn a08_is_refused_with_a_clear_reason() {
        let e = validate_movement(&mv(T::A08UpdatePatient), now()).unwrap_err();
        assert!(e.to_string().contains("A08 is forbidden by IHE PAM France"), "{e}");
    }

    #[test]
    fn cancellations_name_their_target() {
        let mut c = mv(T::A12CancelTransfer);
        assert!(validate_movement(&c, now()).unwrap_err().to_string().contains("target_event_id"));
        c.target_event_id = "EV0".into();
        assert_eq!(validate_movement(&c, now()).unwrap().target_event_id.as_deref(), Some("EV0"));
        let mut a = mv(T::A02Transfer);
        a.target_event_id = "EV0".into();
        assert!(validate_movement(&a, now()).is_err());
        assert_eq!(Trigger::A11.cancels(), Some(&[Trigger::A01, Trigger::A04][..]));
    }

    #[test]
    fn times_units_and_establishments_are_checked() {
        let mut m = mv(T::A02Transfer);
        m.event_time = "yesterday".into();
        assert!(validate_movement(&m, now()).unwrap_err().to_string().contains("event_time"));
        m.event_time = "2027-01-01T00:00:00Z".into();
        assert!(validate_movement(&m, now()).unwrap_err().to_string().contains("future"));
        let mut m = mv(T::A02Transfer);
        m.medical_unit = String::new();
        assert!(validate_movement(&m, now()).unwrap_err().to_string().contains("medical_unit"));
        let mut d = mv(T::A03Discharge);
        d.destination_establishment_id = "540000056".into();
        assert!(validate_movement(&d, now()).is_ok());
        let mut t = mv(T::A02Transfer);
        t.destination_establishment_id = "540000056".into();
        assert!(validate_movement(&t, now()).is_err());
        // The same content hashes the same; any change changes the hash.
        let a = validate_movement(&d, now()).unwrap();
        let mut d2 = d.clone();
        d2.care_unit = "LIT12".into();
        assert_eq!(a.content_hash, validate_movement(&d, now()).unwrap().content_hash);
        assert_ne!(a.content_hash, validate_movement(&d2, now()).unwrap().content_hash);
    }
}
