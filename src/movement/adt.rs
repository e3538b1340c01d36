//! The ADT state machine of an encounter (pure).
//!
//! An encounter's history is every movement published for it, kept whatever the
//! order of arrival. Its state is a fold over the *effective* movements — not
//! cancelled, not themselves cancellations, with their latest Z99 update applied —
//! in event-time order (ties in commit order). Out-of-order arrival is tolerated:
//! a transfer that arrives before its admission is stored and the encounter shows
//! INCOMPLETE until the admission comes. What is refused is what contradicts
//! movements already known, whatever arrives later: a second admission, a movement
//! before the admission or after the discharge, a leave during a leave, and
//! cancellations that do not match (IHE PAM France rules).

use super::types::{Class, Trigger};
use crate::{AppError, AppResult};

/// One movement of an encounter's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Mv {
    /// Commit position (provisional, increasing, for movements of the batch being committed).
    pub position: i64,
    pub event_id: String,
    pub trigger: Trigger,
    pub event_time: i64,
    pub medical_unit: String,
    pub care_unit: String,
    pub class: Option<Class>,
    pub target_event_id: Option<String>,
    pub origin: String,
    pub destination: String,
    pub cancelled_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    PreAdmitted,
    Admitted,
    OnLeave,
    Discharged,
    Cancelled,
    Incomplete,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PreAdmitted => "PRE_ADMITTED",
            Status::Admitted => "ADMITTED",
            Status::OnLeave => "ON_LEAVE",
            Status::Discharged => "DISCHARGED",
            Status::Cancelled => "CANCELLED",
            Status::Incomplete => "INCOMPLETE",
        }
    }
}

/// The state of an encounter.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub status: Status,
    pub class: Option<Class>,
    pub medical_unit: String,
    pub care_unit: String,
    pub admitted_at: Option<i64>,
    pub discharged_at: Option<i64>,
    pub origin: String,
    pub destination: String,
    pub anomalies: Vec<String>,
    /// Earliest event time of the history (orders a patient's journey).
    pub first_event_at: i64,
}

/// The movements that count, in event-time order, with Z99 updates applied.
pub fn effective(history: &[Mv]) -> Vec<Mv> {
    let mut updates: Vec<&Mv> = history.iter().filter(|m| m.trigger == Trigger::Z99).collect();
    updates.sort_by_key(|m| m.position);
    let mut eff: Vec<Mv> =
        history.iter().filter(|m| m.cancelled_by.is_none() && !m.trigger.refers_to_another()).cloned().collect();
    for u in updates {
        if let Some(t) = eff.iter_mut().find(|m| Some(&m.event_id) == u.target_event_id.as_ref()) {
            if !u.medical_unit.is_empty() {
                t.medical_unit = u.medical_unit.clone();
            }
            if !u.care_unit.is_empty() {
                t.care_unit = u.care_unit.clone();
            }
        }
    }
    eff.sort_by_key(|m| (m.event_time, m.position));
    eff
}

fn at(t: i64) -> String {
    crate::time::to_rfc3339(t)
}

