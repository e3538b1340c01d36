//! The `ghthub identity` / `ghthub movements` command functions and the identity and
//! movement part of `ghthub demo seed`, against a real hub.

mod common;

use std::{io::Write, path::PathBuf, time::Duration};

use common::TestHub;
use ghthub::{
    access::Role,
    cli::{
        client::HubClient,
        identity::read_identity_file,
        movements::{follow, publish_file, FollowArgs, MovementLine},
    },
    demo::{SeedArgs, SeedPart, DEMO_GHT},
    proto,
};

/// The establishment of the example files (CH de Lunéville in the demo registry).
const LUNEVILLE: &str = "540099016";

fn example(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

fn seed_args(hub: &TestHub, only: SeedPart, patients: u32) -> SeedArgs {
    SeedArgs {
        only,
        parties: 5,
        seed: 2017,
        patients,
        signing_key: hub.args.dev_paths().token_signing_key(),
        issuer: hub.args.token_issuer.clone(),
        audience: hub.args.token_audience.clone(),
    }
}

async fn practitioner(hub: &TestHub, est: &str) -> HubClient {
    hub.client(&hub.token(Role::Practitioner, &format!("dr@{est}"), Some(DEMO_GHT), Some(est), None)).await
}

async fn dim(hub: &TestHub) -> HubClient {
    hub.client(&hub.token(Role::DimPhysician, "dim@ght", Some(DEMO_GHT), None, None)).await
}

/// The demo registry, and the example identity published by CH de Lunéville.
async fn registry_and_example_identity(hub: &TestHub) -> HubClient {
    ghthub::demo::seed(seed_args(hub, SeedPart::Registry, 0), &hub.admin().await).await.expect("registry");
    let dr = practitioner(hub, LUNEVILLE).await;
    let identity = read_identity_file(&example("identity-ch-luneville.json")).expect("example identity");
    let r = dr
        .identity()
        .upsert_identity(proto::UpsertIdentityRequest { identity: Some(identity), request_id: String::new() })
        .await
        .expect("upsert the example identity")
        .into_inner();
    assert_eq!(r.identity.unwrap().status, proto::IdentityStatus::Qualifiee as i32);
    dr
}

/// The example JSONL publishes whole; a second publish is all DUPLICATE; a file with
/// bad lines reports each with its line number, and the good lines are stored.
async fn publish_example_file(hub: &TestHub) {
    let dr = registry_and_example_identity(hub).await;
    let file = example("movements-ch-luneville.jsonl");
    let lines = std::fs::read_to_string(&file).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
    let s = publish_file(&dr, &file, false).await.expect("publish");
    assert_eq!((s.sent, s.accepted, s.duplicate), (lines, lines, 0), "{:?}", s.refused);
    assert!(s.refused.is_empty());
    let again = publish_file(&dr, &file, false).await.expect("publish again");
    assert_eq!((again.accepted, again.duplicate, again.rejected()), (0, lines, 0));

    // The séjour as the file tells it: the cancelled transfer does not count.
    let e = dr
        .movements()
        .get_encounter(proto::GetEncounterRequest {
            establishment_id: LUNEVILLE.into(),
            encounter_id: "V26001234".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.status, proto::EncounterStatus::Discharged as i32);
    assert_eq!(e.medical_unit, "UF2310", "the transfer back to UF2110 was cancelled (A12)");
    assert_eq!(e.movements.len(), 7);
    let cancelled = e.movements.iter().find(|m| m.event_id == "LUN-MV-26-000103").unwrap();
    assert_eq!(cancelled.cancelled_by, "LUN-MV-26-000104");

    // Bad lines among good ones: not JSON (line 2), a trigger the CLI does not know
    // (line 4), one the hub refuses (A08, line 5), a patient not published (line 6).
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mv = |id: &str, ipp: &str, enc: &str, trigger: &str, at: &str| {
        let l = MovementLine {
            event_id: id.into(),
            establishment_id: LUNEVILLE.into(),
            ipp: ipp.into(),
            encounter_id: enc.into(),
            trigger: trigger.into(),
            event_time: at.into(),
            medical_unit: "UF2001".into(),
            class: if trigger == "A04" { "URGENCES".into() } else { String::new() },
            ..Default::default()
        };
        serde_json::to_string(&l).unwrap()
    };
    let mut f = std::fs::File::create(&bad).unwrap();
    writeln!(f, "{}", mv("T-1", "0160004211", "VT-1", "A04", "2026-05-01T10:00:00+02:00")).unwrap();
    writeln!(f, "{{\"event_id\": \"T-2\", ").unwrap();
    writeln!(f).unwrap();
    writeln!(f, "{}", mv("T-3", "0160004211", "VT-1", "A99", "2026-05-01T11:00:00+02:00")).unwrap();
    writeln!(f, "{}", mv("T-4", "0160004211", "VT-1", "A08", "2026-05-01T11:00:00+02:00")).unwrap();
    writeln!(f, "{}", mv("T-5", "UNKNOWN-IPP", "VT-2", "A04", "2026-05-01T11:00:00+02:00")).unwrap();
    writeln!(f, "{}", mv("T-6", "0160004211", "VT-1", "A03", "2026-05-01T13:00:00+02:00")).unwrap();
    drop(f);
    let s = publish_file(&dr, &bad, false).await.expect("publish with bad lines");
    assert_eq!((s.sent, s.accepted, s.duplicate), (4, 2, 0));
    let refused: Vec<(usize, &str)> = s.refused.iter().map(|r| (r.line, r.code.as_str())).collect();
    assert_eq!(
        refused,
        vec![(2, "INVALID_LINE"), (4, "INVALID_LINE"), (5, "InvalidArgument"), (6, "FailedPrecondition")],
        "{:?}",
        s.refused
    );
    assert!(s.refused[1].message.contains("trigger"), "{:?}", s.refused[1]);
    assert!(s.refused[2].message.contains("A08"), "{:?}", s.refused[2]);
    assert!(s.refused[3].message.contains("UNKNOWN-IPP"), "{:?}", s.refused[3]);
}
on_every_backend!(publish_example, publish_example_file);

/// A writer handing each line to the test as it is written.
struct Lines(tokio::sync::mpsc::UnboundedSender<String>, Vec<u8>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        while let Some(i) = self.1.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.1.drain(..=i).collect();
            let _ = self.0.send(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `follow` from a cursor gives exactly what came after it; following, it prints new
/// movements as they are committed and stops when asked.
async fn follow_resumes_from_a_cursor(hub: &TestHub) {
    let dr = registry_and_example_identity(hub).await;
    publish_file(&dr, &example("movements-ch-luneville.jsonl"), false).await.unwrap();
    let dim = dim(hub).await;
    let read = |since: i64| {
        let dim = dim.clone();
        async move {
            let mut out = vec![];
            let args = FollowArgs { since, establishments: vec![], follow: false, json: true };
            let (cursor, n) = follow(&dim, &args, &mut out, std::future::pending()).await.expect("follow");
            let lines: Vec<MovementLine> =
                String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(lines.len(), n);
            (cursor, lines)
        }
    };
    let (end, all) = read(0).await;
    assert_eq!(all.len(), 9);
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor), "commit order");
    assert_eq!(end, all[8].cursor);
    assert!(all.iter().all(|l| !l.territorial_id.is_empty() && l.recorded_by == format!("dr@{LUNEVILLE}")));
    let (end2, tail) = read(all[3].cursor).await;
    assert_eq!(end2, end);
    assert_eq!(tail, all[4..].to_vec(), "resuming from a cursor gives exactly what follows it");
    let (_, nothing) = read(end).await;
    assert!(nothing.is_empty());

    // Following: a movement committed later arrives, then the command stops on request.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let dim = dim.clone();
        tokio::spawn(async move {
            let args = FollowArgs { since: end, establishments: vec![LUNEVILLE.into()], follow: true, json: false };
            let mut w = Lines(tx, vec![]);
            follow(&dim, &args, &mut w, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = proto::Movement {
        event_id: "LUN-MV-26-000301".into(),
        establishment_id: LUNEVILLE.into(),
        ipp: "0160004211".into(),
        encounter_id: "V26003001".into(),
        trigger: proto::MovementTrigger::A04RegisterOutpatient as i32,
        event_time: "2026-05-20T08:30:00+02:00".into(),
        medical_unit: "UF2001".into(),
        encounter_class: proto::EncounterClass::Urgences as i32,
        ..Default::default()
    };
    let mut acks = dr
        .movements()
        .publish_movements(tokio_stream::iter([proto::PublishMovementsRequest { movement: Some(later) }]))
        .await
        .unwrap()
        .into_inner();
    let ack = acks.message().await.unwrap().unwrap();
    assert_eq!(ack.status, proto::MovementAckStatus::Accepted as i32, "{ack:?}");
    let line = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered").unwrap();
    assert!(line.contains("LUN-MV-26-000301") && line.contains("A04"), "{line}");
    assert!(line.trim_start().starts_with(&ack.position.to_string()), "{line}");
    stop_tx.send(()).unwrap();
    let (cursor, n) = tokio::time::timeout(Duration::from_secs(10), follower).await.expect("stops").unwrap().unwrap();
    assert_eq!((cursor, n), (ack.position, 1));
}
on_every_backend!(follow_from_cursor, follow_resumes_from_a_cursor);

/// Every movement the DIM physician may see, and the candidates and alerts.
async fn snapshot(dim: &HubClient) -> (Vec<proto::Movement>, Vec<proto::CandidateMatch>, Vec<proto::VigilanceAlert>) {
    let mut out = vec![];
    let args = FollowArgs { since: 0, establishments: vec![], follow: false, json: true };
    follow(dim, &args, &mut out, std::future::pending()).await.expect("follow");
    let moves: Vec<proto::Movement> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let m: MovementLine = serde_json::from_str(l).unwrap();
            proto::Movement { position: m.position, territorial_id: m.territorial_id.clone(), ..m.to_proto().unwrap() }
        })
        .collect();
    let candidates = dim
        .identity()
        .list_candidate_matches(proto::ListCandidateMatchesRequest {
            include_decided: true,
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .candidates;
    let alerts = dim
        .identity()
        .list_vigilance_alerts(proto::ListVigilanceAlertsRequest { limit: 1000, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    (moves, candidates, alerts)
}

/// `ghthub demo seed --only movements`: identities linked across establishments,
/// candidate matches (duplicates to merge among them), an INS collision alert, a year
/// of movements of every kind; a second run adds nothing.
async fn demo_seed_identities_and_movements(hub: &TestHub) {
    let admin = hub.admin().await;
    let args = seed_args(hub, SeedPart::Movements, 300);
    let started = std::time::Instant::now();
    ghthub::demo::seed(args.clone(), &admin).await.expect("first seed");
    eprintln!("demo seed of 300 patients: {:.1}s on {:?}", started.elapsed().as_secs_f64(), hub.backend);
    let dim = dim(hub).await;
    let (moves, candidates, alerts) = snapshot(&dim).await;

    assert!(moves.len() > 600, "a year of activity: {} movements", moves.len());
    let triggers: std::collections::HashSet<i32> = moves.iter().map(|m| m.trigger).collect();
    use proto::MovementTrigger as T;
    for t in [T::A01Admit, T::A02Transfer, T::A03Discharge, T::A04RegisterOutpatient, T::A21Leave, T::A22Return] {
        assert!(triggers.contains(&(t as i32)), "{t:?} among the demo movements");
    }
    assert!(
        [T::A11CancelAdmit, T::A12CancelTransfer, T::A13CancelDischarge]
            .iter()
            .any(|t| triggers.contains(&(*t as i32))),
        "some cancellations"
    );
    assert!(moves.iter().any(|m| !m.destination_establishment_id.is_empty()), "transfers between establishments");
    let classes: std::collections::HashSet<i32> = moves.iter().map(|m| m.encounter_class).filter(|c| *c != 0).collect();
    assert!(classes.len() >= 4, "classes {classes:?}");

    assert!(
        candidates.iter().any(|c| c.same_establishment),
        "a duplicate to merge among {} candidates",
        candidates.len()
    );
    assert!(candidates.iter().all(|c| c.score >= 0.85));
    assert!(!alerts.is_empty(), "an INS collision");
    assert!(alerts[0].differing_traits.iter().any(|t| t == "birth_date"), "{:?}", alerts[0]);

    // A patient linked automatically across establishments.
    let mut linked = None;
    let mut seen = std::collections::HashSet::new();
    for m in &moves {
        if !seen.insert(m.territorial_id.clone()) {
            continue;
        }
        let t = dim
            .identity()
            .get_identity(proto::GetIdentityRequest {
                key: Some(proto::get_identity_request::Key::TerritorialId(m.territorial_id.clone())),
            })
            .await
            .unwrap()
            .into_inner()
            .territorial
            .unwrap();
        if t.events.iter().any(|e| e.kind == proto::IdentityEventKind::AutoLink as i32) {
            assert!(t.identities.len() >= 2);
            linked = Some(t);
            break;
        }
    }
    let linked = linked.expect("a patient linked automatically on the INS");
    let mut ests: Vec<&str> = linked.identities.iter().map(|i| i.establishment_id.as_str()).collect();
    ests.dedup();
    assert!(ests.len() >= 2, "{ests:?}");

    // Again: nothing new.
    ghthub::demo::seed(args, &admin).await.expect("second seed");
    let (moves2, candidates2, alerts2) = snapshot(&dim).await;
    assert_eq!(moves2.len(), moves.len(), "no movement stored twice");
    assert_eq!(candidates2, candidates);
    assert_eq!(alerts2, alerts);
    let again = dim
        .identity()
        .get_identity(proto::GetIdentityRequest {
            key: Some(proto::get_identity_request::Key::TerritorialId(linked.id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .territorial
        .unwrap();
    assert_eq!(again.identities, linked.identities);
    assert_eq!(again.events, linked.events);
}
on_every_backend!(demo_seed, demo_seed_identities_and_movements);
