//! Movements: an arbitrary `Movement` (prost-decoded) through the publication
//! validator; then the same bytes read as a sequence of ADT events, each validated
//! and checked against the encounter's history as the store does, the history folded
//! after every accepted event. Nothing may panic, and the fold keeps its invariants:
//! it does not depend on the order the history is stored in, and an encounter never
//! has two effective admissions, pre-admissions or discharges.
#![no_main]

use ghthub::{
    movement::{
        adt::{check, effective, fold, Effect, Mv, Status},
        types::{validate_movement, Trigger},
    },
    proto,
    time::{parse_rfc3339, to_rfc3339},
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

const HOUR: i64 = 3_600_000_000;
const CLASSES: [i32; 6] = [0, 1, 2, 3, 4, 5];

fn now() -> i64 {
    parse_rfc3339("now", "2026-06-01T00:00:00Z").expect("fixed time")
}

fn trigger_proto(t: Trigger) -> i32 {
    t.to_proto() as i32
}

/// One event from 4 bytes: trigger, hour, target, class and units.
fn event(i: usize, b: &[u8]) -> proto::Movement {
    let t = Trigger::ALL[b[0] as usize % Trigger::ALL.len()];
    let unit = |n: u8| if n == 0 { String::new() } else { format!("UF{n}") };
    proto::Movement {
        event_id: format!("e{i}"),
        establishment_id: "540000049".into(),
        ipp: "IPP1".into(),
        encounter_id: "V1".into(),
        trigger: trigger_proto(t),
        event_time: to_rfc3339(now() - 100 * HOUR + i64::from(b[1] % 48) * HOUR),
        medical_unit: unit(b[3] >> 3 & 3),
        care_unit: unit(b[3] >> 5 & 1),
        encounter_class: CLASSES[(b[3] & 7) as usize % CLASSES.len()],
        target_event_id: if t.refers_to_another() { format!("e{}", b[2] as usize % (i + 1)) } else { String::new() },
        origin_establishment_id: if b[2] & 0x80 != 0 && t.is_admission() { "540000056".into() } else { String::new() },
        destination_establishment_id: if b[2] & 0x80 != 0 && t == Trigger::A03 {
            "540000056".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

fn invariants(history: &[Mv]) {
    let state = fold(history);
    let mut reversed = history.to_vec();
    reversed.reverse();
    assert_eq!(fold(&reversed), state, "the fold depends on storage order");
    let eff = effective(history);
    assert_eq!(state.status == Status::Cancelled, eff.is_empty() && !history.is_empty());
    let count = |f: fn(&Mv) -> bool| eff.iter().filter(|m| f(m)).count();
    assert!(count(|m| m.trigger.is_admission()) <= 1, "two admissions: {eff:?}");
    assert!(count(|m| m.trigger == Trigger::A05) <= 1, "two pre-admissions: {eff:?}");
    assert!(count(|m| m.trigger == Trigger::A03) <= 1, "two discharges: {eff:?}");
    if state.status == Status::Discharged {
        assert!(state.discharged_at.is_some());
    }
    // A patient is in (admitted or on leave) only after an admission.
    if matches!(state.status, Status::Admitted | Status::OnLeave) {
        assert!(state.admitted_at.is_some(), "{state:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = proto::Movement::decode(data) {
        if let Ok(v) = validate_movement(&m, now()) {
            assert!(v.event_time <= now() + ghthub::movement::types::MAX_CLOCK_AHEAD_MICROS);
            assert_eq!(validate_movement(&m, now()).ok(), Some(v), "validation is deterministic");
        }
    }
    let mut history: Vec<Mv> = Vec::new();
    for (i, b) in data.chunks_exact(4).take(64).enumerate() {
        let Ok(m) = validate_movement(&event(i, b), now()) else { continue };
        let mv = Mv {
            position: i as i64,
            event_id: m.event_id.clone(),
            trigger: m.trigger,
            event_time: m.event_time,
            medical_unit: m.medical_unit.clone(),
            care_unit: m.care_unit.clone(),
            class: m.class,
            target_event_id: m.target_event_id.clone(),
            origin: m.origin_establishment_id.clone(),
            destination: m.destination_establishment_id.clone(),
            cancelled_by: None,
        };
        let Ok(effect) = check(&history, &mv) else { continue };
        match &effect {
            Effect::Cancel { target } => {
                let t = history.iter_mut().find(|x| &x.event_id == target).expect("cancelled target is known");
                assert!(t.cancelled_by.is_none(), "cancelled twice");
                t.cancelled_by = Some(mv.event_id.clone());
            }
            Effect::Update { target } => assert!(history.iter().any(|x| &x.event_id == target)),
            Effect::Insert => assert!(!mv.trigger.refers_to_another()),
        }
        history.push(mv);
        invariants(&history);
    }
});