/// The encounter's state from its whole history.
pub fn fold(history: &[Mv]) -> State {
    let mut s = State {
        status: Status::Incomplete,
        class: None,
        medical_unit: String::new(),
        care_unit: String::new(),
        admitted_at: None,
        discharged_at: None,
        origin: String::new(),
        destination: String::new(),
        anomalies: vec![],
        first_event_at: history.iter().map(|m| m.event_time).min().unwrap_or(0),
    };
    let eff = effective(history);
    if eff.is_empty() {
        if !history.is_empty() {
            s.status = Status::Cancelled;
        }
        return s;
    }
    let mut started = false;
    fn units(s: &mut State, m: &Mv) {
        if !m.medical_unit.is_empty() {
            s.medical_unit = m.medical_unit.clone();
        }
        if !m.care_unit.is_empty() {
            s.care_unit = m.care_unit.clone();
        }
    }
    for m in &eff {
        let present = matches!(s.status, Status::Admitted | Status::OnLeave);
        match m.trigger {
            Trigger::A05 => {
                if !started {
                    s.status = Status::PreAdmitted;
                }
                started = true;
                s.class = m.class;
                units(&mut s, m);
                s.origin = m.origin.clone();
            }
            Trigger::A01 | Trigger::A04 => {
                started = true;
                s.status = Status::Admitted;
                s.class = m.class;
                units(&mut s, m);
                s.admitted_at = Some(m.event_time);
                if !m.origin.is_empty() {
                    s.origin = m.origin.clone();
                }
            }
            Trigger::A02 | Trigger::Z80 => {
                if !present {
                    s.anomalies.push(format!(
                        "{} {} at {} before the admission",
                        m.trigger.code(),
                        m.event_id,
                        at(m.event_time)
                    ));
                }
                units(&mut s, m);
            }
            Trigger::A06 | Trigger::A07 => s.class = m.class,
            // A leave or a return only moves a patient who is in: on a pre-admitted or
            // discharged encounter it is an anomaly, and the status keeps saying where
            // the patient really is.
            Trigger::A21 => {
                if present {
                    s.status = Status::OnLeave;
                } else {
                    let when =
                        if s.status == Status::Discharged { "after the discharge" } else { "before the admission" };
                    s.anomalies.push(format!("A21 {} at {} {when}", m.event_id, at(m.event_time)));
                }
            }
            Trigger::A22 => {
                if s.status == Status::OnLeave {
                    s.status = Status::Admitted;
                } else {
                    s.anomalies.push(format!("A22 return {} at {} without a leave", m.event_id, at(m.event_time)));
                }
            }
            Trigger::A03 => {
                s.status = Status::Discharged;
                s.discharged_at = Some(m.event_time);
                s.destination = m.destination.clone();
            }
            _ => {}
        }
    }
    if !started {
        s.status = if s.status == Status::Discharged { Status::Discharged } else { Status::Incomplete };
        s.anomalies.push("no admission received yet".into());
    }
    s
}

/// What accepting a movement does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new movement of the encounter.
    Insert,
    /// Marks `target` cancelled.
    Cancel { target: String },
    /// Updates the units of `target` (Z99).
    Update { target: String },
}

fn describe(m: &Mv) -> String {
    format!("{} {} at {}", m.trigger.code(), m.event_id, at(m.event_time))
}

/// Checks `new` against the encounter's history; the error says which movement it contradicts.
pub fn check(history: &[Mv], new: &Mv) -> AppResult<Effect> {
    if let Some(allowed) = new.trigger.cancels() {
        let target = target_in(history, new)?;
        if target.trigger.refers_to_another() {
            return Err(AppError::precondition(format!("{} cannot cancel {}", new.trigger.code(), describe(target))));
        }
        if !allowed.contains(&target.trigger) {
            let codes: Vec<&str> = allowed.iter().map(|t| t.code()).collect();
            return Err(AppError::precondition(format!(
                "{} cancels {} only; event {} is an {}",
                new.trigger.code(),
                codes.join("/"),
                target.event_id,
                target.trigger.code()
            )));
        }
        if let Some(by) = &target.cancelled_by {
            return Err(AppError::precondition(format!("event {} is already cancelled by {by}", target.event_id)));
        }
        let eff = effective(history);
        let blocking: Vec<String> = match new.trigger {
            // An admission is cancelled last: the encounter's later movements first.
            Trigger::A11 => eff
                .iter()
                .filter(|m| m.event_id != target.event_id && m.trigger != Trigger::A05)
                .map(describe)
                .collect(),
            Trigger::A38 => eff.iter().filter(|m| m.trigger.is_admission()).map(describe).collect(),
            _ => vec![],
        };
        if !blocking.is_empty() {
            return Err(AppError::precondition(format!(
                "cancel the encounter's later movements first: {}",
                blocking.join(", ")
            )));
        }
        return Ok(Effect::Cancel { target: target.event_id.clone() });
    }
    if new.trigger == Trigger::Z99 {
        let target = target_in(history, new)?;
        if target.trigger.refers_to_another() || target.cancelled_by.is_some() {
            return Err(AppError::precondition(format!("Z99 cannot update {}", describe(target))));
        }
        return Ok(Effect::Update { target: target.event_id.clone() });
    }
    let eff = effective(history);
    let admission = eff.iter().find(|m| m.trigger.is_admission());
    let discharge = eff.iter().find(|m| m.trigger == Trigger::A03);
    match new.trigger {
        t if t.is_admission() => {
            if let Some(a) = admission {
                return Err(AppError::precondition(format!(
                    "the encounter already has an active admission ({})",
                    describe(a)
                )));
            }
            if let Some(d) = discharge.filter(|d| d.event_time < new.event_time) {
                return Err(AppError::precondition(format!("the encounter was discharged before ({})", describe(d))));
            }
        }
        Trigger::A05 => {
            if let Some(p) = eff.iter().find(|m| m.trigger == Trigger::A05) {
                return Err(AppError::precondition(format!("the encounter is already pre-admitted ({})", describe(p))));
            }
            if let Some(a) = admission {
                return Err(AppError::precondition(format!("the encounter is already admitted ({})", describe(a))));
            }
        }
        _ => {
            if let Some(a) = admission.filter(|a| new.event_time < a.event_time) {
                return Err(AppError::precondition(format!(
                    "{} at {} is before the admission ({})",
                    new.trigger.code(),
                    at(new.event_time),
                    describe(a)
                )));
            }
            if let Some(d) = discharge {
                if new.trigger == Trigger::A03 {
                    return Err(AppError::precondition(format!(
                        "the encounter is already discharged ({})",
                        describe(d)
                    )));
                }
                if new.event_time > d.event_time {
                    return Err(AppError::precondition(format!(
                        "{} at {} is after the discharge ({}): cancel the discharge (A13) first",
                        new.trigger.code(),
                        at(new.event_time),
                        describe(d)
                    )));
                }
            }
            let last_leave = eff
                .iter()
                .filter(|m| matches!(m.trigger, Trigger::A21 | Trigger::A22) && m.event_time <= new.event_time)
                .next_back();
            match (new.trigger, last_leave) {
                (Trigger::A21, Some(l)) if l.trigger == Trigger::A21 => {
                    return Err(AppError::precondition(format!("the patient is already on leave ({})", describe(l))));
                }
                (Trigger::A22, Some(l)) if l.trigger == Trigger::A22 => {
                    return Err(AppError::precondition(format!("the patient already returned ({})", describe(l))));
                }
                _ => {}
            }
        }
    }
    Ok(Effect::Insert)
}

