//! Demo identities and movements for `ghthub demo seed` (see `crate::demo`).
//!
//! `--patients` people of the Sud Lorraine territory (French names, birth places of the
//! region or abroad, INS matricules built like a NIR with a valid key under the
//! demonstration OID). Each has a local identity (IPP) at a home establishment chosen by
//! size; about a quarter also visit one or two other establishments, where their
//! identity is usually qualified too, so the hub links them automatically on the INS
//! (otherwise it proposes a candidate match). On top of that, the errors an
//! identity-vigilance cell really meets: provisional duplicates of existing patients
//! typed with a spelling variant or a day/month swap (candidate matches to merge), and a
//! child registered with her mother's INS (a vigilance alert).
//!
//! Then a year of movements (July 2025 – June 2026) per establishment, as its care side
//! publishes them over one `PublishMovements` stream: emergencies (some admitted),
//! consultations, day cases, full hospitalisations with transfers between units and
//! leaves (psychiatry), HAD and long stays, transfers between establishments (discharge
//! to, admission from), and a few cancellations (a transfer, a discharge, a whole
//! admission). Encounters still running at the end of June stay open.
//!
//! Everything is drawn from `territory.rng("identity")` before the first call, and every
//! write is idempotent (request ids derived from the IPP, fixed event ids), so a second
//! run changes nothing: identities replay their first answer, movements come back
//! DUPLICATE.

use std::collections::{BTreeMap, HashSet};

use anyhow::{bail, Context};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use futures::StreamExt;
use rand::{rngs::StdRng, seq::SliceRandom, Rng};

use super::{
    ins::{with_key, OID_DEMO},
    matching::{normalise, phonetic},
};
use crate::{
    access::Role,
    cli::client::HubClient,
    demo::{DemoEstablishment, DemoTerritory},
    proto::{self, EncounterClass as C, EstablishmentCategory as Cat, IdentityDocument as D, IdentityStatus as S},
};

#[rustfmt::skip]
const SURNAMES: &[&str] = &[
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent", "Simon",
    "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont",
    "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Faure", "André", "Mercier", "Blanc", "Guérin", "Boyer",
    "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin", "Clément", "Morin",
    "Nicolas", "Henry", "Roussel", "Mathieu", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Lemaire", "Noël",
    "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly", "Rivière", "Lucas", "Brunet", "Gaillard",
    "Barbier", "Arnaud", "Martinez", "Gérard", "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal",
    "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix", "Olivier", "Philippe",
    "Bourgeois", "Pierre", "Benoît", "Leclerc", "Rolland", "Guillaume", "Lecomte", "Lopez", "Dupuy", "Guillot",
    "Hubert", "Berger", "Carpentier", "Sanchez", "Dupuis", "Moulin", "Deschamps", "Huet", "Vasseur", "Boucher",
    "Fleury", "Royer", "Klein", "Jacquet", "Adam", "Poirier", "Aubry", "Guyot", "Carré", "Charpentier", "Ménard",
    "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider", "Fernandez", "Le Gall", "Collet", "Léger",
    "Bouvier", "Julien", "Prévost", "Millet", "Perrot", "Cousin", "Germain", "Breton", "Besson", "Langlois", "Rémy",
    "Pelletier", "Lévêque", "Perrier", "Leblanc", "Lebrun", "Marchal", "Weber", "Mallet", "Jacob", "Monnier",
    "Michaud", "Gillet", "Étienne", "Chauvin", "Da Silva", "Humbert", "Antoine", "Barthélemy", "Cordier", "Lejeune",
    "Gilbert", "Thiébaut", "Didier", "Mangin", "Jacquot", "Vautrin", "Grandjean", "Parisot", "Thiriet", "Hennequin",
    "Georges", "Kieffer", "Wagner", "Hoffmann", "Schaeffer", "Toussaint", "Chrétien", "Mougenot", "Pierson",
    "Demange", "Cuny", "Poirot", "Voirin", "Ferry", "Jeandel", "Bouchy", "Aubertin", "Gérardin", "Vuillaume",
    "Hanriot", "Benali", "Haddad", "Nguyen", "Yilmaz", "Pereira", "Ferreira", "Kowalski", "N'Diaye", "Traoré",
];
#[rustfmt::skip]
const FEMALE: &[&str] = &[
    "Marie", "Jeanne", "Françoise", "Monique", "Catherine", "Nathalie", "Isabelle", "Sylvie", "Christine", "Martine",
    "Sophie", "Valérie", "Sandrine", "Céline", "Julie", "Aurélie", "Camille", "Léa", "Manon", "Chloé", "Emma", "Inès",
    "Jade", "Louise", "Alice", "Lina", "Claudine", "Odette", "Simone", "Colette", "Élise", "Anne", "Hélène",
    "Brigitte", "Véronique", "Stéphanie", "Laura", "Sarah", "Pauline", "Mathilde", "Yvette", "Denise", "Josiane",
    "Agnès", "Émilie", "Charlotte", "Zoé", "Lucie", "Fatima", "Thérèse",
];
#[rustfmt::skip]
const MALE: &[&str] = &[
    "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Bernard", "Jacques", "Daniel", "Patrick", "Christophe",
    "Nicolas", "Stéphane", "Laurent", "Julien", "Sébastien", "Thomas", "Alexandre", "Maxime", "Kévin", "Lucas",
    "Hugo", "Louis", "Gabriel", "Léo", "Raphaël", "Arthur", "Jules", "Adam", "Nathan", "Marcel", "René", "Roger",
    "Guy", "Gérard", "François", "Claude", "Olivier", "Éric", "Antoine", "Gilles", "Didier", "Thierry", "Frédéric",
    "Mathieu", "Romain", "Mohamed", "Yannick", "Joseph", "Paul",
];
/// Birth places (INSEE codes) with a weight: the territory's towns first, then
/// elsewhere in France and abroad (99xxx: Algeria, Morocco, Portugal, Italy, Turkey, Poland).
const PLACES: &[(&str, u32)] = &[
    ("54395", 30), // Nancy
    ("54329", 10), // Lunéville
    ("54528", 8),  // Toul
    ("54431", 6),  // Pont-à-Mousson
    ("54099", 5),  // Briey
    ("54547", 5),  // Vandœuvre-lès-Nancy
    ("88160", 10), // Épinal
    ("88383", 5),  // Remiremont
    ("88413", 6),  // Saint-Dié-des-Vosges
    ("88321", 3),  // Neufchâteau
    ("57463", 6),  // Metz
    ("55545", 2),  // Verdun
    ("67482", 3),  // Strasbourg
    ("75112", 3),  // Paris 12e
    ("69383", 1),  // Lyon 3e
    ("2A004", 1),  // Ajaccio
    ("99352", 3),  // Algeria
    ("99350", 3),  // Morocco
    ("99139", 2),  // Portugal
    ("99127", 2),  // Italy
    ("99208", 1),  // Turkey
    ("99122", 1),  // Poland
];

