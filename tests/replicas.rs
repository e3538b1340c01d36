//! Several hub replicas over one PostgreSQL behave as one hub.

mod common;

use common::{fixture::*, seed_territory, Backend, TestHub};
use ghthub::{access::Role, proto};

/// A second replica on the same database and the same keys as `first`.
async fn second_replica(first: &TestHub) -> TestHub {
    let url = first.database_url.clone();
    let data_dir = first.args.data_dir.clone();
    TestHub::start_with(Backend::Postgres, move |a| {
        a.database_url = url;
        a.data_dir = data_dir;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_stays_linear_under_concurrent_replicas() {
    if common::pg_url().is_none() {
        eprintln!("DATABASE_URL not set: replica test skipped");
        return;
    }
    let a = TestHub::start(Backend::Postgres).await;
    let b = second_replica(&a).await;
    seed_territory(&a).await;
    let dim_token = a.token(Role::DimPhysician, "dim-phys", Some(G1), None, None);
    let (ca, cb) = (a.client(&dim_token).await, b.client(&dim_token).await);

    // Every designation writes audit records; half go through each replica, concurrently.
    let mut tasks = vec![];
    for i in 0..60 {
        let c = if i % 2 == 0 { ca.clone() } else { cb.clone() };
        tasks.push(tokio::spawn(async move {
            c.access()
                .designate_dim_staff(proto::DesignateDimStaffRequest {
                    staff_subject: format!("tim-{i}"),
                    mission: "coding".into(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().id)
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let listed = ca.access().list_designations(proto::ListDesignationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.designations.len(), 60, "both replicas wrote to the one database");
    // 2 GHTs + 4 establishments by the admin, 60 designations; each verification is
    // itself an audited ADMIN act, recorded before it runs.
    for (i, c) in [&ca, &cb].into_iter().enumerate() {
        let v = c.audit().verify_audit(proto::VerifyAuditRequest {}).await.unwrap().into_inner();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.records, 67 + i as i64, "{v:?}");
    }
    b.stop().await;
    a.stop().await;
}

/// A movement published through replica A reaches a subscriber following on replica B:
/// the feed is read from the database (woken by LISTEN/NOTIFY), not from process memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movement_published_on_one_replica_reaches_a_subscriber_on_another() {
    if common::pg_url().is_none() {
        eprintln!("DATABASE_URL not set: replica test skipped");
        return;
    }
    let a = TestHub::start(Backend::Postgres).await;
    let b = second_replica(&a).await;
    seed_territory(&a).await;
    let dr = a.client(&a.token(Role::Practitioner, "dr-e1", Some(G1), Some(E1), None)).await;
    let dim_b = b.client(&b.token(Role::DimPhysician, "dim-phys", Some(G1), None, None)).await;
    dr.identity()
        .upsert_identity(proto::UpsertIdentityRequest {
            identity: Some(proto::LocalIdentity {
                establishment_id: E1.into(),
                ipp: "P1".into(),
                status: proto::IdentityStatus::Provisoire as i32,
                birth_name: "Durand".into(),
                first_given_name: "Claude".into(),
                birth_date: "1960-05-06".into(),
                sex: proto::AdministrativeSex::Female as i32,
                identity_document: proto::IdentityDocument::None as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let req = proto::SubscribeMovementsRequest { since: 0, establishment_ids: vec![], follow: true };
    let mut live = dim_b.movements().subscribe_movements(req).await.unwrap().into_inner();
    for k in 0..3 {
        let m = proto::Movement {
            event_id: format!("r-{k}"),
            establishment_id: E1.into(),
            ipp: "P1".into(),
            encounter_id: format!("V{k}"),
            trigger: proto::MovementTrigger::A04RegisterOutpatient as i32,
            event_time: format!("2026-01-0{}T08:00:00Z", k + 1),
            medical_unit: "UF-URG".into(),
            encounter_class: proto::EncounterClass::Urgences as i32,
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let reqs = tokio_stream::iter(vec![proto::PublishMovementsRequest { movement: Some(m) }]);
        let mut acks = dr.movements().publish_movements(reqs).await.unwrap().into_inner();
        let ack = acks.message().await.unwrap().unwrap();
        assert_eq!(ack.status, proto::MovementAckStatus::Accepted as i32, "{ack:?}");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), live.message())
            .await
            .expect("delivered across replicas")
            .unwrap()
            .unwrap();
        assert_eq!((got.cursor, got.movement.unwrap().event_id), (ack.position, format!("r-{k}")));
        eprintln!("replica B delivered movement {k} {:?} after it was published on A", started.elapsed());
    }
    b.stop().await;
    a.stop().await;
}
