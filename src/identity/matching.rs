//! Matching of strict traits: normalised and phonetic names, birth-date tolerance,
//! and the weighted score of a candidate match. Pure functions, tested on a fixed
//! dataset with hand-computed expectations.

use unicode_normalization::UnicodeNormalization;

/// Upper-case ASCII letters and single spaces: accents and case removed, hyphens,
/// apostrophes and dots turned into spaces ("Lefèvre-d'Ormesson" → "LEFEVRE D ORMESSON").
pub fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfd() {
        let mapped: &str = match c {
            'a'..='z' | 'A'..='Z' => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c.to_ascii_uppercase());
                continue;
            }
            'œ' | 'Œ' => "OE",
            'æ' | 'Æ' => "AE",
            'ß' => "SS",
            'ø' | 'Ø' => "O",
            'ł' | 'Ł' => "L",
            'đ' | 'Đ' => "D",
            _ if unicode_normalization::char::is_combining_mark(c) => continue,
            _ => {
                space = true;
                continue;
            }
        };
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push_str(mapped);
    }
    out
}

/// A phonetic key for French names: spelling variants that sound alike share it
/// (DUPONT/DUPOND, LEFEBVRE/LEFEVRE, PHILIPPE/FILIPE, THOMAS/TOMAS, GAUTHIER/GAUTIER).
pub fn phonetic(s: &str) -> String {
    let mut w: String = normalise(s).chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if w.is_empty() {
        return w;
    }
    // Ordered rewrites: longest patterns first.
    const RULES: &[(&str, &str)] = &[
        ("SCH", "S"),
        ("CHR", "KR"),
        ("CH", "S"),
        ("SH", "S"),
        ("PH", "F"),
        ("TH", "T"),
        ("GH", "G"),
        ("QU", "K"),
        ("Q", "K"),
        ("CK", "K"),
        ("BV", "V"),
        ("GN", "N"),
        ("EAU", "O"),
        ("AU", "O"),
        ("OU", "U"),
        ("AI", "E"),
        ("EI", "E"),
        ("AY", "E"),
        ("EY", "E"),
        ("Y", "I"),
        ("W", "V"),
        ("Z", "S"),
        ("H", ""),
    ];
    for (from, to) in RULES {
        if w.contains(from) {
            w = w.replace(from, to);
        }
    }
    // Soft C and G before E/I; hard C otherwise; GU before E/I is a hard G.
    let chars: Vec<char> = w.chars().collect();
    let mut v = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match (chars[i], next) {
            ('C', Some('E' | 'I')) => v.push('S'),
            ('C', _) => v.push('K'),
            ('G', Some('U')) if matches!(chars.get(i + 2), Some('E' | 'I')) => {
                v.push('G');
                i += 1;
            }
            ('G', Some('E' | 'I')) => v.push('J'),
            (c, _) => v.push(c),
        }
        i += 1;
    }
    // Nasal vowels: EN sounds like AN, UN like IN (AIN and EIN became EN above).
    let v = v.replace("EN", "AN").replace("UN", "IN");
    // Double letters sound single.
    let mut key = String::with_capacity(v.len());
    for c in v.chars() {
        if key.chars().last() != Some(c) {
            key.push(c);
        }
    }
    // Silent endings: -ER/-EZ/-ET sound like -E; final E, S, T, D, X are silent.
    for suffix in ["ER", "EZ", "ET"] {
        if key.len() > 3 && key.ends_with(suffix) {
            key.truncate(key.len() - 2);
            key.push('E');
        }
    }
    while key.len() > 2 && key.ends_with(['E', 'S', 'T', 'D', 'X']) {
        key.pop();
    }
    key
}

/// How two birth dates (YYYY-MM-DD) compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateMatch {
    Exact,
    /// Same year, day and month swapped (03/04 vs 04/03).
    DayMonthSwapped,
    /// Exactly one digit differs.
    OneDigit,
    Different,
}