/// Units of an establishment: (medical unit, care-unit prefix).
struct Units {
    emergency: &'static str,
    consult: &'static [&'static str],
    day_case: &'static [&'static str],
    wards: &'static [&'static str],
}

fn units(cat: Cat) -> Units {
    match cat {
        Cat::Chu => Units {
            emergency: "UF1001",
            consult: &["UF1501", "UF1502", "UF1503", "UF1504"],
            day_case: &["UF1201", "UF1202", "UF1203"],
            wards: &["UF1101", "UF1102", "UF1103", "UF1104", "UF1105", "UF1106", "UF1107", "UF1108", "UF1109"],
        },
        Cat::ChPsy => Units {
            emergency: "UF3001",
            consult: &["UF3501", "UF3502", "UF3503"],
            day_case: &["UF3201"],
            wards: &["UF3101", "UF3102", "UF3103", "UF3104"],
        },
        Cat::Had => Units { emergency: "UF4001", consult: &["UF4501"], day_case: &[], wards: &["UF4101", "UF4102"] },
        Cat::EpMedicoSocial => {
            Units { emergency: "UF5001", consult: &["UF5501"], day_case: &[], wards: &["UF5101", "UF5102"] }
        }
        _ => Units {
            emergency: "UF2001",
            consult: &["UF2501", "UF2502"],
            day_case: &["UF2201"],
            wards: &["UF2110", "UF2120", "UF2130", "UF2140", "UF2310"],
        },
    }
}

/// One person of the territory.
#[derive(Clone)]
struct Person {
    male: bool,
    birth_name: String,
    first: String,
    given: String,
    used_name: String,
    birth_date: NaiveDate,
    place: &'static str,
    /// Full INS matricule (15 characters).
    ins: String,
}

/// One local identity to publish, and the phase it is published in (1: home
/// establishments, 2: other establishments, 3: duplicates and errors).
struct PlannedIdentity {
    phase: u8,
    identity: proto::LocalIdentity,
}

/// What the seed will send.
struct Plan {
    identities: Vec<PlannedIdentity>,
    /// Per establishment: (event time, order) and the movement.
    movements: BTreeMap<String, Vec<(i64, usize, proto::Movement)>>,
}

/// The window of the year of movements (UTC seconds).
fn window() -> (i64, i64) {
    let s = Utc.with_ymd_and_hms(2025, 6, 30, 22, 0, 0).single().map(|t| t.timestamp()).unwrap_or(0);
    let e = Utc.with_ymd_and_hms(2026, 6, 30, 21, 59, 0).single().map(|t| t.timestamp()).unwrap_or(0);
    (s, e)
}

