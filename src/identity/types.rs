//! Identity types, the input validator and the RNIV status rules (pure functions).

use super::{
    ins::{validate_ins, Ins, OID_NIA},
    matching::MatchKeys,
};
use crate::{proto, validate, AppError, AppResult};

/// RNIV identity status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Provisoire,
    Recuperee,
    Validee,
    Qualifiee,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisoire => "PROVISOIRE",
            Status::Recuperee => "RECUPEREE",
            Status::Validee => "VALIDEE",
            Status::Qualifiee => "QUALIFIEE",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Provisoire, Status::Recuperee, Status::Validee, Status::Qualifiee]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
    pub fn from_proto(s: proto::IdentityStatus) -> Option<Status> {
        Some(match s {
            proto::IdentityStatus::Unspecified => return None,
            proto::IdentityStatus::Provisoire => Status::Provisoire,
            proto::IdentityStatus::Recuperee => Status::Recuperee,
            proto::IdentityStatus::Validee => Status::Validee,
            proto::IdentityStatus::Qualifiee => Status::Qualifiee,
        })
    }
    pub fn to_proto(self) -> proto::IdentityStatus {
        match self {
            Status::Provisoire => proto::IdentityStatus::Provisoire,
            Status::Recuperee => proto::IdentityStatus::Recuperee,
            Status::Validee => proto::IdentityStatus::Validee,
            Status::Qualifiee => proto::IdentityStatus::Qualifiee,
        }
    }
    /// The statuses whose identity holds an INS (carried only when qualified).
    pub fn holds_ins(self) -> bool {
        matches!(self, Status::Recuperee | Status::Qualifiee)
    }
    /// The statuses whose traits were checked on a high-trust document.
    pub fn is_validated(self) -> bool {
        matches!(self, Status::Validee | Status::Qualifiee)
    }
}

pub fn sex_code(s: proto::AdministrativeSex) -> &'static str {
    match s {
        proto::AdministrativeSex::Male => "M",
        proto::AdministrativeSex::Female => "F",
        proto::AdministrativeSex::Unknown | proto::AdministrativeSex::Unspecified => "I",
    }
}

pub fn sex_from_code(s: &str) -> proto::AdministrativeSex {
    match s {
        "M" => proto::AdministrativeSex::Male,
        "F" => proto::AdministrativeSex::Female,
        _ => proto::AdministrativeSex::Unknown,
    }
}

pub fn document_str(d: proto::IdentityDocument) -> &'static str {
    d.as_str_name().trim_start_matches("IDENTITY_DOCUMENT_")
}

pub fn document_from_str(s: &str) -> proto::IdentityDocument {
    proto::IdentityDocument::from_str_name(&format!("IDENTITY_DOCUMENT_{s}")).unwrap_or(proto::IdentityDocument::None)
}

/// High-trust documents validate an identity (RNIV).
pub fn is_high_trust(d: proto::IdentityDocument) -> bool {
    matches!(
        d,
        proto::IdentityDocument::Cni | proto::IdentityDocument::Passeport | proto::IdentityDocument::TitreSejour
    )
}

/// A local identity as validated from a request.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityInput {
    pub establishment_id: String,
    pub ipp: String,
    pub status: Status,
    pub ins: Option<Ins>,
    pub birth_name: String,
    pub first_given_name: String,
    pub birth_given_names: String,
    pub used_name: String,
    pub used_given_name: String,
    pub birth_date: String,
    /// "M", "F" or "I".
    pub sex: String,
    pub birth_place_code: String,
    pub document: proto::IdentityDocument,
}

impl IdentityInput {
    pub fn keys(&self) -> MatchKeys {
        MatchKeys::new(
            &self.birth_name,
            &self.first_given_name,
            &self.birth_given_names,
            &self.birth_date,
            &self.sex,
            &self.birth_place_code,
        )
    }

    /// The strict traits, for change detection.
    pub fn strict_traits(&self) -> [&str; 6] {
        [
            &self.birth_name,
            &self.first_given_name,
            &self.birth_given_names,
            &self.birth_date,
            &self.sex,
            &self.birth_place_code,
        ]
    }
}

/// A name trait: letters (any script's accents), spaces, hyphens, apostrophes, dots.
fn name(field: &str, value: &str, required: bool) -> AppResult<String> {
    let v = if required {
        validate::text(field, value, 100)?
    } else {
        validate::opt_text(field, value, 100)?.unwrap_or_default()
    };
    if !v.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\'' | '.' | '’')) {
        return Err(AppError::invalid(field, "only letters, spaces, hyphens, apostrophes and dots are allowed"));
    }
    if required && !v.chars().any(char::is_alphabetic) {
        return Err(AppError::invalid(field, "must contain letters"));
    }
    Ok(v)
}