pub fn compare_dates(a: &str, b: &str) -> DateMatch {
    if a == b {
        return DateMatch::Exact;
    }
    let (Some(pa), Some(pb)) = (split_date(a), split_date(b)) else {
        return DateMatch::Different;
    };
    if pa.0 == pb.0 && pa.1 == pb.2 && pa.2 == pb.1 {
        return DateMatch::DayMonthSwapped;
    }
    let da: Vec<u8> = a.bytes().filter(u8::is_ascii_digit).collect();
    let db: Vec<u8> = b.bytes().filter(u8::is_ascii_digit).collect();
    if da.len() == db.len() && da.iter().zip(&db).filter(|(x, y)| x != y).count() == 1 {
        return DateMatch::OneDigit;
    }
    DateMatch::Different
}

fn split_date(s: &str) -> Option<(&str, &str, &str)> {
    let mut it = s.split('-');
    let parts = (it.next()?, it.next()?, it.next()?);
    it.next().is_none().then_some(parts)
}

/// The matching keys of one identity's strict traits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchKeys {
    pub birth_name_norm: String,
    pub birth_name_phon: String,
    pub first_name_norm: String,
    pub first_name_phon: String,
    /// Normalised birth given names, space-separated.
    pub given_names_norm: String,
    /// YYYY-MM-DD.
    pub birth_date: String,
    /// "M", "F" or "I".
    pub sex: String,
    /// INSEE code, empty when unknown.
    pub birth_place_code: String,
}

impl MatchKeys {
    pub fn new(
        birth_name: &str,
        first_name: &str,
        given_names: &str,
        birth_date: &str,
        sex: &str,
        place: &str,
    ) -> Self {
        MatchKeys {
            birth_name_norm: normalise(birth_name),
            birth_name_phon: phonetic(birth_name),
            first_name_norm: normalise(first_name),
            first_name_phon: phonetic(first_name),
            given_names_norm: normalise(given_names),
            birth_date: birth_date.to_string(),
            sex: sex.to_string(),
            birth_place_code: place.to_string(),
        }
    }
}

/// Weights of the strict traits in a match score (sum 1).
pub const W_BIRTH_NAME: f64 = 0.30;
pub const W_FIRST_NAME: f64 = 0.20;
pub const W_BIRTH_DATE: f64 = 0.25;
pub const W_SEX: f64 = 0.10;
pub const W_BIRTH_PLACE: f64 = 0.15;

/// A pair scoring at least this is recorded as a candidate match for a human.
pub const CANDIDATE_THRESHOLD: f64 = 0.85;

/// A score and the per-trait findings behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub score: f64,
    pub reasons: Vec<String>,
}

/// Name similarity in discrete levels, so scores can be computed by hand:
/// 1.0 same normalised name, 0.9 same phonetic key, 0.6 Jaro-Winkler ≥ 0.88, else 0.
fn name_level(a_norm: &str, a_phon: &str, b_norm: &str, b_phon: &str) -> (f64, &'static str) {
    if a_norm == b_norm {
        (1.0, "same")
    } else if !a_phon.is_empty() && a_phon == b_phon {
        (0.9, "phonetic match")
    } else if strsim::jaro_winkler(a_norm, b_norm) >= 0.88 {
        (0.6, "similar spelling")
    } else {
        (0.0, "different")
    }
}

/// Which fields of `query` take part in the score (a search may give only some).
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub first_name: bool,
    pub birth_date: bool,
    pub sex: bool,
    pub birth_place: bool,
}

impl Fields {
    pub const ALL: Fields = Fields { first_name: true, birth_date: true, sex: true, birth_place: true };
}