/// RFC 3339 in Paris time (CET/CEST: summer time from the last Sunday of March to the
/// last Sunday of October, at 01:00 UTC).
fn paris(secs: i64) -> String {
    let Some(t) = chrono::DateTime::<Utc>::from_timestamp(secs, 0) else { return String::new() };
    let last_sunday = |m: u32| {
        let last = NaiveDate::from_ymd_opt(t.year(), m, 31).unwrap_or_default();
        let d = last - chrono::Duration::days(i64::from(last.weekday().num_days_from_sunday()));
        d.and_hms_opt(1, 0, 0).unwrap_or_default().and_utc()
    };
    let summer = t >= last_sunday(3) && t < last_sunday(10);
    let Some(offset) = chrono::FixedOffset::east_opt(if summer { 7200 } else { 3600 }) else { return String::new() };
    t.with_timezone(&offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn pick<'a, T>(rng: &mut StdRng, v: &'a [T]) -> &'a T {
    &v[rng.gen_range(0..v.len())]
}

fn weighted<'a, T>(rng: &mut StdRng, v: &'a [(T, u32)]) -> &'a T {
    let total: u32 = v.iter().map(|x| x.1).sum();
    let mut n = rng.gen_range(0..total.max(1));
    for (x, w) in v {
        if n < *w {
            return x;
        }
        n -= w;
    }
    &v[0].0
}

fn person(rng: &mut StdRng, used: &mut HashSet<String>) -> Person {
    let male = rng.gen_bool(0.48);
    let names = if male { MALE } else { FEMALE };
    let first = pick(rng, names).to_string();
    let mut given = first.clone();
    for _ in 0..rng.gen_range(0..=2) {
        let g = pick(rng, names);
        if !given.split(' ').any(|x| x == *g) {
            given = format!("{given} {g}");
        }
    }
    // Ages skewed to the old, as hospital activity is.
    let age = if rng.gen_bool(0.12) { rng.gen_range(0..18) } else { rng.gen_range(18..97) };
    let birth_date = NaiveDate::from_ymd_opt(2025 - age, rng.gen_range(1..=12), rng.gen_range(1..=28))
        .unwrap_or(NaiveDate::from_ymd_opt(1960, 1, 1).unwrap_or_default());
    let place = *weighted(rng, PLACES);
    let birth_name = pick(rng, SURNAMES).to_string();
    let used_name =
        if !male && age > 25 && rng.gen_bool(0.45) { pick(rng, SURNAMES).to_string() } else { String::new() };
    // A NIR: sex, year, month, place of birth (department + commune, or 99 + country), order, key.
    let ins = loop {
        let first13 = format!(
            "{}{:02}{:02}{}{:03}",
            if male { 1 } else { 2 },
            birth_date.year() % 100,
            birth_date.month(),
            place,
            rng.gen_range(1..=999)
        );
        if let Some(m) = with_key(&first13) {
            if used.insert(m.clone()) {
                break m;
            }
        }
    };
    Person { male, birth_name, first, given, used_name, birth_date, place, ins }
}

/// A spelling of `name` that sounds the same (same phonetic key, different letters).
fn sound_alike(rng: &mut StdRng, name: &str) -> Option<String> {
    let upper = name.to_string();
    let mut variants: Vec<String> = vec![];
    let swaps: &[(&str, &str)] = &[
        ("t", "d"),
        ("d", "t"),
        ("ph", "f"),
        ("f", "ph"),
        ("th", "t"),
        ("au", "o"),
        ("eau", "o"),
        ("ai", "e"),
        ("y", "i"),
        ("i", "y"),
        ("c", "k"),
        ("qu", "k"),
        ("s", "z"),
        ("ll", "l"),
        ("l", "ll"),
        ("r", "rr"),
        ("nn", "n"),
        ("n", "nn"),
        ("tt", "t"),
        ("ss", "s"),
        ("é", "ai"),
        ("è", "ai"),
        ("ez", "é"),
        ("er", "é"),
        ("et", "é"),
    ];
    for (from, to) in swaps {
        let lower = upper.to_lowercase();
        for (i, _) in lower.match_indices(from) {
            let mut v = String::new();
            v.push_str(&lower[..i]);
            v.push_str(to);
            v.push_str(&lower[i + from.len()..]);
            variants.push(v);
        }
    }
    variants.shuffle(rng);
    let target = phonetic(name);
    variants.into_iter().find(|v| phonetic(v) == target && normalise(v) != normalise(name)).map(|v| {
        // Capitalised like the original.
        let mut c = v.chars();
        c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or(v)
    })
}

struct Ids {
    ipp: BTreeMap<String, u32>,
    encounter: BTreeMap<String, u32>,
}

