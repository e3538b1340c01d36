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