/// The weighted similarity of `b` to `a` on the fields given, normalised to 0–1.
pub fn score(a: &MatchKeys, b: &MatchKeys, fields: Fields) -> Score {
    let mut total = 0.0;
    let mut weight = 0.0;
    let mut reasons = vec![];
    let (s, why) = name_level(&a.birth_name_norm, &a.birth_name_phon, &b.birth_name_norm, &b.birth_name_phon);
    total += W_BIRTH_NAME * s;
    weight += W_BIRTH_NAME;
    reasons.push(format!("birth_name: {why}"));
    if fields.first_name {
        let (mut s, mut why) =
            name_level(&a.first_name_norm, &a.first_name_phon, &b.first_name_norm, &b.first_name_phon);
        let in_list = |name: &str, list: &str| !name.is_empty() && list.split(' ').any(|g| g == name);
        if s < 0.8
            && (in_list(&a.first_name_norm, &b.given_names_norm) || in_list(&b.first_name_norm, &a.given_names_norm))
        {
            (s, why) = (0.8, "among the other's given names");
        }
        total += W_FIRST_NAME * s;
        weight += W_FIRST_NAME;
        reasons.push(format!("first_given_name: {why}"));
    }
    if fields.birth_date {
        let (s, why) = match compare_dates(&a.birth_date, &b.birth_date) {
            DateMatch::Exact => (1.0, "same"),
            DateMatch::DayMonthSwapped => (0.8, "day/month swapped"),
            DateMatch::OneDigit => (0.7, "one digit differs"),
            DateMatch::Different => (0.0, "different"),
        };
        total += W_BIRTH_DATE * s;
        weight += W_BIRTH_DATE;
        reasons.push(format!("birth_date: {why}"));
    }
    if fields.sex {
        let (s, why) = if a.sex == b.sex {
            (1.0, "same")
        } else if a.sex == "I" || b.sex == "I" {
            (0.5, "unknown on one side")
        } else {
            (0.0, "different")
        };
        total += W_SEX * s;
        weight += W_SEX;
        reasons.push(format!("sex: {why}"));
    }
    if fields.birth_place {
        let (s, why) = if a.birth_place_code.is_empty() || b.birth_place_code.is_empty() {
            (0.5, "unknown on one side")
        } else if a.birth_place_code == b.birth_place_code {
            (1.0, "same")
        } else {
            (0.0, "different")
        };
        total += W_BIRTH_PLACE * s;
        weight += W_BIRTH_PLACE;
        reasons.push(format!("birth_place_code: {why}"));
    }
    let score = if weight > 0.0 { total / weight } else { 0.0 };
    Score { score: (score * 1000.0).round() / 1000.0, reasons }
}