impl Ids {
    fn code(est: &str) -> &str {
        &est[est.len().saturating_sub(3)..]
    }
    fn ipp(&mut self, est: &str) -> String {
        let n = self.ipp.entry(est.to_string()).or_insert(100_000);
        *n += 1;
        format!("{}{:07}", Ids::code(est), n)
    }
    fn encounter(&mut self, est: &str, start: i64) -> String {
        let n = self.encounter.entry(est.to_string()).or_insert(0);
        *n += 1;
        let yy = chrono::DateTime::<Utc>::from_timestamp(start, 0).map(|t| t.year() % 100).unwrap_or(25);
        format!("V{yy:02}{}{:05}", Ids::code(est), n)
    }
}

fn local(p: &Person, est: &str, ipp: String, status: S, rng: &mut StdRng) -> proto::LocalIdentity {
    let abroad = p.place.starts_with("99");
    let document = match status {
        S::Validee | S::Qualifiee => {
            if abroad && rng.gen_bool(0.5) {
                D::TitreSejour
            } else if rng.gen_bool(0.15) {
                D::Passeport
            } else {
                D::Cni
            }
        }
        _ if p.birth_date.year() >= 2015 && rng.gen_bool(0.5) => D::LivretFamille,
        _ => D::None,
    };
    let holds_ins = matches!(status, S::Recuperee | S::Qualifiee);
    proto::LocalIdentity {
        establishment_id: est.to_string(),
        ipp,
        status: status as i32,
        ins: holds_ins.then(|| proto::InsIdentifier { matricule: p.ins.clone(), oid: OID_DEMO.into() }),
        birth_name: p.birth_name.clone(),
        first_given_name: p.first.clone(),
        birth_given_names: p.given.clone(),
        used_name: p.used_name.clone(),
        birth_date: p.birth_date.format("%Y-%m-%d").to_string(),
        sex: if p.male { proto::AdministrativeSex::Male } else { proto::AdministrativeSex::Female } as i32,
        // A provisional identity often lacks the birth place.
        birth_place_code: if status == S::Provisoire && rng.gen_bool(0.4) { String::new() } else { p.place.into() },
        identity_document: document as i32,
        ..Default::default()
    }
}

/// Builds the movements of one establishment's encounters.
struct Movements<'a> {
    rng: &'a mut StdRng,
    ids: &'a mut Ids,
    out: &'a mut BTreeMap<String, Vec<(i64, usize, proto::Movement)>>,
    end: i64,
    order: usize,
}

/// An encounter just planned: where its discharge is, to turn it into a transfer.
struct Planned {
    est: String,
    discharge: Option<usize>,
    end: i64,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Emergency,
    Consultation,
    DayCase,
    Stay,
}

