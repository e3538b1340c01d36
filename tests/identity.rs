//! Patient identities (INS) and the territorial identity index, over real gRPC.

mod common;

use common::{fixture::*, seed_territory, TestHub};
use ghthub::{
    access::Role,
    cli::client::HubClient,
    identity::ins::{with_key, OID_TEST},
    proto::{self, AdministrativeSex as Sex, IdentityDocument as Doc, IdentityStatus as St},
};
use tonic::Code;

fn ins(first13: &str) -> Option<proto::InsIdentifier> {
    Some(proto::InsIdentifier { matricule: with_key(first13).unwrap(), oid: OID_TEST.into() })
}

#[allow(clippy::too_many_arguments)]
fn person(
    est: &str,
    ipp: &str,
    status: St,
    ins13: Option<&str>,
    name: &str,
    first: &str,
    date: &str,
    sex: Sex,
    place: &str,
) -> proto::LocalIdentity {
    let doc = match status {
        St::Validee | St::Qualifiee => Doc::Cni,
        _ => Doc::None,
    };
    proto::LocalIdentity {
        establishment_id: est.into(),
        ipp: ipp.into(),
        status: status as i32,
        ins: ins13.and_then(ins),
        birth_name: name.into(),
        first_given_name: first.into(),
        birth_date: date.into(),
        sex: sex as i32,
        birth_place_code: place.into(),
        identity_document: doc as i32,
        ..Default::default()
    }
}

fn marie(est: &str, ipp: &str, status: St) -> proto::LocalIdentity {
    let i = matches!(status, St::Recuperee | St::Qualifiee).then_some("2840354395001");
    person(est, ipp, status, i, "Dupont", "Marie", "1984-03-04", Sex::Female, "54395")
}

async fn upsert(c: &HubClient, id: proto::LocalIdentity) -> Result<proto::UpsertIdentityResponse, tonic::Status> {
    c.identity()
        .upsert_identity(proto::UpsertIdentityRequest { identity: Some(id), request_id: String::new() })
        .await
        .map(|r| r.into_inner())
}

fn local(est: &str, ipp: &str) -> Option<proto::LocalIdentityRef> {
    Some(proto::LocalIdentityRef { establishment_id: est.into(), ipp: ipp.into() })
}

