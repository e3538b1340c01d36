//! Identities: an arbitrary `LocalIdentity` (prost-decoded) through the UpsertIdentity
//! validator and the RNIV transition rules, and arbitrary text through the INS
//! matricule check. Nothing may panic; what is accepted is stable when sent again.
#![no_main]

use ghthub::{
    identity::{
        ins::{ins_key, validate_ins, KNOWN_OIDS},
        matching::{score, Fields},
        types::{transition, validate_identity, IdentityInput, Previous},
    },
    proto,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn today() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("fixed date")
}

/// The request a client would send again for an accepted identity.
fn resend(i: &IdentityInput) -> proto::LocalIdentity {
    proto::LocalIdentity {
        establishment_id: i.establishment_id.clone(),
        ipp: i.ipp.clone(),
        status: i.status.to_proto() as i32,
        ins: i.ins.as_ref().map(|x| proto::InsIdentifier { matricule: x.matricule.clone(), oid: x.oid.clone() }),
        birth_name: i.birth_name.clone(),
        first_given_name: i.first_given_name.clone(),
        birth_given_names: i.birth_given_names.clone(),
        used_name: i.used_name.clone(),
        used_given_name: i.used_given_name.clone(),
        birth_date: i.birth_date.clone(),
        sex: ghthub::identity::types::sex_from_code(&i.sex) as i32,
        birth_place_code: i.birth_place_code.clone(),
        identity_document: i.document as i32,
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let (matricule, oid) = text.split_once('|').unwrap_or((text, KNOWN_OIDS[0]));
        if let Ok(ins) = validate_ins(matricule, oid) {
            // Accepted: 15 ASCII characters whose last two are the key of the first 13.
            assert_eq!(ins.matricule.len(), 15);
            let key: u8 = ins.matricule[13..].parse().expect("2-digit key");
            assert_eq!(ins_key(&ins.matricule[..13]), Some(key));
            assert_eq!(validate_ins(&ins.matricule, &ins.oid).ok(), Some(ins.clone()), "normalised INS is stable");
        }
    }
    let Ok(identity) = proto::LocalIdentity::decode(data) else { return };
    let Ok(input) = validate_identity("identity", &identity, today()) else { return };
    let again = validate_identity("identity", &resend(&input), today()).expect("an accepted identity, sent again");
    assert_eq!(again, input);
    let keys = input.keys();
    let s = score(&keys, &keys, Fields::ALL);
    assert!((0.0..=1.0).contains(&s.score), "{s:?}");
    let previous = Previous {
        status: input.status,
        ins: input.ins.clone(),
        strict_traits: input.strict_traits().map(String::from),
        merged_into_ipp: None,
    };
    // The same identity sent twice is never a change of status.
    let t = transition(Some(&previous), &input).expect("a re-send is accepted");
    assert_eq!((t.status, t.downgraded), (input.status, false));
    let _ = transition(None, &input);
});