impl Movements<'_> {
    fn push(&mut self, est: &str, at: i64, m: proto::Movement) -> Option<usize> {
        if at > self.end {
            return None;
        }
        self.order += 1;
        let list = self.out.entry(est.to_string()).or_default();
        list.push((at, self.order, m));
        Some(list.len() - 1)
    }

    /// One encounter of `ipp` at `e` from `start`; returns where it ends.
    fn encounter(&mut self, e: &DemoEstablishment, ipp: &str, start: i64, kind: Kind, origin: &str) -> Planned {
        // Planned care starts in the daytime (06:00–16:00 UTC); emergencies and
        // transfers come when they come.
        let start = if kind == Kind::Emergency || !origin.is_empty() {
            start
        } else {
            start - start.rem_euclid(86_400) + self.rng.gen_range(6 * 3_600..16 * 3_600)
        };
        let u = units(e.category);
        let enc = self.ids.encounter(&e.id, start);
        let est = e.id.clone();
        let mut n = 0;
        let mut mv = |trigger: proto::MovementTrigger| {
            n += 1;
            proto::Movement {
                event_id: format!("{enc}-{n:02}"),
                establishment_id: est.clone(),
                ipp: ipp.to_string(),
                encounter_id: enc.clone(),
                trigger: trigger as i32,
                ..Default::default()
            }
        };
        use proto::MovementTrigger as T;
        let rng = &mut *self.rng;
        let ward = |rng: &mut StdRng| pick(rng, u.wards).to_string();
        let room = |rng: &mut StdRng, uf: &str| format!("US{}-CH{:02}", &uf[2..], rng.gen_range(1..=30));
        let hour = 3600;
        let day = 24 * hour;
        // (time, movement) in event order; cancellations follow their target.
        let mut seq: Vec<(i64, proto::Movement)> = vec![];
        let mut discharge_slot: Option<usize>;
        let cancel_draw: f64 = rng.gen();
        match kind {
            Kind::Emergency | Kind::Consultation => {
                let (uf, class, care) = if kind == Kind::Emergency {
                    (u.emergency.to_string(), C::Urgences, format!("BOX-{:02}", rng.gen_range(1..=20)))
                } else {
                    let uf = pick(rng, u.consult).to_string();
                    let care = format!("CS{}", &uf[2..]);
                    (uf, C::ConsultationExterne, care)
                };
                let mut a = mv(T::A04RegisterOutpatient);
                a.medical_unit = uf;
                a.care_unit = care;
                a.encounter_class = class as i32;
                a.origin_establishment_id = origin.to_string();
                seq.push((start, a));
                if kind == Kind::Emergency && rng.gen_bool(0.25) {
                    // Admitted from the emergency department.
                    let t1 = start + rng.gen_range(2 * hour..6 * hour);
                    let mut c = mv(T::A06OutpatientToInpatient);
                    c.encounter_class = C::HospitalisationComplete as i32;
                    seq.push((t1, c));
                    let mut tr = mv(T::A02Transfer);
                    tr.medical_unit = ward(rng);
                    tr.care_unit = room(rng, &tr.medical_unit);
                    seq.push((t1 + rng.gen_range(600..2 * hour), tr));
                    let out = t1 + rng.gen_range(2 * day..10 * day);
                    discharge_slot = Some(seq.len());
                    seq.push((out, mv(T::A03Discharge)));
                } else {
                    let out = start
                        + if kind == Kind::Emergency {
                            rng.gen_range(2 * hour..9 * hour)
                        } else {
                            rng.gen_range(1800..5400)
                        };
                    discharge_slot = Some(seq.len());
                    seq.push((out, mv(T::A03Discharge)));
                }
            }
            Kind::DayCase => {
                let uf = pick(rng, u.day_case).to_string();
                if rng.gen_bool(0.3) {
                    let mut p = mv(T::A05PreAdmit);
                    p.medical_unit = uf.clone();
                    p.encounter_class = C::Ambulatoire as i32;
                    seq.push((start - rng.gen_range(3 * day..15 * day), p));
                }
                let mut a = mv(T::A01Admit);
                a.medical_unit = uf.clone();
                a.care_unit = format!("HDJ{}", &uf[2..]);
                a.encounter_class = C::Ambulatoire as i32;
                seq.push((start, a));
                discharge_slot = Some(seq.len());
                seq.push((start + rng.gen_range(4 * hour..9 * hour), mv(T::A03Discharge)));
            }
            Kind::Stay => {
                let class = if e.category == Cat::Had { C::Had } else { C::HospitalisationComplete };
                let first = ward(rng);
                let los = match e.category {
                    Cat::ChPsy => rng.gen_range(10 * day..60 * day),
                    Cat::Had => rng.gen_range(10 * day..50 * day),
                    Cat::EpMedicoSocial => rng.gen_range(30 * day..150 * day),
                    _ => rng.gen_range(2 * day..15 * day),
                };
                if origin.is_empty() && rng.gen_bool(0.15) {
                    let mut p = mv(T::A05PreAdmit);
                    p.medical_unit = first.clone();
                    p.encounter_class = class as i32;
                    seq.push((start - rng.gen_range(2 * day..20 * day), p));
                }
                let mut a = mv(T::A01Admit);
                a.medical_unit = first.clone();
                a.care_unit = room(rng, &first);
                a.encounter_class = class as i32;
                a.origin_establishment_id = origin.to_string();
                seq.push((start, a));
                let end = start + los;
                if cancel_draw < 0.01 && origin.is_empty() {
                    // Admission entered for the wrong patient: cancelled, nothing else.
                    let mut c = mv(T::A11CancelAdmit);
                    c.target_event_id = seq.last().map(|(_, m)| m.event_id.clone()).unwrap_or_default();
                    seq.push((start + rng.gen_range(900..4 * hour), c));
                    return self.finish(e, seq, None);
                }
                let mut t = start + rng.gen_range(day..3 * day);
                if los > 3 * day && rng.gen_bool(0.35) && u.wards.len() > 1 {
                    let mut tr = mv(T::A02Transfer);
                    tr.medical_unit = u.wards.iter().find(|w| **w != first).map(|w| w.to_string()).unwrap_or_default();
                    tr.care_unit = room(rng, &tr.medical_unit);
                    let target = tr.event_id.clone();
                    seq.push((t, tr));
                    if cancel_draw < 0.05 {
                        // Transfer entered in error.
                        let mut c = mv(T::A12CancelTransfer);
                        c.target_event_id = target;
                        seq.push((t + rng.gen_range(600..3 * hour), c));
                    }
                    t += day;
                }
                let leaves = match e.category {
                    Cat::ChPsy => rng.gen_range(0..=3),
                    Cat::EpMedicoSocial => rng.gen_range(0..=1),
                    _ => usize::from(los > 7 * day && rng.gen_bool(0.2)),
                };
                for _ in 0..leaves {
                    t += rng.gen_range(2 * day..6 * day);
                    if t + 3 * day >= end {
                        break;
                    }
                    seq.push((t, mv(T::A21Leave)));
                    t += rng.gen_range(day..2 * day + 8 * hour);
                    seq.push((t, mv(T::A22Return)));
                }
                discharge_slot = Some(seq.len());
                seq.push((end.max(t + hour), mv(T::A03Discharge)));
                if (0.05..0.08).contains(&cancel_draw) {
                    // Discharge cancelled (the patient stays a day longer), then the real one.
                    let (at, d) = seq[seq.len() - 1].clone();
                    let mut c = mv(T::A13CancelDischarge);
                    c.target_event_id = d.event_id.clone();
                    seq.push((at + rng.gen_range(900..3 * hour), c));
                    discharge_slot = Some(seq.len());
                    seq.push((at + day, mv(T::A03Discharge)));
                }
            }
        }
        self.finish(e, seq, discharge_slot)
    }

    fn finish(&mut self, e: &DemoEstablishment, seq: Vec<(i64, proto::Movement)>, discharge: Option<usize>) -> Planned {
        let end = seq.iter().map(|(t, _)| *t).max().unwrap_or(0);
        let mut planned = Planned { est: e.id.clone(), discharge: None, end };
        for (i, (at, mut m)) in seq.into_iter().enumerate() {
            m.event_time = paris(at);
            let slot = self.push(&e.id, at, m);
            if Some(i) == discharge {
                planned.discharge = slot;
            }
        }
        planned
    }
}

