//! Patient movements: publication, encounters, subscription, journeys, care relationship.

mod common;

use std::time::Duration;

use common::{fixture::*, seed_territory, TestHub};
use ghthub::{
    access::{Action, DataClass, Role},
    cli::client::HubClient,
    identity::ins::{with_key, OID_TEST},
    proto::{self, EncounterClass as C, MovementAckStatus as Ack, MovementTrigger as T},
};
use tonic::Code;

async fn identity(c: &HubClient, est: &str, ipp: &str, ins13: Option<&str>) -> String {
    let status = if ins13.is_some() { proto::IdentityStatus::Qualifiee } else { proto::IdentityStatus::Provisoire };
    let doc = if ins13.is_some() { proto::IdentityDocument::Cni } else { proto::IdentityDocument::None };
    let id = proto::LocalIdentity {
        establishment_id: est.into(),
        ipp: ipp.into(),
        status: status as i32,
        ins: ins13.map(|i| proto::InsIdentifier { matricule: with_key(i).unwrap(), oid: OID_TEST.into() }),
        birth_name: "Durand".into(),
        first_given_name: "Claude".into(),
        birth_date: "1960-05-06".into(),
        sex: proto::AdministrativeSex::Female as i32,
        birth_place_code: "54395".into(),
        identity_document: doc as i32,
        ..Default::default()
    };
    c.identity()
        .upsert_identity(proto::UpsertIdentityRequest { identity: Some(id), request_id: String::new() })
        .await
        .unwrap()
        .into_inner()
        .identity
        .unwrap()
        .territorial_id
}

fn mv(id: &str, est: &str, ipp: &str, enc: &str, trigger: T, at: &str) -> proto::Movement {
    let class = match trigger {
        T::A01Admit | T::A05PreAdmit => C::HospitalisationComplete as i32,
        T::A04RegisterOutpatient => C::Urgences as i32,
        _ => 0,
    };
    proto::Movement {
        event_id: id.into(),
        establishment_id: est.into(),
        ipp: ipp.into(),
        encounter_id: enc.into(),
        trigger: trigger as i32,
        event_time: at.into(),
        medical_unit: "UF-MED".into(),
        encounter_class: class,
        ..Default::default()
    }
}

fn cancel(id: &str, est: &str, ipp: &str, enc: &str, trigger: T, target: &str) -> proto::Movement {
    proto::Movement { target_event_id: target.into(), ..mv(id, est, ipp, enc, trigger, "2026-02-01T12:00:00Z") }
}

async fn publish(c: &HubClient, moves: Vec<proto::Movement>) -> Vec<proto::MovementAck> {
    let n = moves.len();
    let reqs = moves.into_iter().map(|m| proto::PublishMovementsRequest { movement: Some(m) });
    let mut acks = c.movements().publish_movements(tokio_stream::iter(reqs)).await.unwrap().into_inner();
    let mut out = vec![];
    while let Some(a) = acks.message().await.unwrap() {
        out.push(a);
    }
    assert_eq!(out.len(), n, "one ack per movement");
    out
}

fn status(a: &proto::MovementAck) -> (Ack, i32) {
    (Ack::try_from(a.status).unwrap(), a.code)
}

async fn encounter(c: &HubClient, est: &str, enc: &str) -> Result<proto::Encounter, tonic::Status> {
    c.movements()
        .get_encounter(proto::GetEncounterRequest { establishment_id: est.into(), encounter_id: enc.into() })
        .await
        .map(|r| r.into_inner())
}

/// Everything the subscription delivers after `since` until caught up.
async fn drain(
    c: &HubClient,
    since: i64,
    ests: &[&str],
) -> Result<Vec<proto::SubscribeMovementsResponse>, tonic::Status> {
    let req = proto::SubscribeMovementsRequest {
        since,
        establishment_ids: ests.iter().map(|s| s.to_string()).collect(),
        follow: false,
    };
    let mut s = c.movements().subscribe_movements(req).await?.into_inner();
    let mut out = vec![];
    while let Some(m) = s.message().await? {
        out.push(m);
    }
    Ok(out)
}