fn target_in<'a>(history: &'a [Mv], new: &Mv) -> AppResult<&'a Mv> {
    let id = new.target_event_id.as_deref().unwrap_or_default();
    history.iter().find(|m| m.event_id == id).ok_or_else(|| {
        AppError::not_found(format!("movement {id} (named by {} {} as its target)", new.trigger.code(), new.event_id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

    fn mv(pos: i64, id: &str, trigger: Trigger, hour: i64) -> Mv {
        Mv {
            position: pos,
            event_id: id.into(),
            trigger,
            event_time: hour * H,
            medical_unit: format!("UF{hour}"),
            care_unit: String::new(),
            class: match trigger {
                Trigger::A01 | Trigger::A05 => Some(Class::HospitalisationComplete),
                Trigger::A04 => Some(Class::Urgences),
                _ => None,
            },
            target_event_id: None,
            origin: String::new(),
            destination: String::new(),
            cancelled_by: None,
        }
    }

    fn cancel(pos: i64, id: &str, trigger: Trigger, target: &str) -> Mv {
        Mv { target_event_id: Some(target.into()), ..mv(pos, id, trigger, 100) }
    }

    /// Applies movements one by one as the hub does; returns the history.
    fn publish(moves: Vec<Mv>) -> Result<Vec<Mv>, AppError> {
        let mut h: Vec<Mv> = vec![];
        for m in moves {
            match check(&h, &m)? {
                Effect::Cancel { target } => {
                    if let Some(t) = h.iter_mut().find(|x| x.event_id == target) {
                        t.cancelled_by = Some(m.event_id.clone());
                    }
                }
                Effect::Insert | Effect::Update { .. } => {}
            }
            h.push(m);
        }
        Ok(h)
    }

    #[test]
    fn a_stay_with_transfer_leave_and_discharge() {
        let h = publish(vec![
            mv(1, "e1", Trigger::A01, 1),
            mv(2, "e2", Trigger::A02, 5),
            mv(3, "e3", Trigger::A21, 10),
            mv(4, "e4", Trigger::A22, 20),
            mv(5, "e5", Trigger::A03, 30),
        ])
        .unwrap();
        let s = fold(&h);
        assert_eq!(s.status, Status::Discharged);
        assert_eq!((s.admitted_at, s.discharged_at), (Some(H), Some(30 * H)));
        assert_eq!(s.medical_unit, "UF5");
        assert!(s.anomalies.is_empty(), "{:?}", s.anomalies);
        assert_eq!(fold(&h[..3]).status, Status::OnLeave);
    }

    #[test]
    fn out_of_order_arrival_gives_the_same_state() {
        let in_order =
            publish(vec![mv(1, "e1", Trigger::A01, 1), mv(2, "e2", Trigger::A02, 5), mv(3, "e3", Trigger::A03, 9)])
                .unwrap();
        // Transfer first, then discharge, then the admission.
        let shuffled =
            publish(vec![mv(1, "e2", Trigger::A02, 5), mv(2, "e3", Trigger::A03, 9), mv(3, "e1", Trigger::A01, 1)])
                .unwrap();
        let partial = fold(&shuffled[..1]);
        assert_eq!(partial.status, Status::Incomplete);
        let (a, b) = (fold(&in_order), fold(&shuffled));
        assert_eq!(
            (a.status, &a.medical_unit, a.admitted_at, a.discharged_at),
            (b.status, &b.medical_unit, b.admitted_at, b.discharged_at)
        );
        assert!(b.anomalies.is_empty(), "{:?}", b.anomalies);
    }

    #[test]
    fn contradictions_are_refused() {
        let base = vec![mv(1, "e1", Trigger::A01, 10), mv(2, "e2", Trigger::A03, 20)];
        let h = publish(base).unwrap();
        let e = check(&h, &mv(3, "x", Trigger::A01, 12)).unwrap_err();
        assert!(e.to_string().contains("already has an active admission"), "{e}");
        let e = check(&h, &mv(3, "x", Trigger::A02, 5)).unwrap_err();
        assert!(e.to_string().contains("before the admission"), "{e}");
        let e = check(&h, &mv(3, "x", Trigger::A02, 25)).unwrap_err();
        assert!(e.to_string().contains("after the discharge") && e.to_string().contains("A13"), "{e}");
        assert!(check(&h, &mv(3, "x", Trigger::A03, 15)).is_err(), "second discharge");
        assert_eq!(check(&h, &mv(3, "x", Trigger::A02, 15)).unwrap(), Effect::Insert);
        let leave = publish(vec![mv(1, "e1", Trigger::A01, 1), mv(2, "l", Trigger::A21, 2)]).unwrap();
        assert!(check(&leave, &mv(3, "l2", Trigger::A21, 3)).unwrap_err().to_string().contains("already on leave"));
    }

    #[test]
    fn cancellations_must_match_their_target() {
        let h = publish(vec![mv(1, "adm", Trigger::A01, 1), mv(2, "tr", Trigger::A02, 2)]).unwrap();
        // Unknown target: NOT_FOUND naming it.
        let e = check(&h, &cancel(3, "c", Trigger::A12, "nope")).unwrap_err();
        assert!(matches!(e, AppError::NotFound(_)) && e.to_string().contains("nope"), "{e}");
        // A12 cancels a transfer, not an admission.
        let e = check(&h, &cancel(3, "c", Trigger::A12, "adm")).unwrap_err();
        assert!(e.to_string().contains("A12 cancels A02 only; event adm is an A01"), "{e}");
        // An admission is cancelled after its later movements.
        let e = check(&h, &cancel(3, "c", Trigger::A11, "adm")).unwrap_err();
        assert!(e.to_string().contains("later movements first"), "{e}");
        let h = publish(vec![
            mv(1, "adm", Trigger::A01, 1),
            mv(2, "tr", Trigger::A02, 2),
            cancel(3, "c1", Trigger::A12, "tr"),
            cancel(4, "c2", Trigger::A11, "adm"),
        ])
        .unwrap();
        assert_eq!(fold(&h).status, Status::Cancelled);
        // Twice: refused, naming the first cancellation.
        let e = check(&h, &cancel(5, "c3", Trigger::A12, "tr")).unwrap_err();
        assert!(e.to_string().contains("already cancelled by c1"), "{e}");
    }

    #[test]
    fn a_cancelled_discharge_reopens_the_stay_and_z99_updates_units() {
        let mut upd = cancel(4, "u", Trigger::Z99, "adm");
        upd.medical_unit = "UF-NEW".into();
        let h = publish(vec![
            mv(1, "adm", Trigger::A01, 1),
            mv(2, "out", Trigger::A03, 5),
            cancel(3, "undo", Trigger::A13, "out"),
            upd,
        ])
        .unwrap();
        let s = fold(&h);
        assert_eq!(s.status, Status::Admitted);
        assert_eq!(s.medical_unit, "UF-NEW");
        assert_eq!(check(&h, &mv(5, "later", Trigger::A02, 9)).unwrap(), Effect::Insert);
    }
}