fn kind_for(rng: &mut StdRng, cat: Cat) -> Kind {
    match cat {
        Cat::Had | Cat::EpMedicoSocial => Kind::Stay,
        Cat::ChPsy => {
            if rng.gen_bool(0.55) {
                Kind::Stay
            } else {
                Kind::Consultation
            }
        }
        _ => *weighted(rng, &[(Kind::Emergency, 35), (Kind::Consultation, 25), (Kind::DayCase, 12), (Kind::Stay, 28)]),
    }
}

fn plan(t: &DemoTerritory) -> Plan {
    let mut rng = t.rng("identity");
    let (start, end) = window();
    let ests: Vec<&DemoEstablishment> = t.establishments.iter().collect();
    let by_beds: Vec<(usize, u32)> = ests.iter().enumerate().map(|(i, e)| (i, e.beds.max(1))).collect();
    // Patients visiting a second establishment are mostly sent to the support CHU or
    // to a nearby acute hospital, HAD or long-stay unit.
    let mut used = HashSet::new();
    let mut ids = Ids { ipp: BTreeMap::new(), encounter: BTreeMap::new() };
    let mut identities = vec![];
    let mut movements = BTreeMap::new();
    let mut people: Vec<(Person, &DemoEstablishment, S)> = vec![];
    let mut mv = Movements { rng: &mut rng, ids: &mut ids, out: &mut movements, end, order: 0 };
    for _ in 0..t.args.patients {
        let p = person(mv.rng, &mut used);
        let home = ests[*weighted(mv.rng, &by_beds)];
        let mut visits: Vec<&DemoEstablishment> = vec![home];
        let others = if mv.rng.gen_bool(0.25) { 1 + usize::from(mv.rng.gen_bool(0.2)) } else { 0 };
        for _ in 0..others {
            let e = if mv.rng.gen_bool(0.5) { ests[0] } else { ests[*weighted(mv.rng, &by_beds)] };
            if !visits.iter().any(|v| v.id == e.id) {
                visits.push(e);
            }
        }
        // Locals: qualified mostly; the home identity sometimes still provisional,
        // validated without INS, or with an INS retrieved but not yet checked.
        let mut locals = vec![];
        for (i, e) in visits.iter().enumerate() {
            let status = if i == 0 {
                *weighted(mv.rng, &[(S::Qualifiee, 72), (S::Validee, 12), (S::Recuperee, 6), (S::Provisoire, 10)])
            } else {
                *weighted(mv.rng, &[(S::Qualifiee, 82), (S::Validee, 9), (S::Provisoire, 9)])
            };
            let ipp = mv.ids.ipp(&e.id);
            let id = local(&p, &e.id, ipp.clone(), status, mv.rng);
            identities.push(PlannedIdentity { phase: if i == 0 { 1 } else { 2 }, identity: id });
            locals.push((*e, ipp));
            if i == 0 {
                people.push((p.clone(), *e, status));
            }
        }
        // Encounters one after the other across the year, home first.
        let mut cursor = start + mv.rng.gen_range(0..120 * 86_400);
        let mut order: Vec<usize> = vec![0; 1 + usize::from(mv.rng.gen_bool(0.35)) + usize::from(mv.rng.gen_bool(0.1))];
        order.extend(1..locals.len());
        let mut previous: Option<(Planned, Kind)> = None;
        for i in order {
            let (e, ipp) = &locals[i];
            let mut kind = kind_for(mv.rng, e.category);
            let mut origin = String::new();
            let mut at = cursor + mv.rng.gen_range(5 * 86_400..90 * 86_400);
            // A transfer between establishments: discharged to, admitted from.
            if let Some((prev, pk)) = &previous {
                if prev.est != e.id
                    && matches!(pk, Kind::Stay | Kind::Emergency)
                    && prev.end < end
                    && mv.rng.gen_bool(0.6)
                {
                    if let Some(slot) = prev.discharge {
                        if let Some(d) = mv.out.get_mut(&prev.est).and_then(|l| l.get_mut(slot)) {
                            d.2.destination_establishment_id = e.id.clone();
                            origin = prev.est.clone();
                            kind = Kind::Stay;
                            at = prev.end + mv.rng.gen_range(3_600..3 * 3_600);
                        }
                    }
                }
            }
            if at > end {
                break;
            }
            let planned = mv.encounter(e, ipp, at, kind, &origin);
            cursor = planned.end;
            previous = Some((planned, kind));
        }
    }

    // Duplicates: a patient registered again at the same establishment, provisional,
    // with a spelling variant or a day/month swap (a candidate match to merge), who
    // came through the emergency department under that identity.
    let n_dup = (t.args.patients / 150).max(3) as usize;
    let n_collide = (t.args.patients / 1_000).max(1) as usize;
    // Among the parties' patients, so the territorial DIM sees them.
    let party_patients: Vec<usize> = (0..people.len()).filter(|&i| people[i].1.is_party()).collect();
    let mut picked: HashSet<usize> = HashSet::new();
    while picked.len() < n_dup.min(party_patients.len()) {
        let k = *pick(mv.rng, &party_patients);
        if !picked.insert(k) {
            continue;
        }
        let (p, e, _) = &people[k];
        let e = *e;
        let mut d = p.clone();
        match sound_alike(mv.rng, &p.birth_name) {
            Some(v) if mv.rng.gen_bool(0.7) => d.birth_name = v,
            _ => {
                let (m, day) = (p.birth_date.month(), p.birth_date.day());
                if day <= 12 && day != m {
                    d.birth_date = NaiveDate::from_ymd_opt(p.birth_date.year(), day, m).unwrap_or(p.birth_date);
                }
            }
        }
        d.used_name = String::new();
        let dup_ipp = mv.ids.ipp(&e.id);
        let mut id = local(&d, &e.id, dup_ipp.clone(), S::Provisoire, mv.rng);
        id.birth_place_code = String::new();
        identities.push(PlannedIdentity { phase: 3, identity: id });
        let at = start + mv.rng.gen_range(30 * 86_400..330 * 86_400);
        mv.encounter(e, &dup_ipp, at, Kind::Emergency, "");
    }
    // An INS collision: a daughter registered, "qualified", with her mother's INS.
    let mothers: Vec<usize> = (0..people.len())
        .filter(|&i| {
            let (p, _, s) = &people[i];
            !p.male && *s == S::Qualifiee && people[i].1.is_party() && (1960..=1995).contains(&p.birth_date.year())
        })
        .collect();
    for &k in mothers.iter().take(n_collide) {
        let (mother, home, _) = &people[k];
        let e = ests.iter().find(|e| e.id != home.id && e.is_party()).copied().unwrap_or(*home);
        let mut child = person(mv.rng, &mut used);
        child.male = false;
        child.first = pick(mv.rng, FEMALE).to_string();
        child.given = child.first.clone();
        child.used_name = String::new();
        child.birth_name =
            if mother.used_name.is_empty() { mother.birth_name.clone() } else { mother.used_name.clone() };
        child.birth_date = NaiveDate::from_ymd_opt(
            (mother.birth_date.year() + mv.rng.gen_range(24..34)).min(2024),
            mv.rng.gen_range(1..=12),
            mv.rng.gen_range(1..=28),
        )
        .unwrap_or(child.birth_date);
        child.ins = mother.ins.clone();
        let child_ipp = mv.ids.ipp(&e.id);
        let mut id = local(&child, &e.id, child_ipp.clone(), S::Qualifiee, mv.rng);
        id.identity_document = D::Cni as i32;
        identities.push(PlannedIdentity { phase: 3, identity: id });
        let at = start + mv.rng.gen_range(30 * 86_400..330 * 86_400);
        mv.encounter(e, &child_ipp, at, Kind::Emergency, "");
    }
    Plan { identities, movements }
}