/// YYYY-MM-DD, a real calendar date, not in the future, not before 1880.
pub fn birth_date(field: &str, value: &str, today: chrono::NaiveDate) -> AppResult<String> {
    let v = value.trim();
    let d = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .filter(|_| v.len() == 10)
        .ok_or_else(|| AppError::invalid(field, "must be a date YYYY-MM-DD"))?;
    if d > today {
        return Err(AppError::invalid(field, "is in the future"));
    }
    if d < chrono::NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(d) {
        return Err(AppError::invalid(field, "is before 1880"));
    }
    Ok(v.to_string())
}

/// An INSEE place code: a commune (5 characters: digits, 2A/2B for Corsica) or 99xxx abroad.
pub fn insee_place(field: &str, value: &str) -> AppResult<String> {
    let v = value.trim().to_ascii_uppercase();
    let ok = v.len() == 5
        && v.char_indices()
            .all(|(i, c)| c.is_ascii_digit() || (i == 1 && (c == 'A' || c == 'B') && v.starts_with('2')));
    if !ok {
        return Err(AppError::invalid(
            field,
            "must be an INSEE code of 5 characters (commune, 2A/2B for Corsica, or 99xxx abroad)",
        ));
    }
    Ok(v)
}

/// Validates a local identity from a request (pure; a fuzz target). `prefix` is the
/// field path of the message (e.g. "identity"); `today` bounds the birth date.
pub fn validate_identity(
    prefix: &str,
    id: &proto::LocalIdentity,
    today: chrono::NaiveDate,
) -> AppResult<IdentityInput> {
    let f = |name: &str| format!("{prefix}.{name}");
    let establishment_id = validate::finess(&f("establishment_id"), &id.establishment_id)?;
    let ipp = validate::token(&f("ipp"), &id.ipp, 64)?;
    let status: proto::IdentityStatus = validate::enum_value(&f("status"), id.status)?;
    let status = Status::from_proto(status).ok_or_else(|| AppError::invalid(f("status"), "must be specified"))?;
    let birth_name = name(&f("birth_name"), &id.birth_name, true)?;
    let first_given_name = name(&f("first_given_name"), &id.first_given_name, true)?;
    let given = name(&f("birth_given_names"), &id.birth_given_names, false)?;
    let birth_given_names = if given.is_empty() { first_given_name.clone() } else { given };
    // The list of birth given names starts with the first given name.
    let first_norm = super::matching::normalise(&first_given_name);
    let list_norm = super::matching::normalise(&birth_given_names);
    if !(list_norm == first_norm || list_norm.starts_with(&format!("{first_norm} "))) {
        return Err(AppError::invalid(f("birth_given_names"), "must start with the first given name"));
    }
    let used_name = name(&f("used_name"), &id.used_name, false)?;
    let used_given_name = name(&f("used_given_name"), &id.used_given_name, false)?;
    let birth_date = birth_date(&f("birth_date"), &id.birth_date, today)?;
    let sex: proto::AdministrativeSex = validate::enum_value(&f("sex"), id.sex)?;
    let document: proto::IdentityDocument = validate::enum_value(&f("identity_document"), id.identity_document)?;
    let birth_place_code = if id.birth_place_code.trim().is_empty() && status == Status::Provisoire {
        String::new()
    } else {
        insee_place(&f("birth_place_code"), &id.birth_place_code)?
    };
    if sex == proto::AdministrativeSex::Unknown && status != Status::Provisoire {
        return Err(AppError::invalid(f("sex"), "UNKNOWN is accepted only for a PROVISOIRE identity"));
    }
    // The evidence each status requires (see IdentityStatus in identity.proto).
    let ins = match (&id.ins, status.holds_ins()) {
        (Some(i), true) if !(i.matricule.trim().is_empty() && i.oid.trim().is_empty()) => {
            let ins = validate_ins(&i.matricule, &i.oid).map_err(|e| e.in_field(prefix))?;
            // The first digit of a NIR is the sex; a NIA (temporary number) is not checked.
            let sex_digit = ins.matricule.as_bytes()[0];
            let expected = match sex {
                proto::AdministrativeSex::Male => Some(b'1'),
                proto::AdministrativeSex::Female => Some(b'2'),
                _ => None,
            };
            if ins.oid != OID_NIA && matches!(sex_digit, b'1' | b'2') && expected.is_some_and(|e| e != sex_digit) {
                return Err(AppError::invalid(
                    f("ins.matricule"),
                    format!("its sex digit {} does not match the identity's sex", sex_digit as char),
                ));
            }
            Some(ins)
        }
        (_, true) => {
            return Err(AppError::invalid(f("ins"), format!("is required for a {} identity", status.as_str())));
        }
        (Some(i), false) if !(i.matricule.trim().is_empty() && i.oid.trim().is_empty()) => {
            return Err(AppError::invalid(
                f("ins"),
                format!(
                    "must be absent for a {} identity: an INS comes with RECUPEREE (retrieved, withheld) or QUALIFIEE",
                    status.as_str()
                ),
            ));
        }
        _ => None,
    };
    if status.is_validated() && !is_high_trust(document) {
        return Err(AppError::invalid(
            f("identity_document"),
            format!("a {} identity must have been checked on a CNI, PASSEPORT or TITRE_SEJOUR", status.as_str()),
        ));
    }
    Ok(IdentityInput {
        establishment_id,
        ipp,
        status,
        ins,
        birth_name,
        first_given_name,
        birth_given_names,
        used_name,
        used_given_name,
        birth_date,
        sex: sex_code(sex).to_string(),
        birth_place_code,
        document,
    })
}