async fn get(c: &HubClient, est: &str, ipp: &str) -> Result<proto::GetIdentityResponse, tonic::Status> {
    c.identity()
        .get_identity(proto::GetIdentityRequest {
            key: Some(proto::get_identity_request::Key::Local(local(est, ipp).unwrap())),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get_territorial(c: &HubClient, t: &str) -> Result<proto::TerritorialIdentity, tonic::Status> {
    c.identity()
        .get_identity(proto::GetIdentityRequest {
            key: Some(proto::get_identity_request::Key::TerritorialId(t.into())),
        })
        .await
        .map(|r| r.into_inner().territorial.unwrap())
}

pub struct Parties {
    pub dr1: HubClient,
    pub dr2: HubClient,
    pub dr3: HubClient,
    pub dim: HubClient,
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

async fn ins_and_status_rules(hub: &TestHub) {
    let p = parties(hub).await;
    // Bad key, wrong length: INVALID_ARGUMENT naming the field.
    let mut bad = marie(E1, "P1", St::Qualifiee);
    bad.ins.as_mut().unwrap().matricule = "284035439500199".into();
    let e = upsert(&p.dr1, bad.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("identity.ins.matricule") && e.message().contains("bad key"), "{e:?}");
    bad.ins.as_mut().unwrap().matricule = "28403543950".into();
    let e = upsert(&p.dr1, bad).await.unwrap_err();
    assert!(e.message().contains("15 characters"), "{e:?}");
    // An INS with a status that cannot carry one: refused, not silently dropped.
    let mut prov_with_ins = marie(E1, "P1", St::Provisoire);
    prov_with_ins.ins = ins("2840354395001");
    let e = upsert(&p.dr1, prov_with_ins).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("must be absent"), "{e:?}");

    // PROVISOIRE → RECUPEREE: the INS is stored but withheld.
    let r = upsert(&p.dr1, marie(E1, "P1", St::Provisoire)).await.unwrap();
    assert!(r.created);
    let r = upsert(&p.dr1, marie(E1, "P1", St::Recuperee)).await.unwrap();
    assert!(!r.created);
    let shown = get(&p.dr1, E1, "P1").await.unwrap().identity.unwrap();
    assert_eq!(shown.status, St::Recuperee as i32);
    assert!(shown.ins.is_none() && shown.ins_withheld, "a RECUPEREE identity does not carry its INS: {shown:?}");
    // RECUPEREE → VALIDEE refused: with a document check it becomes QUALIFIEE.
    let e = upsert(&p.dr1, marie(E1, "P1", St::Validee)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    // RECUPEREE → QUALIFIEE: now the INS is carried.
    upsert(&p.dr1, marie(E1, "P1", St::Qualifiee)).await.unwrap();
    let shown = get(&p.dr1, E1, "P1").await.unwrap().identity.unwrap();
    assert_eq!(shown.ins.unwrap().matricule, with_key("2840354395001").unwrap());
    // Editing a strict trait of a qualified identity downgrades it (INS dropped).
    let mut edited = marie(E1, "P1", St::Qualifiee);
    edited.birth_name = "Dupond".into();
    let r = upsert(&p.dr1, edited).await.unwrap();
    assert!(r.downgraded && r.note.contains("VALIDEE"), "{r:?}");
    let id = r.identity.unwrap();
    assert_eq!(id.status, St::Validee as i32);
    assert!(id.ins.is_none() && !id.ins_withheld);
    // A non-strict trait of a qualified identity may change.
    upsert(&p.dr1, marie(E1, "P2", St::Qualifiee)).await.unwrap();
    let mut used = marie(E1, "P2", St::Qualifiee);
    used.used_name = "Martin".into();
    let r = upsert(&p.dr1, used).await.unwrap();
    assert!(!r.downgraded && r.identity.unwrap().status == St::Qualifiee as i32);
    // Its INS cannot be replaced while qualified.
    let mut other = marie(E1, "P2", St::Qualifiee);
    other.ins = ins("2840354395002");
    assert_eq!(upsert(&p.dr1, other).await.unwrap_err().code(), Code::FailedPrecondition);

    // Who may write: the establishment's own care side, not another's, never the DSI.
    assert_eq!(upsert(&p.dr2, marie(E1, "P9", St::Provisoire)).await.unwrap_err().code(), Code::PermissionDenied);
    let dsi = hub.client(&hub.token(Role::EstablishmentDsi, "dsi-e1", Some(G1), Some(E1), None)).await;
    assert_eq!(upsert(&dsi, marie(E1, "P9", St::Provisoire)).await.unwrap_err().code(), Code::PermissionDenied);
    // The unknown establishment is named.
    assert_eq!(upsert(&p.dr1, marie("999999999", "P9", St::Provisoire)).await.unwrap_err().code(), Code::NotFound);
    // Idempotent retries with a request id: the first answer comes back.
    let req =
        proto::UpsertIdentityRequest { identity: Some(marie(E1, "P7", St::Provisoire)), request_id: "r-7".into() };
    let a = p.dr1.identity().upsert_identity(req.clone()).await.unwrap().into_inner();
    let b = p.dr1.identity().upsert_identity(req).await.unwrap().into_inner();
    assert_eq!(a, b);
    assert!(b.created);
}
on_every_backend!(ins_key_and_status_transitions, ins_and_status_rules);

async fn auto_link(hub: &TestHub) {
    let p = parties(hub).await;
    let a = upsert(&p.dr1, marie(E1, "A1", St::Qualifiee)).await.unwrap();
    // The same qualified INS and traits in another establishment: linked automatically.
    let mut b_id = marie(E2, "B1", St::Qualifiee);
    b_id.birth_name = "DUPONT".into(); // case only: the same normalised trait
    let b = upsert(&p.dr2, b_id).await.unwrap();
    assert_eq!(b.auto_linked, vec![local(E1, "A1").unwrap()]);
    let t = a.identity.unwrap().territorial_id;
    assert_eq!(b.identity.as_ref().unwrap().territorial_id, t);
    let view = get_territorial(&p.dim, &t).await.unwrap();
    assert_eq!(view.identities.len(), 2);
    assert!(view.events.iter().any(|e| e.kind == proto::IdentityEventKind::AutoLink as i32 && e.author == "dr-e2"));
    // Without an INS (provisional), no automatic link: a candidate for a human.
    let c = upsert(&p.dr2, marie(E2, "B2", St::Provisoire)).await.unwrap();
    assert!(c.auto_linked.is_empty());
    assert_ne!(c.identity.as_ref().unwrap().territorial_id, t);
    assert!(c.candidate_matches >= 1);
    // The same INS with another birth date: an identity-vigilance alert, no link.
    let mut collide = marie(E2, "B3", St::Qualifiee);
    collide.birth_date = "1984-04-03".into();
    let d = upsert(&p.dr2, collide).await.unwrap();
    assert!(d.auto_linked.is_empty() && d.alert_ids.len() == 2, "{d:?}");
    let alerts = p
        .dim
        .identity()
        .list_vigilance_alerts(proto::ListVigilanceAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alerts.alerts.len(), 2);
    assert!(alerts
        .alerts
        .iter()
        .all(|a| a.differing_traits == vec!["birth_date".to_string()]
            && a.identities.contains(&local(E2, "B3").unwrap())));
    // A practitioner of E1 does not see E2's alert involving E2's identities only in part.
    let own = p
        .dr1
        .identity()
        .list_vigilance_alerts(proto::ListVigilanceAlertsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(own.alerts.is_empty(), "an alert naming another establishment's patient is not shown: {own:?}");
    // The practitioner sees its own identity of the territorial identity, not E2's.
    let mine = get(&p.dr1, E1, "A1").await.unwrap().territorial.unwrap();
    assert_eq!(mine.identities.len(), 1);
    assert_eq!(mine.identities[0].establishment_id, E1);
}
on_every_backend!(auto_link_on_qualified_ins_and_collision_alert, auto_link);

/// The fixed dataset of tests in src/identity/matching.rs, through the service.
async fn candidates(hub: &TestHub) {
    let p = parties(hub).await;
    let f = Sex::Female;
    upsert(&p.dr1, person(E1, "REF", St::Validee, None, "Dupont", "Marie", "1984-03-04", f, "54395")).await.unwrap();
    for (ipp, name, first, date, place) in [
        ("PHON", "Dupond", "Marie", "1984-03-04", "54395"),   // 0.97
        ("SWAP", "Dupont", "Marie", "1984-04-03", "54395"),   // 0.95
        ("PLACE", "Dupont", "Marie", "1984-03-04", "57463"),  // 0.85
        ("TWIN", "Dupont", "Claire", "1984-03-04", "54395"),  // 0.80: not a candidate
        ("OTHER", "Bernard", "Marie", "1984-03-04", "54395"), // 0.70
    ] {
        upsert(&p.dr2, person(E2, ipp, St::Validee, None, name, first, date, f, place)).await.unwrap();
    }
    let list = p
        .dim
        .identity()
        .list_candidate_matches(proto::ListCandidateMatchesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let with_ref: Vec<(String, f64)> = list
        .candidates
        .iter()
        .filter(|c| c.a == local(E1, "REF") || c.b == local(E1, "REF"))
        .map(|c| (if c.a == local(E1, "REF") { c.b.clone() } else { c.a.clone() }.unwrap().ipp, c.score))
        .collect();
    assert_eq!(
        with_ref,
        vec![("PHON".to_string(), 0.97), ("SWAP".to_string(), 0.95), ("PLACE".to_string(), 0.85)],
        "best first, hand-computed scores"
    );
    let swap = list.candidates.iter().find(|c| c.b == local(E2, "SWAP") || c.a == local(E2, "SWAP")).unwrap();
    assert!(swap.reasons.contains(&"birth_date: day/month swapped".to_string()), "{swap:?}");
    assert!(!swap.same_establishment);

    // Confirming links the two; rejecting records a decision; both leave the open list.
    let ev = p
        .dim
        .identity()
        .link_identities(proto::LinkIdentitiesRequest {
            a: local(E1, "REF"),
            b: local(E2, "PHON"),
            reason: "checked".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ev.kind, ev.author.as_str()), (proto::IdentityEventKind::Link as i32, "dim-phys"));
    let phon = get(&p.dim, E2, "PHON").await.unwrap().identity.unwrap();
    let reference = get(&p.dim, E1, "REF").await.unwrap().identity.unwrap();
    assert_eq!(phon.territorial_id, reference.territorial_id);
    let place = list.candidates.iter().find(|c| c.a == local(E2, "PLACE") || c.b == local(E2, "PLACE")).unwrap();
    let rejected = p
        .dim
        .identity()
        .reject_candidate_match(proto::RejectCandidateMatchRequest {
            candidate_id: place.id.clone(),
            reason: "another person".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.status, proto::CandidateStatus::Rejected as i32);
    assert_eq!(rejected.decided_by, "dim-phys");
    let open = p
        .dim
        .identity()
        .list_candidate_matches(proto::ListCandidateMatchesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(open.candidates.iter().all(|c| c.id != place.id && c.status == proto::CandidateStatus::Open as i32));
    let all = p
        .dim
        .identity()
        .list_candidate_matches(proto::ListCandidateMatchesRequest { include_decided: true, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(all.candidates.iter().any(|c| c.status == proto::CandidateStatus::Linked as i32));
    // Linking twice is refused; unlinking gives the identity a new territorial identity
    // and records the pair as different patients.
    let again = p
        .dim
        .identity()
        .link_identities(proto::LinkIdentitiesRequest {
            a: local(E1, "REF"),
            b: local(E2, "PHON"),
            reason: "again".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let un = p
        .dim
        .identity()
        .unlink_identity(proto::UnlinkIdentityRequest {
            identity: local(E2, "PHON"),
            reason: "homonym".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(un.kind, proto::IdentityEventKind::Unlink as i32);
    assert_ne!(un.territorial_id, reference.territorial_id);
    let e = p
        .dim
        .identity()
        .unlink_identity(proto::UnlinkIdentityRequest {
            identity: local(E2, "PHON"),
            reason: "again".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "alone in its territorial identity: {e:?}");
    // A practitioner cannot link its patient to another establishment's.
    let e = p
        .dr1
        .identity()
        .link_identities(proto::LinkIdentitiesRequest {
            a: local(E1, "REF"),
            b: local(E2, "SWAP"),
            reason: "x".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
}
on_every_backend!(candidate_scoring_link_reject_unlink, candidates);

/// Every row of the tables the index changes, as text, for exact comparisons.
async fn snapshot(db: &ghthub::db::Db) -> Vec<String> {
    use sqlx::{Column, Row};
    let mut out = vec![];
    for (table, order) in [
        ("local_identity", "establishment_id, ipp"),
        ("territorial_identity", "id"),
        ("encounter", "establishment_id, encounter_id"),
        ("candidate_match", "id"),
    ] {
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {order}")).fetch_all(&db.read).await.unwrap();
        for r in rows {
            let cells: Vec<String> = (0..r.columns().len())
                .map(|i| {
                    let name = r.columns()[i].name().to_string();
                    let v = r
                        .try_get::<Option<String>, _>(i)
                        .map(|v| format!("{v:?}"))
                        .or_else(|_| r.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
                        .or_else(|_| r.try_get::<Option<f64>, _>(i).map(|v| format!("{v:?}")))
                        .unwrap_or_else(|e| format!("undecodable {e}"));
                    format!("{name}={v}")
                })
                .collect();
            out.push(format!("{table}: {}", cells.join(" ")));
        }
    }
    out
}

async fn publish(c: &HubClient, moves: Vec<proto::Movement>) -> Vec<proto::MovementAck> {
    let n = moves.len();
    let reqs = moves.into_iter().map(|m| proto::PublishMovementsRequest { movement: Some(m) });
    let mut acks = c.movements().publish_movements(tokio_stream::iter(reqs)).await.unwrap().into_inner();
    let mut out = vec![];
    while let Some(a) = acks.message().await.unwrap() {
        out.push(a);
    }
    assert_eq!(out.len(), n);
    out
}

fn admit(id: &str, est: &str, ipp: &str, enc: &str, at: &str) -> proto::Movement {
    proto::Movement {
        event_id: id.into(),
        establishment_id: est.into(),
        ipp: ipp.into(),
        encounter_id: enc.into(),
        trigger: proto::MovementTrigger::A01Admit as i32,
        event_time: at.into(),
        medical_unit: "UF-MED".into(),
        encounter_class: proto::EncounterClass::HospitalisationComplete as i32,
        ..Default::default()
    }
}

async fn merge_unmerge(hub: &TestHub) {
    let p = parties(hub).await;
    let f = Sex::Female;
    // E1 registered the same patient twice (a typo in the name): S (qualified) and M.
    upsert(&p.dr1, marie(E1, "S", St::Qualifiee)).await.unwrap();
    upsert(&p.dr1, person(E1, "M", St::Validee, None, "Dupond", "Marie", "1984-03-04", f, "54395")).await.unwrap();
    // M was linked to E2's identity of the patient by the DIM; M has stays.
    upsert(&p.dr2, person(E2, "Q", St::Validee, None, "Dupond", "Marie", "1984-03-04", f, "54395")).await.unwrap();
    p.dim
        .identity()
        .link_identities(proto::LinkIdentitiesRequest {
            a: local(E1, "M"),
            b: local(E2, "Q"),
            reason: "same".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let acks = publish(
        &p.dr1,
        vec![
            admit("m-1", E1, "M", "V-M1", "2026-01-10T08:00:00Z"),
            admit("s-1", E1, "S", "V-S1", "2026-01-11T08:00:00Z"),
        ],
    )
    .await;
    assert!(acks.iter().all(|a| a.status == proto::MovementAckStatus::Accepted as i32), "{acks:?}");
    let before = snapshot(hub.db()).await;

    // A merge across establishments is not an A40.
    let e = p
        .dim
        .identity()
        .merge_identities(proto::MergeIdentitiesRequest {
            surviving: local(E1, "S"),
            merged: local(E2, "Q"),
            reason: "x".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("A40"), "{e:?}");

    let merge = p
        .dr1
        .identity()
        .merge_identities(proto::MergeIdentitiesRequest {
            surviving: local(E1, "S"),
            merged: local(E1, "M"),
            reason: "doublon".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((merge.kind, merge.author.as_str()), (proto::IdentityEventKind::Merge as i32, "dr-e1"));
    let s = get(&p.dim, E1, "S").await.unwrap();
    let m = get(&p.dim, E1, "M").await.unwrap().identity.unwrap();
    assert_eq!(m.merged_into_ipp, "S");
    let t = s.identity.unwrap().territorial_id;
    let view = s.territorial.unwrap();
    assert_eq!(view.id, t);
    assert!(
        view.identities.iter().any(|l| l.establishment_id == E2 && l.ipp == "Q"),
        "E2's identity followed: {view:?}"
    );
    let enc = p
        .dr1
        .movements()
        .get_encounter(proto::GetEncounterRequest { establishment_id: E1.into(), encounter_id: "V-M1".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((enc.ipp.as_str(), enc.territorial_id.as_str()), ("S", t.as_str()), "M's stay moved to S");
    // The merged IPP no longer takes movements or updates.
    let a = publish(&p.dr1, vec![admit("m-2", E1, "M", "V-M2", "2026-02-01T08:00:00Z")]).await;
    assert_eq!(a[0].code, Code::FailedPrecondition as i32);
    assert!(a[0].message.contains("merged"), "{a:?}");
    assert_eq!(upsert(&p.dr1, marie(E1, "M", St::Provisoire)).await.unwrap_err().code(), Code::FailedPrecondition);

    // Unmerge restores the previous state exactly.
    let un = p
        .dr1
        .identity()
        .unmerge_identities(proto::UnmergeIdentitiesRequest {
            merge_event_id: merge.id.clone(),
            reason: "not a doublon".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((un.kind, un.related_event_id.as_str()), (proto::IdentityEventKind::Unmerge as i32, merge.id.as_str()));
    let after = snapshot(hub.db()).await;
    assert_eq!(before, after, "merge then unmerge restores every row");
    let again = p
        .dr1
        .identity()
        .unmerge_identities(proto::UnmergeIdentitiesRequest {
            merge_event_id: merge.id.clone(),
            reason: "x".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(again.code() == Code::FailedPrecondition && again.message().contains("already undone"), "{again:?}");
    let history = get(&p.dim, E1, "S").await.unwrap().territorial.unwrap().events;
    assert!(history.iter().any(|e| e.id == merge.id && e.related_event_id == un.id), "{history:?}");

    // When a row the merge changed has changed since, unmerge refuses and changes nothing.
    let merge2 = p
        .dim
        .identity()
        .merge_identities(proto::MergeIdentitiesRequest {
            surviving: local(E1, "S"),
            merged: local(E1, "M"),
            reason: "doublon".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    p.dim
        .identity()
        .unlink_identity(proto::UnlinkIdentityRequest {
            identity: local(E2, "Q"),
            reason: "not her".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mid = snapshot(hub.db()).await;
    let e = p
        .dim
        .identity()
        .unmerge_identities(proto::UnmergeIdentitiesRequest {
            merge_event_id: merge2.id,
            reason: "x".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(e.code() == Code::FailedPrecondition && e.message().contains("exactly"), "{e:?}");
    assert_eq!(mid, snapshot(hub.db()).await, "a refused unmerge changes nothing");
}
on_every_backend!(merge_then_unmerge_restores_exactly, merge_unmerge);

/// Undoing a merge out of order is refused when a later merge rests on it. M and N are
/// two IPPs of one patient at E1, both linked to E2's Q; M is merged into S (the group
/// joins S's territorial identity), then N into S. Undoing the first merge alone would
/// move N back to the old group, away from S, the IPP it is merged into.
async fn unmerge_out_of_order(hub: &TestHub) {
    let p = parties(hub).await;
    let f = Sex::Female;
    let dup = |ipp: &str| person(E1, ipp, St::Validee, None, "Dupond", "Marie", "1984-03-04", f, "54395");
    upsert(&p.dr1, marie(E1, "S", St::Qualifiee)).await.unwrap();
    upsert(&p.dr1, dup("M")).await.unwrap();
    upsert(&p.dr1, dup("N")).await.unwrap();
    upsert(&p.dr2, person(E2, "Q", St::Validee, None, "Dupond", "Marie", "1984-03-04", f, "54395")).await.unwrap();
    for ipp in ["M", "N"] {
        p.dim
            .identity()
            .link_identities(proto::LinkIdentitiesRequest {
                a: local(E2, "Q"),
                b: local(E1, ipp),
                reason: "same".into(),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
    let merge = |m: &'static str| {
        let dr1 = p.dr1.clone();
        async move {
            dr1.identity()
                .merge_identities(proto::MergeIdentitiesRequest {
                    surviving: local(E1, "S"),
                    merged: local(E1, m),
                    reason: "doublon".into(),
                    request_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = merge("M").await;
    let second = merge("N").await;
    let unmerge = |id: String| {
        let dr1 = p.dr1.clone();
        async move {
            dr1.identity()
                .unmerge_identities(proto::UnmergeIdentitiesRequest {
                    merge_event_id: id,
                    reason: "not a doublon".into(),
                    request_id: String::new(),
                })
                .await
        }
    };
    let before = snapshot(hub.db()).await;
    let e = unmerge(first.id.clone()).await.unwrap_err();
    assert!(e.code() == Code::FailedPrecondition && e.message().contains(&format!("{E1}:N")), "{e:?}");
    assert_eq!(before, snapshot(hub.db()).await, "a refused unmerge changes nothing");
    let t = |v: &Option<proto::GetIdentityResponse>| {
        v.as_ref().and_then(|r| r.identity.as_ref()).map(|i| i.territorial_id.clone())
    };
    // In order, both undo; the identities are back in the linked group, apart from S.
    unmerge(second.id).await.unwrap();
    unmerge(first.id).await.unwrap();
    let (s, n, q) = (get(&p.dim, E1, "S").await.ok(), get(&p.dim, E1, "N").await.ok(), get(&p.dim, E2, "Q").await.ok());
    assert_eq!(t(&n), t(&q));
    assert_ne!(t(&n), t(&s));
    assert_eq!(n.and_then(|r| r.identity).map(|i| i.merged_into_ipp), Some(String::new()));
}
on_every_backend!(an_unmerge_out_of_order_is_refused, unmerge_out_of_order);

async fn search(hub: &TestHub) {
    let p = parties(hub).await;
    upsert(&p.dr1, marie(E1, "S1", St::Qualifiee)).await.unwrap();
    let f = Sex::Female;
    upsert(&p.dr2, person(E2, "S2", St::Validee, None, "Dupond", "Marie", "1984-04-03", f, "54395")).await.unwrap();
    upsert(&p.dr3, person(E3, "S3", St::Validee, None, "Dupont", "Marie", "1984-03-04", f, "54395")).await.unwrap();
    for i in 0..30 {
        upsert(
            &p.dr1,
            person(E1, &format!("X{i}"), St::Provisoire, None, "Martin", "Paul", "1950-01-01", Sex::Male, ""),
        )
        .await
        .unwrap();
    }
    let traits = |name: &str, first: &str, date: &str| {
        proto::search_identities_request::Query::Traits(proto::IdentityTraitsQuery {
            birth_name: name.into(),
            first_given_name: first.into(),
            birth_date: date.into(),
            ..Default::default()
        })
    };
    let search = |c: &HubClient, q, limit| {
        let mut c = c.identity();
        async move {
            c.search_identities(proto::SearchIdentitiesRequest { query: Some(q), limit }).await.map(|r| r.into_inner())
        }
    };
    // Phonetic name and a day/month swap still find the patient, exact first; never the associé's.
    let r = search(&p.dim, traits("DUPONT", "marie", "1984-03-04"), 0).await.unwrap();
    let got: Vec<(&str, &str)> = r
        .hits
        .iter()
        .map(|h| {
            let i = h.identity.as_ref().unwrap();
            (i.establishment_id.as_str(), i.ipp.as_str())
        })
        .collect();
    assert_eq!(got, vec![(E1, "S1"), (E2, "S2")], "{r:?}");
    assert_eq!(r.hits[0].score, 1.0);
    // Phonetic name (0.9) and swapped date (0.8) on the fields given: (0.27 + 0.20 + 0.20) / 0.75.
    assert_eq!(r.hits[1].score, 0.893);
    // By INS: the qualified identity only.
    let by_ins = proto::search_identities_request::Query::Ins(ins("2840354395001").unwrap());
    let r = search(&p.dim, by_ins.clone(), 0).await.unwrap();
    assert_eq!(r.hits.len(), 1);
    assert_eq!(r.hits[0].identity.as_ref().unwrap().ipp, "S1");
    // Limited: at most 50, default 20, `truncated` says more matched.
    assert_eq!(search(&p.dim, traits("Martin", "", ""), 51).await.unwrap_err().code(), Code::InvalidArgument);
    let r = search(&p.dim, traits("Martin", "", ""), 0).await.unwrap();
    assert_eq!((r.hits.len(), r.truncated), (20, true));
    let r = search(&p.dim, traits("Martin", "Paul", ""), 5).await.unwrap();
    assert_eq!((r.hits.len(), r.truncated), (5, true));
    // A practitioner searches its own establishment only.
    let r = search(&p.dr2, traits("Dupont", "Marie", "1984-03-04"), 0).await.unwrap();
    assert!(r.hits.iter().all(|h| h.identity.as_ref().unwrap().establishment_id == E2) && r.hits.len() == 1);
    // The DSIs and the ARS never search identities.
    let dsi = hub.client(&hub.token(Role::GhtDsi, "dsi-ght", Some(G1), None, None)).await;
    assert_eq!(search(&dsi, by_ins.clone(), 0).await.unwrap_err().code(), Code::PermissionDenied);
    let ars = hub.client(&hub.token(Role::Ars, "ars", None, None, Some(R1))).await;
    assert_eq!(search(&ars, by_ins.clone(), 0).await.unwrap_err().code(), Code::PermissionDenied);
    // The audit trail names what the DIM's search returned.
    let records = p
        .dim
        .audit()
        .query_audit(proto::QueryAuditRequest { target_id: format!("{E2}:S2"), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(
        records.iter().any(|r| r.subject == "dim-phys" && r.rpc.ends_with("SearchIdentities") && r.decision == "ALLOW"),
        "{records:?}"
    );
    let refused = p
        .dim
        .audit()
        .query_audit(proto::QueryAuditRequest { subject: "dsi-ght".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .records;
    assert!(refused.iter().any(|r| r.decision == "DENY" && r.rpc.ends_with("SearchIdentities")));
}
on_every_backend!(search_is_limited_scoped_and_audited, search);

async fn facts_and_scope(hub: &TestHub) {
    let p = parties(hub).await;
    let facts = ghthub::facts::load(hub.db(), G1).await.unwrap();
    assert!(facts.establishments.iter().all(|e| !e.publishes_identities));
    assert_eq!(facts.identities_linked_across_parties, 0);
    // E1 and E2 (parties) share one patient; E1 and E3 (associé) another.
    upsert(&p.dr1, marie(E1, "A", St::Qualifiee)).await.unwrap();
    upsert(&p.dr2, marie(E2, "B", St::Qualifiee)).await.unwrap();
    let paul = |est: &str, ipp: &str| {
        person(est, ipp, St::Qualifiee, Some("1500175056001"), "Martin", "Paul", "1950-01-01", Sex::Male, "75056")
    };
    upsert(&p.dr1, paul(E1, "C")).await.unwrap();
    let e3 = upsert(&p.dr3, paul(E3, "D")).await.unwrap();
    let facts = ghthub::facts::load(hub.db(), G1).await.unwrap();
    let publishes =
        |id: &str| facts.establishments.iter().find(|e| e.establishment_id == id).unwrap().publishes_identities;
    assert!(publishes(E1) && publishes(E2) && publishes(E3));
    assert_eq!(facts.identities_linked_across_parties, 1, "only the E1+E2 patient spans two parties");

    // The DIM physician sees the parties' identities, not the associé's.
    assert_eq!(get(&p.dim, E3, "D").await.unwrap_err().code(), Code::PermissionDenied);
    let t = e3.identity.unwrap().territorial_id;
    let view = get_territorial(&p.dim, &t).await.unwrap();
    assert_eq!(view.identities.iter().map(|l| l.establishment_id.as_str()).collect::<Vec<_>>(), vec![E1]);
    // Another GHT's DIM sees nothing of it.
    let other = hub.client(&hub.token(Role::DimPhysician, "dim-g2", Some(G2), None, None)).await;
    assert_eq!(get_territorial(&other, &t).await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(get(&other, E1, "C").await.unwrap_err().code(), Code::PermissionDenied);
}
on_every_backend!(facts_for_indicators_and_dim_scope, facts_and_scope);
