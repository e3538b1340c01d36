//! The INS (identifiant national de santé): matricule checksum and assigning authorities.
//!
//! A matricule is 13 characters (the NIR, or a temporary NIA) followed by a 2-digit
//! key = 97 − (number mod 97). Corsican department codes 2A and 2B (characters 6–7)
//! count as 19 and 18 for the computation (FR Core profile, DOMAIN.md §9).

use crate::{AppError, AppResult};

/// OID of the INS-NIR assigning authority.
pub const OID_NIR: &str = "1.2.250.1.213.1.4.8";
/// OID of the INS-NIA (temporary number) assigning authority.
pub const OID_NIA: &str = "1.2.250.1.213.1.4.9";
/// OID of test INS.
pub const OID_TEST: &str = "1.2.250.1.213.1.4.10";
/// OID of demonstration INS.
pub const OID_DEMO: &str = "1.2.250.1.213.1.4.11";

pub const KNOWN_OIDS: [&str; 4] = [OID_NIR, OID_NIA, OID_TEST, OID_DEMO];

/// A checked INS: 15 characters, upper case, key verified, known OID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ins {
    pub matricule: String,
    pub oid: String,
}

/// The key of the first 13 characters of a matricule, or None if they are not
/// 13 digits (with 2A/2B allowed as characters 6–7).
pub fn ins_key(first13: &str) -> Option<u8> {
    if first13.len() != 13 || !first13.is_ascii() {
        return None;
    }
    let digits = match &first13[5..7] {
        "2A" | "2a" => format!("{}19{}", &first13[..5], &first13[7..]),
        "2B" | "2b" => format!("{}18{}", &first13[..5], &first13[7..]),
        _ => first13.to_string(),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some((97 - n % 97) as u8)
}

/// A full 15-character matricule from its first 13 characters (for tests and demo data).
pub fn with_key(first13: &str) -> Option<String> {
    ins_key(first13).map(|k| format!("{}{k:02}", first13.to_ascii_uppercase()))
}

/// Validates an INS (pure; a fuzz target). Spaces in the matricule are ignored, as
/// it is often written "1 84 12 76 451 089 46". Errors name `ins.matricule` or `ins.oid`.
pub fn validate_ins(matricule: &str, oid: &str) -> AppResult<Ins> {
    let m: String = matricule.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let n = m.chars().count();
    if n != 15 {
        return Err(AppError::invalid("ins.matricule", format!("must be 15 characters (13 + a 2-digit key), got {n}")));
    }
    let shape_ok = m
        .char_indices()
        .all(|(i, c)| c.is_ascii_digit() || (i == 6 && (c == 'A' || c == 'B') && m.as_bytes()[5] == b'2'));
    if !shape_ok {
        return Err(AppError::invalid("ins.matricule", "must be digits (2A/2B allowed as characters 6-7 for Corsica)"));
    }
    let expected = ins_key(&m[..13]).ok_or_else(|| AppError::invalid("ins.matricule", "not a valid matricule"))?;
    let given: u8 = m[13..].parse().map_err(|_| AppError::invalid("ins.matricule", "the key must be 2 digits"))?;
    if given != expected {
        return Err(AppError::invalid("ins.matricule", format!("bad key {given:02} (expected {expected:02})")));
    }
    let oid = oid.trim();
    if !KNOWN_OIDS.contains(&oid) {
        return Err(AppError::invalid(
            "ins.oid",
            format!("unknown assigning authority '{oid}' (expected one of {})", KNOWN_OIDS.join(", ")),
        ));
    }
    Ok(Ins { matricule: m, oid: oid.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_of_a_known_nir() {
        // 2 55 08 14 168 025 → key 38 (a widely published example NIR).
        assert_eq!(ins_key("2550814168025"), Some(38));
        assert!(validate_ins("255081416802538", OID_NIR).is_ok());
        assert!(validate_ins("2 55 08 14 168 025 38", OID_NIR).is_ok(), "spaces ignored");
    }

    #[test]
    fn bad_key_and_wrong_length_are_refused() {
        let e = validate_ins("255081416802539", OID_NIR).unwrap_err();
        assert!(e.to_string().contains("bad key 39 (expected 38)"), "{e}");
        let e = validate_ins("25508141680253", OID_NIR).unwrap_err();
        assert!(e.to_string().contains("15 characters") && e.to_string().contains("got 14"), "{e}");
        assert!(validate_ins("2550814168025381", OID_NIR).is_err());
        assert!(validate_ins("", OID_NIR).is_err());
        assert!(validate_ins("25508141680X538", OID_NIR).is_err());
        let e = validate_ins("255081416802538", "1.2.3").unwrap_err();
        assert!(e.to_string().contains("ins.oid"), "{e}");
    }

    #[test]
    fn corsica_counts_2a_as_19_and_2b_as_18() {
        // Born in Ajaccio (2A004): the key is computed on 1 80 01 19 004 123.
        let n: u64 = 1800119004123;
        let k = (97 - n % 97) as u8;
        assert_eq!(ins_key("180012A004123"), Some(k));
        let m = format!("180012A004123{k:02}");
        assert!(validate_ins(&m, OID_NIR).is_ok());
        let n: u64 = 1800118004123;
        let k2 = (97 - n % 97) as u8;
        assert_eq!(ins_key("180012B004123"), Some(k2));
        assert_ne!(k, k2, "2A and 2B give different keys");
        // 2A elsewhere than characters 6-7 is not a matricule.
        assert!(validate_ins(&format!("12A0119004123{k:02}"), OID_NIR).is_err());
        // Lower case is accepted and normalised.
        assert_eq!(validate_ins(&m.to_lowercase(), OID_NIR).unwrap().matricule, m);
    }

    #[test]
    fn with_key_round_trips() {
        for s in ["1840176451089", "2991299999999", "1000101001001"] {
            let m = with_key(s).unwrap();
            assert!(validate_ins(&m, OID_TEST).is_ok(), "{m}");
        }
    }
}