fn event_ids(items: &[proto::SubscribeMovementsResponse]) -> Vec<String> {
    items.iter().filter_map(|i| i.movement.as_ref().map(|m| m.event_id.clone())).collect()
}

struct Parties {
    dr1: HubClient,
    dr2: HubClient,
    dr3: HubClient,
    dim: HubClient,
}

async fn parties(hub: &TestHub) -> Parties {
    seed_territory(hub).await;
    Parties {
        dr1: hub.client(&hub.token(Role::Practitioner, "dr-e1", Some(G1), Some(E1), None)).await,
        dr2: hub.client(&hub.token(Role::Practitioner, "dr-e2", Some(G1), Some(E2), None)).await,
        dr3: hub.client(&hub.token(Role::Practitioner, "dr-e3", Some(G1), Some(E3), None)).await,
        dim: hub.client(&hub.token(Role::DimPhysician, "dim-phys", Some(G1), None, None)).await,
    }
}

async fn idempotency(hub: &TestHub) {
    let p = parties(hub).await;
    identity(&p.dr1, E1, "P1", None).await;
    let stay = vec![
        mv("e1", E1, "P1", "V1", T::A01Admit, "2026-01-05T08:00:00+01:00"),
        mv("e2", E1, "P1", "V1", T::A02Transfer, "2026-01-06T10:00:00+01:00"),
        mv("bad", E1, "P1", "V1", T::A08UpdatePatient, "2026-01-06T11:00:00+01:00"),
        mv("e3", E1, "P1", "V1", T::A03Discharge, "2026-01-09T15:00:00+01:00"),
        mv("e4", E1, "NOBODY", "V9", T::A01Admit, "2026-01-09T15:00:00+01:00"),
        mv("e5", E2, "P1", "V1", T::A01Admit, "2026-01-09T15:00:00+01:00"),
    ];
    let acks = publish(&p.dr1, stay.clone()).await;
    let got: Vec<(Ack, i32)> = acks.iter().map(status).collect();
    assert_eq!(
        got,
        vec![
            (Ack::Accepted, 0),
            (Ack::Accepted, 0),
            (Ack::Rejected, Code::InvalidArgument as i32),
            (Ack::Accepted, 0),
            (Ack::Rejected, Code::FailedPrecondition as i32),
            (Ack::Rejected, Code::PermissionDenied as i32),
        ],
        "{acks:?}"
    );
    assert!(acks[2].message.contains("A08 is forbidden"), "{:?}", acks[2]);
    assert!(acks[4].message.contains("not published"), "{:?}", acks[4]);
    let positions: Vec<i64> = [0, 1, 3].iter().map(|&i| acks[i].position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // Replayed event ids: acknowledged again with their positions, stored once.
    let replay = publish(&p.dr1, stay[..4].to_vec()).await;
    for i in [0, 1, 3] {
        assert_eq!(status(&replay[i]), (Ack::Duplicate, 0));
        assert_eq!(replay[i].position, acks[i].position);
    }
    // The same event id with other content is refused, naming it.
    let mut changed = stay[1].clone();
    changed.medical_unit = "UF-OTHER".into();
    let a = publish(&p.dr1, vec![changed]).await;
    assert_eq!(status(&a[0]), (Ack::Rejected, Code::AlreadyExists as i32));
    assert!(a[0].message.contains("e2"), "{a:?}");
    // A duplicate inside one stream batch.
    identity(&p.dr1, E1, "P2", None).await;
    let twice = mv("d1", E1, "P2", "V2", T::A01Admit, "2026-01-10T08:00:00Z");
    let a = publish(&p.dr1, vec![twice.clone(), twice]).await;
    assert_eq!((status(&a[0]), status(&a[1])), ((Ack::Accepted, 0), (Ack::Duplicate, 0)));
    assert_eq!(a[0].position, a[1].position);

    let v1 = encounter(&p.dr1, E1, "V1").await.unwrap();
    assert_eq!(v1.status, proto::EncounterStatus::Discharged as i32);
    assert_eq!(v1.movements.iter().map(|m| m.event_id.as_str()).collect::<Vec<_>>(), vec!["e1", "e2", "e3"]);
    assert_eq!(v1.admitted_at, "2026-01-05T07:00:00.000000Z");
    assert_eq!(v1.movements[0].recorded_by, "dr-e1");
    // One audit record per committed batch and establishment: the movements written
    // by dr-e1 (valid, for E1) are all accounted for, in fewer records than movements.
    let audit = p
        .dim
        .audit()
        .query_audit(proto::QueryAuditRequest { subject: "dr-e1".into(), limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    let batches: Vec<i64> = audit
        .iter()
        .filter(|r| {
            r.rpc.ends_with("PublishMovements") && r.decision == "ALLOW" && r.target_ids.contains(&E1.to_string())
        })
        .filter_map(|r| r.target_ids.iter().find_map(|t| t.strip_prefix("events:")).and_then(|n| n.parse().ok()))
        .collect();
    assert_eq!(batches.iter().sum::<i64>(), 4 + 3 + 1 + 2, "{audit:?}");
}
on_every_backend!(publish_acknowledges_each_event_and_replays_are_idempotent, idempotency);

/// A movement for an IPP merged into another (A40) is refused, naming the surviving
/// IPP; the survivor's movements go through. Unpublished IPPs stay refused as such.
async fn merged_ipp(hub: &TestHub) {
    let p = parties(hub).await;
    identity(&p.dr1, E1, "SURV", None).await;
    identity(&p.dr1, E1, "DOUBLON", None).await;
    let local = |ipp: &str| Some(proto::LocalIdentityRef { establishment_id: E1.into(), ipp: ipp.into() });
    p.dr1
        .identity()
        .merge_identities(proto::MergeIdentitiesRequest {
            surviving: local("SURV"),
            merged: local("DOUBLON"),
            reason: "doublon".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let a = publish(
        &p.dr1,
        vec![
            mv("m1", E1, "DOUBLON", "W1", T::A01Admit, "2026-02-01T08:00:00Z"),
            mv("m2", E1, "SURV", "W2", T::A01Admit, "2026-02-01T08:00:00Z"),
            mv("m3", E1, "NOBODY", "W3", T::A01Admit, "2026-02-01T08:00:00Z"),
        ],
    )
    .await;
    assert_eq!(status(&a[0]), (Ack::Rejected, Code::FailedPrecondition as i32), "{a:?}");
    assert!(a[0].message.contains("merged (A40) into IPP SURV"), "{:?}", a[0]);
    assert_eq!(status(&a[1]), (Ack::Accepted, 0), "{a:?}");
    assert_eq!(status(&a[2]), (Ack::Rejected, Code::FailedPrecondition as i32), "{a:?}");
    assert!(a[2].message.contains("not published"), "{:?}", a[2]);
}
on_every_backend!(movements_of_a_merged_ipp_are_refused_naming_the_survivor, merged_ipp);

async fn cancellations(hub: &TestHub) {
    let p = parties(hub).await;
    identity(&p.dr1, E1, "P1", None).await;
    let mut transfer = mv("t1", E1, "P1", "V1", T::A02Transfer, "2026-01-06T10:00:00Z");
    transfer.medical_unit = "UF-B".into();
    let a = publish(&p.dr1, vec![mv("a1", E1, "P1", "V1", T::A01Admit, "2026-01-05T08:00:00Z"), transfer]).await;
    assert!(a.iter().all(|a| status(a).0 == Ack::Accepted));
    assert_eq!(encounter(&p.dr1, E1, "V1").await.unwrap().medical_unit, "UF-B");
    let a = publish(
        &p.dr1,
        vec![
            cancel("c0", E1, "P1", "V1", T::A12CancelTransfer, "unknown-event"),
            cancel("c1", E1, "P1", "V1", T::A12CancelTransfer, "a1"),
            cancel("c2", E1, "P1", "V1", T::A11CancelAdmit, "a1"),
            cancel("c3", E1, "P1", "V1", T::A12CancelTransfer, "t1"),
            cancel("c4", E1, "P1", "V1", T::A12CancelTransfer, "t1"),
        ],
    )
    .await;
    assert_eq!(status(&a[0]), (Ack::Rejected, Code::NotFound as i32));
    assert!(a[0].message.contains("unknown-event"), "{:?}", a[0]);
    assert_eq!(status(&a[1]), (Ack::Rejected, Code::FailedPrecondition as i32));
    assert!(a[1].message.contains("A12 cancels A02 only"), "{:?}", a[1]);
    assert_eq!(status(&a[2]), (Ack::Rejected, Code::FailedPrecondition as i32), "the transfer is still active");
    assert_eq!(status(&a[3]).0, Ack::Accepted);
    assert!(a[4].message.contains("already cancelled by c3"), "{:?}", a[4]);
    let v = encounter(&p.dr1, E1, "V1").await.unwrap();
    assert_eq!(v.medical_unit, "UF-MED", "back to the admission's unit");
    assert_eq!(v.movements.iter().find(|m| m.event_id == "t1").unwrap().cancelled_by, "c3");
    // Now the admission can be cancelled: the encounter is CANCELLED.
    let a = publish(&p.dr1, vec![cancel("c5", E1, "P1", "V1", T::A11CancelAdmit, "a1")]).await;
    assert_eq!(status(&a[0]).0, Ack::Accepted, "{a:?}");
    assert_eq!(encounter(&p.dr1, E1, "V1").await.unwrap().status, proto::EncounterStatus::Cancelled as i32);
    // A cancellation must name a movement of the same encounter.
    identity(&p.dr1, E1, "P2", None).await;
    publish(&p.dr1, vec![mv("b1", E1, "P2", "V2", T::A01Admit, "2026-01-05T08:00:00Z")]).await;
    let a = publish(&p.dr1, vec![cancel("c6", E1, "P1", "V1", T::A11CancelAdmit, "b1")]).await;
    assert!(a[0].message.contains("belongs to encounter V2"), "{a:?}");
    // An encounter belongs to one patient.
    let a = publish(&p.dr1, vec![mv("x1", E1, "P1", "V2", T::A02Transfer, "2026-01-06T08:00:00Z")]).await;
    assert!(a[0].message.contains("belongs to another patient"), "{a:?}");
    // A rejected first movement of an unknown encounter leaves nothing behind, even when
    // its batch commits another movement: the encounter is not created, nor claimed.
    let a = publish(
        &p.dr1,
        vec![
            cancel("g0", E1, "P2", "V9", T::A11CancelAdmit, "no-such-event"),
            mv("g1", E1, "P2", "V10", T::A01Admit, "2026-03-01T08:00:00Z"),
        ],
    )
    .await;
    assert_eq!(status(&a[0]).0, Ack::Rejected);
    assert_eq!(status(&a[1]).0, Ack::Accepted);
    assert_eq!(encounter(&p.dr1, E1, "V9").await.unwrap_err().code(), Code::NotFound);
    let a = publish(&p.dr1, vec![mv("g2", E1, "P1", "V9", T::A01Admit, "2026-03-02T08:00:00Z")]).await;
    assert_eq!(status(&a[0]).0, Ack::Accepted, "V9 is free for P1: {a:?}");
}
on_every_backend!(cancellations_match_their_target_and_unknown_ones_are_refused, cancellations);

async fn out_of_order(hub: &TestHub) {
    let p = parties(hub).await;
    identity(&p.dr1, E1, "P1", None).await;
    let mut transfer = mv("t", E1, "P1", "V1", T::A02Transfer, "2026-01-06T10:00:00Z");
    transfer.medical_unit = "UF-CARDIO".into();
    let a = publish(&p.dr1, vec![transfer]).await;
    assert_eq!(status(&a[0]).0, Ack::Accepted);
    let v = encounter(&p.dr1, E1, "V1").await.unwrap();
    assert_eq!(v.status, proto::EncounterStatus::Incomplete as i32);
    assert!(!v.anomalies.is_empty());
    publish(&p.dr1, vec![mv("d", E1, "P1", "V1", T::A03Discharge, "2026-01-09T10:00:00Z")]).await;
    let a = publish(&p.dr1, vec![mv("a", E1, "P1", "V1", T::A01Admit, "2026-01-05T10:00:00Z")]).await;
    assert_eq!(status(&a[0]).0, Ack::Accepted, "{a:?}");
    let v = encounter(&p.dr1, E1, "V1").await.unwrap();
    assert_eq!(v.status, proto::EncounterStatus::Discharged as i32);
    assert!(v.anomalies.is_empty(), "{:?}", v.anomalies);
    assert_eq!(v.medical_unit, "UF-CARDIO");
    let order: Vec<&str> = v.movements.iter().map(|m| m.event_id.as_str()).collect();
    assert_eq!(order, vec!["a", "t", "d"], "history in event-time order");
    assert!(v.movements[0].position > v.movements[1].position, "whatever the arrival order");
    // What contradicts known movements is refused, naming them.
    let a = publish(&p.dr1, vec![mv("early", E1, "P1", "V1", T::A02Transfer, "2026-01-04T10:00:00Z")]).await;
    assert!(a[0].message.contains("before the admission") && a[0].message.contains(" a "), "{a:?}");
    let a = publish(&p.dr1, vec![mv("late", E1, "P1", "V1", T::A21Leave, "2026-01-10T10:00:00Z")]).await;
    assert!(a[0].message.contains("after the discharge"), "{a:?}");
    // IHE PAM: no two movements of the same nature, patient, unit and time.
    let a = publish(&p.dr1, vec![mv("again", E1, "P1", "V7", T::A01Admit, "2026-01-05T10:00:00Z")]).await;
    assert_eq!(status(&a[0]), (Ack::Rejected, Code::FailedPrecondition as i32));
    assert!(a[0].message.contains("same nature"), "{a:?}");
}
on_every_backend!(out_of_order_events_are_kept_in_event_time_order, out_of_order);

async fn subscription(hub: &TestHub) {
    let p = parties(hub).await;
    identity(&p.dr1, E1, "P1", None).await;
    identity(&p.dr2, E2, "Q1", None).await;
    identity(&p.dr3, E3, "R1", None).await;
    let day = |d: u32| format!("2026-01-{d:02}T08:00:00Z");
    for d in 1..=5 {
        publish(&p.dr1, vec![mv(&format!("p{d}"), E1, "P1", &format!("V{d}"), T::A04RegisterOutpatient, &day(d))])
            .await;
        publish(&p.dr2, vec![mv(&format!("q{d}"), E2, "Q1", &format!("W{d}"), T::A04RegisterOutpatient, &day(d))])
            .await;
        publish(&p.dr3, vec![mv(&format!("r{d}"), E3, "R1", &format!("X{d}"), T::A04RegisterOutpatient, &day(d))])
            .await;
    }
    // The DIM physician receives the parties' movements, never the associé's.
    let all = drain(&p.dim, 0, &[]).await.unwrap();
    let ids = event_ids(&all);
    assert_eq!(ids.len(), 10);
    assert!(ids.iter().all(|i| !i.starts_with('r')), "{ids:?}");
    let cursors: Vec<i64> = all.iter().map(|m| m.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(all.last().unwrap().cursor, 15, "a keep-alive advances past the associé's last movement");
    assert!(all.iter().filter_map(|m| m.movement.as_ref()).all(|m| !m.territorial_id.is_empty()));

    // Resume from a cursor: exactly the movements missed since.
    let cut = all.iter().find(|m| m.movement.as_ref().is_some_and(|m| m.event_id == "q3")).unwrap().cursor;
    let before_cut: Vec<String> = event_ids(&all.iter().filter(|m| m.cursor <= cut).cloned().collect::<Vec<_>>());
    for d in 6..=7 {
        publish(&p.dr1, vec![mv(&format!("p{d}"), E1, "P1", &format!("V{d}"), T::A04RegisterOutpatient, &day(d))])
            .await;
    }
    let resumed = event_ids(&drain(&p.dim, cut, &[]).await.unwrap());
    let everything = event_ids(&drain(&p.dim, 0, &[]).await.unwrap());
    assert_eq!([before_cut, resumed.clone()].concat(), everything, "nothing lost, nothing twice");
    assert_eq!(resumed, vec!["p4", "q4", "p5", "q5", "p6", "p7"]);
    // Filtered to one establishment.
    assert_eq!(event_ids(&drain(&p.dim, 0, &[E2]).await.unwrap()), vec!["q1", "q2", "q3", "q4", "q5"]);
    // Asking for the associé explicitly is refused.
    assert_eq!(drain(&p.dim, 0, &[E3]).await.unwrap_err().code(), Code::PermissionDenied);
    // A practitioner follows its own establishment.
    assert_eq!(event_ids(&drain(&p.dr3, 0, &[]).await.unwrap()).len(), 5);
    // The DSIs and the ARS never subscribe.
    let dsi = hub.client(&hub.token(Role::GhtDsi, "dsi-ght", Some(G1), None, None)).await;
    assert_eq!(drain(&dsi, 0, &[]).await.unwrap_err().code(), Code::PermissionDenied);
    let ars = hub.client(&hub.token(Role::Ars, "ars", None, None, Some(R1))).await;
    assert_eq!(drain(&ars, 0, &[]).await.unwrap_err().code(), Code::PermissionDenied);

    // Following: new movements arrive as they are committed.
    let req = proto::SubscribeMovementsRequest { since: 17, establishment_ids: vec![], follow: true };
    let mut live = p.dim.movements().subscribe_movements(req).await.unwrap().into_inner();
    publish(&p.dr2, vec![mv("q9", E2, "Q1", "W9", T::A04RegisterOutpatient, &day(9))]).await;
    let got =
        tokio::time::timeout(Duration::from_secs(10), live.message()).await.expect("live delivery").unwrap().unwrap();
    assert_eq!(got.movement.unwrap().event_id, "q9");
    // The DIM's reads are in the audit trail, with the patients they showed.
    let t = identity(&p.dr2, E2, "Q1", None).await;
    let audit = p
        .dim
        .audit()
        .query_audit(proto::QueryAuditRequest { target_id: t, subject: "dim-phys".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(audit.iter().any(|r| r.rpc.ends_with("SubscribeMovements")), "{audit:?}");
}
on_every_backend!(subscription_resumes_from_a_cursor_and_filters_by_scope, subscription);

async fn care_relationship(hub: &TestHub) {
    let p = parties(hub).await;
    // One patient, qualified at E1, E2 and the associé E3: one territorial identity.
    let t = identity(&p.dr1, E1, "P", Some("2600554395001")).await;
    assert_eq!(identity(&p.dr2, E2, "Q", Some("2600554395001")).await, t);
    assert_eq!(identity(&p.dr3, E3, "R", Some("2600554395001")).await, t);
    publish(&p.dr1, vec![mv("p1", E1, "P", "V-E1", T::A01Admit, "2026-01-05T08:00:00Z")]).await;
    publish(&p.dr3, vec![mv("r1", E3, "R", "V-E3", T::A04RegisterOutpatient, "2026-01-02T08:00:00Z")]).await;
    let check = |c: HubClient| {
        let t = t.clone();
        async move {
            c.access()
                .check_access(proto::CheckAccessRequest {
                    data_class: DataClass::MovementNominative.to_proto() as i32,
                    action: Action::Read.to_proto() as i32,
                    ght_id: G1.into(),
                    establishment_id: E1.into(),
                    patient_ref: t.clone(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    // E2 does not care for the patient: E1's stay is out of reach.
    let e = encounter(&p.dr2, E1, "V-E1").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("practitioner-movement-care"), "{e:?}");
    assert!(!check(p.dr2.clone()).await.allowed);
    // A pre-admission is not care yet.
    publish(&p.dr2, vec![mv("q0", E2, "Q", "V-E2", T::A05PreAdmit, "2026-01-06T08:00:00Z")]).await;
    assert_eq!(encounter(&p.dr2, E1, "V-E1").await.unwrap_err().code(), Code::PermissionDenied);
    // Admitted at E2: the care relationship opens E1's stay to E2's practitioner.
    publish(&p.dr2, vec![mv("q1", E2, "Q", "V-E2", T::A01Admit, "2026-01-06T09:00:00Z")]).await;
    let v = encounter(&p.dr2, E1, "V-E1").await.unwrap();
    assert_eq!(v.territorial_id, t);
    let r = check(p.dr2.clone()).await;
    assert!(r.allowed && r.rule == "practitioner-movement-care", "{r:?}");
    let j = p
        .dr2
        .movements()
        .patient_journey(proto::PatientJourneyRequest { territorial_id: t.clone() })
        .await
        .unwrap()
        .into_inner();
    let stays: Vec<&str> = j.encounters.iter().map(|e| e.encounter_id.as_str()).collect();
    assert_eq!(stays, vec!["V-E3", "V-E1", "V-E2"], "the whole journey, by admission time");
    // The DIM physician sees the parties' stays, never the associé's.
    let j = p
        .dim
        .movements()
        .patient_journey(proto::PatientJourneyRequest { territorial_id: t.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.encounters.iter().map(|e| e.encounter_id.as_str()).collect::<Vec<_>>(), vec!["V-E1", "V-E2"]);
    assert_eq!(encounter(&p.dim, E3, "V-E3").await.unwrap_err().code(), Code::PermissionDenied);
    // Discharged from E2: the relationship ends.
    publish(&p.dr2, vec![mv("q2", E2, "Q", "V-E2", T::A03Discharge, "2026-01-08T09:00:00Z")]).await;
    assert_eq!(encounter(&p.dr2, E1, "V-E1").await.unwrap_err().code(), Code::PermissionDenied);
    assert!(!check(p.dr2.clone()).await.allowed);
    let j = p
        .dr2
        .movements()
        .patient_journey(proto::PatientJourneyRequest { territorial_id: t.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(j.encounters.iter().map(|e| e.encounter_id.as_str()).collect::<Vec<_>>(), vec!["V-E2"]);
    // The DSIs and the ARS never read stays; another GHT's DIM neither.
    for c in [
        hub.client(&hub.token(Role::EstablishmentDsi, "dsi-e1", Some(G1), Some(E1), None)).await,
        hub.client(&hub.token(Role::Ars, "ars", None, None, Some(R1))).await,
        hub.client(&hub.token(Role::DimPhysician, "dim-g2", Some(G2), None, None)).await,
    ] {
        assert_eq!(encounter(&c, E1, "V-E1").await.unwrap_err().code(), Code::PermissionDenied);
        let e = c
            .movements()
            .patient_journey(proto::PatientJourneyRequest { territorial_id: t.clone() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
    }
}
on_every_backend!(care_relationship_opens_other_stays_while_the_patient_is_in_care, care_relationship);

/// Concurrent publishers: positions are dense and the feed sees every movement once,
/// in position order (commit order equals position order).
async fn concurrent(hub: &TestHub) {
    let p = parties(hub).await;
    for i in 0..4 {
        identity(&p.dr1, E1, &format!("C{i}"), None).await;
    }
    let mut tasks = vec![];
    for i in 0..4 {
        let c = p.dr1.clone();
        tasks.push(tokio::spawn(async move {
            let moves = (0..150)
                .map(|k| {
                    let at = format!("2026-01-01T{:02}:{:02}:00Z", k / 60, k % 60);
                    mv(&format!("c{i}-{k}"), E1, &format!("C{i}"), &format!("V{i}-{k}"), T::A04RegisterOutpatient, &at)
                })
                .collect();
            publish(&c, moves).await
        }));
    }
    // A follower reads while they publish.
    let dim = p.dim.clone();
    let follower = tokio::spawn(async move {
        let req = proto::SubscribeMovementsRequest { since: 0, establishment_ids: vec![], follow: true };
        let mut s = dim.movements().subscribe_movements(req).await.unwrap().into_inner();
        let mut got = vec![];
        while got.len() < 600 {
            let m =
                tokio::time::timeout(Duration::from_secs(30), s.message()).await.expect("in time").unwrap().unwrap();
            got.push(m.cursor);
        }
        got
    });
    for t in tasks {
        assert!(t.await.unwrap().iter().all(|a| status(a).0 == Ack::Accepted));
    }
    // Audited once per committed batch, not once per movement.
    let audit = p
        .dim
        .audit()
        .query_audit(proto::QueryAuditRequest { subject: "dr-e1".into(), limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    let batches: Vec<i64> = audit
        .iter()
        .filter(|r| r.rpc.ends_with("PublishMovements"))
        .filter_map(|r| r.target_ids.iter().find_map(|t| t.strip_prefix("events:")).and_then(|n| n.parse().ok()))
        .collect();
    assert_eq!(batches.iter().sum::<i64>(), 600);
    assert!(batches.len() < 100, "{} audit records for 600 movements", batches.len());
    let seen = follower.await.unwrap();
    assert_eq!(seen, (1..=600).collect::<Vec<i64>>(), "dense positions, each once, in order");
}
on_every_backend!(concurrent_publishers_give_dense_ordered_positions, concurrent);

/// A graceful stop ends open streams: a following subscriber gets UNAVAILABLE with the
/// cursor to resume from, an open publication stream UNAVAILABLE after its last ack;
/// neither holds the drain up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_ends_open_streams_with_unavailable() {
    let hub = TestHub::start(common::Backend::Sqlite).await;
    let p = parties(&hub).await;
    identity(&p.dr1, E1, "P1", None).await;
    let req = proto::SubscribeMovementsRequest { since: 0, establishment_ids: vec![], follow: true };
    let mut live = p.dim.movements().subscribe_movements(req).await.unwrap().into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut acks = p
        .dr1
        .movements()
        .publish_movements(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(proto::PublishMovementsRequest {
        movement: Some(mv("s1", E1, "P1", "V1", T::A01Admit, "2026-01-05T08:00:00Z")),
    })
    .await
    .unwrap();
    assert_eq!(status(&acks.message().await.unwrap().unwrap()).0, Ack::Accepted);
    assert_eq!(live.message().await.unwrap().unwrap().cursor, 1);

    let stopped = tokio::spawn(hub.stop());
    let e =
        tokio::time::timeout(Duration::from_secs(10), live.message()).await.expect("subscription ended").unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.message().contains("resume from cursor 1"), "{e:?}");
    let e =
        tokio::time::timeout(Duration::from_secs(10), acks.message()).await.expect("publication ended").unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    tokio::time::timeout(Duration::from_secs(10), stopped).await.expect("the drain completes").unwrap();
    drop(tx);
}