/// The strict traits on which two identities differ (for vigilance alerts). Names
/// compare normalised: an accent or a hyphen is not a collision.
pub fn differing_traits(a: &MatchKeys, b: &MatchKeys) -> Vec<&'static str> {
    let mut d = vec![];
    if a.birth_name_norm != b.birth_name_norm {
        d.push("birth_name");
    }
    if a.first_name_norm != b.first_name_norm {
        d.push("first_given_name");
    }
    if a.birth_date != b.birth_date {
        d.push("birth_date");
    }
    if a.sex != b.sex {
        d.push("sex");
    }
    if a.birth_place_code != b.birth_place_code {
        d.push("birth_place_code");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_removes_accents_case_and_punctuation() {
        assert_eq!(normalise("Lefèvre-d'Ormesson"), "LEFEVRE D ORMESSON");
        assert_eq!(normalise("  éloïse  "), "ELOISE");
        assert_eq!(normalise("Œdipe"), "OEDIPE");
        assert_eq!(normalise("jean--pierre"), "JEAN PIERRE");
        assert_eq!(normalise("François"), normalise("FRANCOIS"));
    }

    #[test]
    fn phonetic_keys_of_spelling_variants() {
        for (a, b) in [
            ("Dupont", "Dupond"),
            ("Lefebvre", "Lefèvre"),
            ("Philippe", "Filipe"),
            ("Thomas", "Tomas"),
            ("Gauthier", "Gautier"),
            ("Mathieu", "Matthieu"),
            ("Guillaume", "Guilaume"),
            ("Rousseau", "Rousso"),
            ("Laurent", "Lorant"),
            ("Jean-Marie", "JEAN MARIE"),
        ] {
            assert_eq!(phonetic(a), phonetic(b), "{a} / {b}");
        }
        for (a, b) in [("Martin", "Bernard"), ("Marie", "Mario"), ("Durand", "Dubois"), ("Léa", "Léo")] {
            assert_ne!(phonetic(a), phonetic(b), "{a} / {b}");
        }
        assert_eq!(phonetic(""), "");
    }

    #[test]
    fn birth_date_tolerance() {
        assert_eq!(compare_dates("1984-03-04", "1984-03-04"), DateMatch::Exact);
        assert_eq!(compare_dates("1984-03-04", "1984-04-03"), DateMatch::DayMonthSwapped);
        assert_eq!(compare_dates("1984-03-04", "1984-03-14"), DateMatch::OneDigit);
        assert_eq!(compare_dates("1984-03-04", "1948-03-04"), DateMatch::Different);
        assert_eq!(compare_dates("1984-03-04", "garbage"), DateMatch::Different);
    }

    fn keys(name: &str, first: &str, date: &str, sex: &str, place: &str) -> MatchKeys {
        MatchKeys::new(name, first, first, date, sex, place)
    }

    /// The fixed dataset: a reference identity and variants, with scores computed by
    /// hand from the weights (0.30 name, 0.20 first name, 0.25 date, 0.10 sex, 0.15 place).
    #[test]
    fn candidate_scores_on_a_fixed_dataset() {
        let r = keys("DUPONT", "Marie", "1984-03-04", "F", "54395");
        let cases: [(MatchKeys, f64, bool); 9] = [
            // Identical: 1.0.
            (keys("Dupont", "Marie", "1984-03-04", "F", "54395"), 1.0, true),
            // Accents/case only: still the same normalised name.
            (keys("dupont", "MARIE", "1984-03-04", "F", "54395"), 1.0, true),
            // Phonetic birth name: 0.30×0.9 + 0.70 = 0.97.
            (keys("Dupond", "Marie", "1984-03-04", "F", "54395"), 0.97, true),
            // Day/month swapped: 0.75 + 0.25×0.8 = 0.95.
            (keys("Dupont", "Marie", "1984-04-03", "F", "54395"), 0.95, true),
            // One digit of the date and a phonetic name: 0.27 + 0.20 + 0.175 + 0.10 + 0.15 = 0.895.
            (keys("Dupond", "Marie", "1984-03-14", "F", "54395"), 0.895, true),
            // Another birth place: 0.85, just a candidate.
            (keys("Dupont", "Marie", "1984-03-04", "F", "57463"), 0.85, true),
            // Twin sister: another first name: 0.80, not a candidate.
            (keys("Dupont", "Claire", "1984-03-04", "F", "54395"), 0.80, false),
            // Unknown birth place on one side: 0.925.
            (keys("Dupont", "Marie", "1984-03-04", "F", ""), 0.925, true),
            // Married name given as birth name: 0.70.
            (keys("Bernard", "Marie", "1984-03-04", "F", "54395"), 0.70, false),
        ];
        for (i, (b, expected, candidate)) in cases.iter().enumerate() {
            let s = score(&r, b, Fields::ALL);
            assert!((s.score - expected).abs() < 1e-9, "case {i}: {} vs {expected} ({:?})", s.score, s.reasons);
            assert_eq!(s.score >= CANDIDATE_THRESHOLD, *candidate, "case {i}");
            assert_eq!(score(b, &r, Fields::ALL).score, s.score, "symmetric, case {i}");
        }
        let s = score(&r, &cases[3].0, Fields::ALL);
        assert!(s.reasons.contains(&"birth_date: day/month swapped".to_string()), "{:?}", s.reasons);
    }

    #[test]
    fn a_first_name_among_the_given_names_counts() {
        let a = MatchKeys::new("Martin", "Jean", "Jean Pierre", "1950-01-01", "M", "75056");
        let b = MatchKeys::new("Martin", "Pierre", "Pierre", "1950-01-01", "M", "75056");
        // 0.30 + 0.20×0.8 + 0.25 + 0.10 + 0.15 = 0.96.
        assert_eq!(score(&a, &b, Fields::ALL).score, 0.96);
    }

    #[test]
    fn partial_query_scores_only_given_fields() {
        let a = keys("Dupont", "Marie", "1984-03-04", "F", "54395");
        let q = keys("Dupond", "", "", "", "");
        let s = score(&q, &a, Fields { first_name: false, birth_date: false, sex: false, birth_place: false });
        assert_eq!(s.score, 0.9);
    }

    #[test]
    fn differing_traits_ignore_accents() {
        let a = keys("Lefèvre", "Éloïse", "1990-01-02", "F", "54395");
        let b = keys("LEFEVRE", "Eloise", "1990-02-01", "F", "54395");
        assert_eq!(differing_traits(&a, &b), vec!["birth_date"]);
    }
}