/// What is stored of an identity before an update, for the status rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Previous {
    pub status: Status,
    pub ins: Option<Ins>,
    pub strict_traits: [String; 6],
    pub merged_into_ipp: Option<String>,
}

/// The status and INS to store, after the transition rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub status: Status,
    pub ins: Option<Ins>,
    pub downgraded: bool,
    pub note: String,
}

/// The RNIV transition rules (pure). See IdentityStatus in identity.proto.
pub fn transition(previous: Option<&Previous>, input: &IdentityInput) -> AppResult<Transition> {
    let requested = Transition { status: input.status, ins: input.ins.clone(), downgraded: false, note: String::new() };
    let Some(prev) = previous else {
        return Ok(requested);
    };
    if let Some(into) = &prev.merged_into_ipp {
        return Err(AppError::precondition(format!(
            "IPP {} was merged (A40) into IPP {into}: update the surviving identity",
            input.ipp
        )));
    }
    match (prev.status, input.status) {
        (Status::Recuperee, Status::Validee) => Err(AppError::precondition(
            "a RECUPEREE identity checked on a high-trust document becomes QUALIFIEE (send it with its INS), not VALIDEE",
        )),
        (Status::Validee, Status::Recuperee) => Err(AppError::precondition(
            "a VALIDEE identity whose INS is retrieved becomes QUALIFIEE, not RECUPEREE",
        )),
        (Status::Qualifiee, Status::Qualifiee) => {
            let strict_changed = prev.strict_traits.iter().map(String::as_str).ne(input.strict_traits());
            if strict_changed {
                Ok(Transition {
                    status: Status::Validee,
                    ins: None,
                    downgraded: true,
                    note: "strict traits of a qualified identity changed: stored as VALIDEE without its INS; \
                           requalify it through INSi with the new traits"
                        .into(),
                })
            } else if prev.ins != input.ins {
                Err(AppError::precondition(
                    "the INS of a qualified identity cannot be replaced: lower its status first, then requalify",
                ))
            } else {
                Ok(requested)
            }
        }
        _ => Ok(requested),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::ins::{with_key, OID_TEST};

    fn today() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    }

    fn marie(status: proto::IdentityStatus, ins: bool, doc: proto::IdentityDocument) -> proto::LocalIdentity {
        proto::LocalIdentity {
            establishment_id: "540000049".into(),
            ipp: "IPP-1".into(),
            status: status as i32,
            ins: ins
                .then(|| proto::InsIdentifier { matricule: with_key("2840354395001").unwrap(), oid: OID_TEST.into() }),
            birth_name: "Dupont".into(),
            first_given_name: "Marie".into(),
            birth_given_names: "Marie Thérèse".into(),
            birth_date: "1984-03-04".into(),
            sex: proto::AdministrativeSex::Female as i32,
            birth_place_code: "54395".into(),
            identity_document: doc as i32,
            ..Default::default()
        }
    }

    use proto::{IdentityDocument as D, IdentityStatus as S};

    #[test]
    fn evidence_required_by_each_status() {
        let ok = |s, ins, d| validate_identity("identity", &marie(s, ins, d), today());
        assert!(ok(S::Provisoire, false, D::None).is_ok());
        assert!(ok(S::Recuperee, true, D::None).is_ok());
        assert!(ok(S::Validee, false, D::Cni).is_ok());
        assert!(ok(S::Qualifiee, true, D::Passeport).is_ok());
        // An INS with a status that cannot carry one.
        let e = ok(S::Provisoire, true, D::None).unwrap_err();
        assert!(e.to_string().contains("identity.ins") && e.to_string().contains("must be absent"), "{e}");
        assert!(ok(S::Validee, true, D::Cni).is_err());
        // No INS where one is required.
        assert!(ok(S::Recuperee, false, D::None).unwrap_err().to_string().contains("is required"));
        assert!(ok(S::Qualifiee, false, D::Cni).is_err());
        // Validation needs a high-trust document.
        let e = ok(S::Qualifiee, true, D::LivretFamille).unwrap_err();
        assert!(e.to_string().contains("identity.identity_document"), "{e}");
        assert!(ok(S::Validee, false, D::None).is_err());
        assert!(ok(S::Provisoire, false, D::Unspecified).is_err(), "UNSPECIFIED is refused");
    }

    #[test]
    fn traits_are_checked() {
        let mut m = marie(S::Qualifiee, true, D::Cni);
        m.ins.as_mut().unwrap().matricule = with_key("1840354395001").unwrap();
        let e = validate_identity("identity", &m, today()).unwrap_err();
        assert!(e.to_string().contains("sex digit 1"), "{e}");
        let mut m = marie(S::Provisoire, false, D::None);
        m.birth_date = "1984-02-30".into();
        assert!(validate_identity("identity", &m, today()).unwrap_err().to_string().contains("birth_date"));
        m.birth_date = "2030-01-01".into();
        assert!(validate_identity("identity", &m, today()).unwrap_err().to_string().contains("future"));
        let mut m = marie(S::Provisoire, false, D::None);
        m.birth_given_names = "Thérèse Marie".into();
        assert!(validate_identity("identity", &m, today()).unwrap_err().to_string().contains("first given name"));
        let mut m = marie(S::Provisoire, false, D::None);
        m.birth_name = "Dupont3".into();
        assert!(validate_identity("identity", &m, today()).is_err());
        m.birth_name = "Lefèvre-d'Ormesson".into();
        assert!(validate_identity("identity", &m, today()).is_ok());
        // The birth place may be unknown only for a provisional identity.
        m.birth_place_code = String::new();
        assert!(validate_identity("identity", &m, today()).is_ok());
        let mut v = marie(S::Validee, false, D::Cni);
        v.birth_place_code = String::new();
        assert!(validate_identity("identity", &v, today()).is_err());
        v.birth_place_code = "2A004".into();
        assert!(validate_identity("identity", &v, today()).is_ok());
        v.birth_place_code = "99134".into();
        assert!(validate_identity("identity", &v, today()).is_ok());
    }

    fn previous(i: &IdentityInput) -> Previous {
        Previous {
            status: i.status,
            ins: i.ins.clone(),
            strict_traits: i.strict_traits().map(String::from),
            merged_into_ipp: None,
        }
    }

    #[test]
    fn transitions_allowed_and_refused() {
        let v = |s, ins, d| validate_identity("identity", &marie(s, ins, d), today()).unwrap();
        let prov = v(S::Provisoire, false, D::None);
        let recup = v(S::Recuperee, true, D::None);
        let vali = v(S::Validee, false, D::Cni);
        let qual = v(S::Qualifiee, true, D::Cni);
        // Allowed.
        for (from, to) in
            [(&prov, &recup), (&prov, &vali), (&recup, &qual), (&vali, &qual), (&qual, &prov), (&qual, &vali)]
        {
            let t = transition(Some(&previous(from)), to).unwrap();
            assert_eq!(t.status, to.status);
            assert!(!t.downgraded);
        }
        // Refused: each of these identities has both checks and must become QUALIFIEE.
        assert!(transition(Some(&previous(&recup)), &vali).unwrap_err().to_string().contains("QUALIFIEE"));
        assert!(transition(Some(&previous(&vali)), &recup).is_err());
        // A qualified identity's strict traits edited: downgraded to VALIDEE, INS dropped.
        let mut edited = qual.clone();
        edited.birth_name = "Dupond".into();
        let t = transition(Some(&previous(&qual)), &edited).unwrap();
        assert_eq!((t.status, t.ins.is_none(), t.downgraded), (Status::Validee, true, true));
        // Its INS cannot be replaced while qualified.
        let mut other_ins = qual.clone();
        other_ins.ins = Some(Ins { matricule: with_key("2840354395002").unwrap(), oid: OID_TEST.into() });
        assert!(transition(Some(&previous(&qual)), &other_ins).is_err());
        // A merged IPP is not updated.
        let mut p = previous(&prov);
        p.merged_into_ipp = Some("IPP-0".into());
        assert!(transition(Some(&p), &prov).unwrap_err().to_string().contains("merged"));
    }
}