/// Totals of a seed run.
#[derive(Default)]
struct Totals {
    identities: usize,
    auto_linked: usize,
    candidates: u32,
    alerts: HashSet<String>,
    accepted: usize,
    duplicate: usize,
}

/// Seeds this domain's part of the demo territory through the hub's gRPC services.
pub async fn seed(t: &DemoTerritory) -> anyhow::Result<()> {
    if t.args.patients == 0 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let plan = plan(t);
    let mut clients: BTreeMap<String, HubClient> = BTreeMap::new();
    for e in &t.establishments {
        let c = t.client(Role::Practitioner, &format!("demo-admissions@{}", e.id), Some(&e.id))?;
        clients.insert(e.id.clone(), c);
    }
    let mut totals = Totals::default();
    for phase in 1..=3u8 {
        let calls = plan.identities.iter().filter(|p| p.phase == phase).map(|p| {
            let c = clients.get(&p.identity.establishment_id).cloned();
            let id = p.identity.clone();
            async move {
                let c = c.context("establishment without a client")?;
                let key = format!("{}:{}", id.establishment_id, id.ipp);
                let r = c
                    .identity()
                    .upsert_identity(proto::UpsertIdentityRequest {
                        request_id: format!("demo-identity-{key}"),
                        identity: Some(id),
                    })
                    .await
                    .map_err(|s| anyhow::anyhow!("identity {key}: {:?} {}", s.code(), s.message()))?;
                anyhow::Ok(r.into_inner())
            }
        });
        // A few calls in flight hide the round trips; the hub serialises the index anyway.
        let mut answers = futures::stream::iter(calls).buffer_unordered(8);
        while let Some(r) = answers.next().await {
            let r = r?;
            totals.identities += 1;
            totals.auto_linked += r.auto_linked.len();
            totals.candidates += r.candidate_matches;
            totals.alerts.extend(r.alert_ids);
        }
    }
    println!(
        "identities: {} local identities, {} automatic links, {} candidate matches, {} vigilance alerts ({:.1}s)",
        totals.identities,
        totals.auto_linked,
        totals.candidates,
        totals.alerts.len(),
        started.elapsed().as_secs_f64()
    );
    let mut rejected = vec![];
    for (est, mut list) in plan.movements {
        list.sort_by_key(|(at, order, _)| (*at, *order));
        let c = clients.get(&est).context("establishment without a client")?;
        let n = list.len();
        let reqs = list.into_iter().map(|(_, _, m)| proto::PublishMovementsRequest { movement: Some(m) });
        let mut acks = c
            .movements()
            .publish_movements(tokio_stream::iter(reqs))
            .await
            .with_context(|| format!("publishing the movements of {est}"))?
            .into_inner();
        let mut got = 0;
        while let Some(a) = acks.message().await.with_context(|| format!("movements of {est}"))? {
            got += 1;
            match proto::MovementAckStatus::try_from(a.status) {
                Ok(proto::MovementAckStatus::Accepted) => totals.accepted += 1,
                Ok(proto::MovementAckStatus::Duplicate) => totals.duplicate += 1,
                _ => rejected.push(format!("{est} {}: {}", a.event_id, a.message)),
            }
        }
        if got != n {
            bail!("{est}: {got} acknowledgements for {n} movements");
        }
    }
    println!(
        "movements: {} accepted, {} already there, July 2025 – June 2026 ({:.1}s)",
        totals.accepted,
        totals.duplicate,
        started.elapsed().as_secs_f64()
    );
    if !rejected.is_empty() {
        bail!(
            "{} demo movements were refused, e.g. {}",
            rejected.len(),
            rejected.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        );
    }
    println!(
        "  as the DIM physician:  export GHTHUB_TOKEN=$(ghthub token --signing-key {} --sub dim@ght --role DIM_PHYSICIAN --ght {})",
        t.args.signing_key.display(),
        t.ght_id
    );
    println!("  ghthub identity candidates | ghthub identity alerts | ghthub movements follow --no-follow | head");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn paris_time_follows_summer_time() {
        let at = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().timestamp();
        assert_eq!(paris(at(2026, 1, 15, 8)), "2026-01-15T09:00:00+01:00");
        assert_eq!(paris(at(2025, 7, 15, 8)), "2025-07-15T10:00:00+02:00");
        // 2026: summer time starts on Sunday 29 March at 01:00 UTC.
        assert!(paris(at(2026, 3, 29, 0)).ends_with("+01:00"));
        assert!(paris(at(2026, 3, 29, 2)).ends_with("+02:00"));
    }

    #[test]
    fn people_carry_valid_unique_ins() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut used = HashSet::new();
        for _ in 0..500 {
            let p = person(&mut rng, &mut used);
            let ins = crate::identity::ins::validate_ins(&p.ins, OID_DEMO).unwrap();
            assert_eq!(ins.matricule.as_bytes()[0], if p.male { b'1' } else { b'2' });
        }
        assert_eq!(used.len(), 500);
    }

    #[test]
    fn sound_alike_keeps_the_phonetic_key() {
        let mut rng = StdRng::seed_from_u64(1);
        for name in ["Dupont", "Gauthier", "Lefèvre", "Philippe", "Morel"] {
            let v = sound_alike(&mut rng, name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(phonetic(&v), phonetic(name), "{name} → {v}");
            assert_ne!(normalise(&v), normalise(name));
        }
    }
}
