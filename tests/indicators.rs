//! Convergence indicators and HN prerequisites over real TLS gRPC, on every back-end:
//! catalogue versions, type checks, the workflow by role, immutability and history,
//! computed values, region isolation, incremental pulls under concurrent writers.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Datelike;
use common::{fixture::*, seed_territory, TestHub};
use futures::StreamExt;
use ghthub::{
    access::Role,
    cli::client::Authed,
    indicators::catalogue::EMBEDDED,
    proto::{self, indicators_client::IndicatorsClient, value::Kind},
};
use tonic::Code;

type Client = IndicatorsClient<Authed>;

async fn as_role(hub: &TestHub, role: Role, ght: Option<&str>, est: Option<&str>, region: Option<&str>) -> Client {
    let sub = format!("{}-{}", role.as_str().to_lowercase(), ght.or(region).unwrap_or("hub"));
    hub.client(&hub.token(role, &sub, ght, est, region)).await.indicators()
}

async fn ght_dsi(hub: &TestHub, ght: &str) -> Client {
    as_role(hub, Role::GhtDsi, Some(ght), None, None).await
}

async fn ars(hub: &TestHub, region: &str) -> Client {
    as_role(hub, Role::Ars, None, None, Some(region)).await
}

async fn admin(hub: &TestHub) -> Client {
    hub.admin().await.indicators()
}

fn val(k: Kind) -> Option<proto::Value> {
    Some(proto::Value { kind: Some(k) })
}

fn decl(ght: &str, est: &str, code: &str, period: &str, k: Kind) -> proto::DeclareValueRequest {
    proto::DeclareValueRequest {
        ght_id: ght.into(),
        establishment_id: est.into(),
        indicator_code: code.into(),
        period: period.into(),
        value: val(k),
        evidence_note: format!("evidence for {code}"),
        ..Default::default()
    }
}

async fn declare(
    c: &mut Client,
    ght: &str,
    code: &str,
    period: &str,
    k: Kind,
) -> Result<proto::IndicatorValue, tonic::Status> {
    c.declare_value(decl(ght, "", code, period, k)).await.map(|r| r.into_inner())
}

async fn submit(
    c: &mut Client,
    ght: &str,
    est: &str,
    period: &str,
) -> Result<proto::SubmitPeriodResponse, tonic::Status> {
    c.submit_period(proto::SubmitPeriodRequest {
        ght_id: ght.into(),
        establishment_id: est.into(),
        period: period.into(),
        request_id: String::new(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn review(
    c: &mut Client,
    id: &str,
    d: proto::ReviewDecision,
    comment: &str,
) -> Result<proto::IndicatorValue, tonic::Status> {
    c.review_value(proto::ReviewValueRequest {
        value_id: id.into(),
        decision: d as i32,
        comment: comment.into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

async fn history(c: &mut Client, ght: &str, est: &str, code: &str, period: &str) -> proto::HistoryResponse {
    c.history(proto::HistoryRequest {
        ght_id: ght.into(),
        establishment_id: est.into(),
        indicator_code: code.into(),
        period: period.into(),
    })
    .await
    .expect("history")
    .into_inner()
}

async fn scorecard(c: &mut Client, ght: &str, est: &str, period: &str) -> Result<proto::Scorecard, tonic::Status> {
    c.get_ght_scorecard(proto::GetGhtScorecardRequest {
        ght_id: ght.into(),
        period: period.into(),
        establishment_id: est.into(),
    })
    .await
    .map(|r| r.into_inner())
}

fn row<'a>(card: &'a proto::Scorecard, code: &str) -> &'a proto::ScorecardRow {
    card.rows.iter().find(|r| r.indicator.as_ref().is_some_and(|i| i.code == code)).expect("row")
}

/// Every message of a pull.
async fn pull_messages(
    c: &mut Client,
    req: proto::PullRegionRequest,
) -> Result<Vec<proto::PullRegionResponse>, tonic::Status> {
    let mut stream = c.pull_region(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.next().await {
        out.push(m?);
    }
    Ok(out)
}

/// The values of a pull and its final cursor.
async fn pull(c: &mut Client, since: i64) -> (Vec<proto::IndicatorValue>, i64) {
    let msgs = pull_messages(c, proto::PullRegionRequest { since, ..Default::default() }).await.expect("pull");
    let cursor = msgs.last().expect("at least one message").cursor;
    (msgs.into_iter().flat_map(|m| m.values).collect(), cursor)
}

fn code_of<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => (s.code(), s.message().to_string()),
    }
}

fn current_year() -> i32 {
    chrono::Utc::now().year()
}

async fn catalogue_versions_and_malformed_files(hub: &TestHub) {
    seed_territory(hub).await;
    // Any party reads the catalogue: 18 provisional indicators in 5 domains.
    let mut est = as_role(hub, Role::EstablishmentDsi, Some(G1), Some(E2), None).await;
    let r = est.list_catalogue(proto::ListCatalogueRequest::default()).await.unwrap().into_inner();
    let cat = r.catalogue.unwrap();
    assert_eq!((cat.id.as_str(), cat.version.as_str()), ("ght-convergence", "2026.1-provisional"));
    assert_eq!(cat.indicators.len(), 18);
    assert!(cat.indicators.iter().all(|d| d.provisional));
    assert_eq!(cat.domains.len(), 5);
    assert_eq!(cat.loaded_by, "ghthub");
    assert_eq!(r.versions.len(), 1);
    assert!(r.versions[0].current);
    let hn = est
        .list_catalogue(proto::ListCatalogueRequest { catalogue: "hn-prerequisites".into(), version: String::new() })
        .await
        .unwrap()
        .into_inner()
        .catalogue
        .unwrap();
    assert_eq!(hn.indicators.len(), 10);
    assert_eq!(
        code_of(
            est.list_catalogue(proto::ListCatalogueRequest { catalogue: "nope".into(), ..Default::default() }).await
        )
        .0,
        Code::NotFound
    );

    let mut dsi = ght_dsi(hub, G1).await;
    let old = declare(&mut dsi, G1, "CONV-1.3", "2025", Kind::Boolean(true)).await.unwrap();
    assert_eq!(old.catalogue_version, "2026.1-provisional");

    // Only the operator loads catalogues.
    let v2 = EMBEDDED[0]
        .replace("version: \"2026.1-provisional\"", "version: \"2026.2-test\"")
        .replace("label_fr: \"DSI de GHT nommé\"", "label_fr: \"Directeur des SI du GHT nommé\"");
    let (c, m) = code_of(dsi.load_catalogue(proto::LoadCatalogueRequest { yaml: v2.clone() }).await);
    assert_eq!(c, Code::PermissionDenied, "{m}");

    // Malformed files are refused with the entry's code, and nothing changes.
    let mut adm = admin(hub).await;
    let entry = "  - code: CONV-1.1\n    domain: 5\n    label_fr: x\n    label_en: x\n    definition: x\n    \
                 type: BOOLEAN\n    obtained: DECLARED\n    provisional: true\n    scope: GHT\n";
    let dup = format!("{v2}\n{entry}");
    let (c, m) = code_of(adm.load_catalogue(proto::LoadCatalogueRequest { yaml: dup }).await);
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("CONV-1.1") && m.contains("duplicate"), "{m}");
    let unknown_type = format!("{v2}\n{}", entry.replace("CONV-1.1", "CONV-5.9").replace("BOOLEAN", "RATIO"));
    let (c, m) = code_of(adm.load_catalogue(proto::LoadCatalogueRequest { yaml: unknown_type }).await);
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("CONV-5.9") && m.contains("unknown value type 'RATIO'"), "{m}");
    let missing = format!("{v2}\n{}", entry.replace("CONV-1.1", "CONV-5.8").replace("    label_en: x\n", ""));
    let (c, m) = code_of(adm.load_catalogue(proto::LoadCatalogueRequest { yaml: missing }).await);
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("CONV-5.8") && m.contains("label_en"), "{m}");
    let r = adm.list_catalogue(proto::ListCatalogueRequest::default()).await.unwrap().into_inner();
    assert_eq!(r.versions.len(), 1);

    // A new version becomes current; stored values keep the version they were declared under.
    let loaded = adm.load_catalogue(proto::LoadCatalogueRequest { yaml: v2.clone() }).await.unwrap().into_inner();
    assert_eq!((loaded.version.as_str(), loaded.indicators, loaded.already_loaded), ("2026.2-test", 18, false));
    let again = adm.load_catalogue(proto::LoadCatalogueRequest { yaml: v2.clone() }).await.unwrap().into_inner();
    assert!(again.already_loaded);
    let clash = v2.replace("Directeur des SI du GHT nommé", "Autre libellé");
    assert_eq!(code_of(adm.load_catalogue(proto::LoadCatalogueRequest { yaml: clash }).await).0, Code::AlreadyExists);

    let r = est.list_catalogue(proto::ListCatalogueRequest::default()).await.unwrap().into_inner();
    let cat = r.catalogue.unwrap();
    assert_eq!(cat.version, "2026.2-test");
    assert_eq!(cat.indicators.iter().find(|d| d.code == "CONV-2.1").unwrap().label_fr, "Directeur des SI du GHT nommé");
    assert_eq!(
        r.versions.iter().map(|v| (v.version.as_str(), v.current)).collect::<Vec<_>>(),
        vec![("2026.1-provisional", false), ("2026.2-test", true)]
    );
    let old_cat = est
        .list_catalogue(proto::ListCatalogueRequest { catalogue: String::new(), version: "2026.1-provisional".into() })
        .await
        .unwrap()
        .into_inner()
        .catalogue
        .unwrap();
    assert_eq!(old_cat.indicators.iter().find(|d| d.code == "CONV-2.1").unwrap().label_fr, "DSI de GHT nommé");

    let h = history(&mut dsi, G1, "", "CONV-1.3", "2025").await;
    assert_eq!(h.revisions[0].catalogue_version, "2026.1-provisional");
    let new = declare(&mut dsi, G1, "CONV-1.4", "2025", Kind::Status("IN_PROGRESS".into())).await.unwrap();
    assert_eq!(new.catalogue_version, "2026.2-test");
    let card = scorecard(&mut dsi, G1, "", "2025").await.unwrap();
    assert_eq!(card.catalogue_version, "2026.2-test");
    assert_eq!(row(&card, "CONV-1.3").declared.as_ref().unwrap().catalogue_version, "2026.1-provisional");
}
on_every_backend!(catalogue_versions, catalogue_versions_and_malformed_files);

async fn values_are_checked_against_the_catalogue(hub: &TestHub) {
    seed_territory(hub).await;
    let mut dsi = ght_dsi(hub, G1).await;
    let cases: Vec<(proto::DeclareValueRequest, &str, &str)> = vec![
        (decl(G1, "", "CONV-3.1", "2025", Kind::Percent(120.0)), "CONV-3.1", "between 0 and 100"),
        (decl(G1, "", "CONV-3.1", "2025", Kind::Percent(-1.0)), "CONV-3.1", "between 0 and 100"),
        (
            decl(G1, "", "CONV-2.1", "2025", Kind::Status("yes".into())),
            "CONV-2.1",
            "expects a BOOLEAN value, got a status",
        ),
        (decl(G1, "", "CONV-1.2", "2025", Kind::Status("FINISHED".into())), "CONV-1.2", "'FINISHED' is not one of"),
        (decl(G1, "", "CONV-3.1", "2025", Kind::Count(40)), "CONV-3.1", "expects a PERCENT value, got a count"),
        (decl(G1, "", "CONV-5.2", "2025", Kind::Count(-3)), "CONV-5.2", "cannot be negative"),
        (decl(G1, "", "CONV-9.9", "2025", Kind::Boolean(true)), "CONV-9.9", "unknown indicator"),
        (decl(G1, "", "P1.1", "2025", Kind::Boolean(true)), "P1.1", "set establishment_id"),
        (decl(G1, E2, "CONV-1.3", "2025", Kind::Boolean(true)), "CONV-1.3", "leave establishment_id empty"),
        (decl(G1, "", "CONV-1.3", "2025-S3", Kind::Boolean(true)), "period", "not a period"),
        (decl(G1, "", "CONV-1.3", "2025", Kind::Date("2025-13-01".into())), "CONV-1.3", "expects a BOOLEAN"),
        (
            proto::DeclareValueRequest { value: None, ..decl(G1, "", "CONV-1.3", "2025", Kind::Boolean(true)) },
            "CONV-1.3",
            "needs a BOOLEAN",
        ),
    ];
    for (req, needle, reason) in cases {
        let (c, m) = code_of(dsi.declare_value(req).await);
        assert_eq!(c, Code::InvalidArgument, "{m}");
        assert!(m.contains(needle) && m.contains(reason), "expected '{needle}' and '{reason}' in: {m}");
    }
    // Nothing was stored.
    let (values, cursor) = pull(&mut ars(hub, R1).await, 0).await;
    assert!(values.is_empty() && cursor == 0, "{values:?}");
    // An unknown GHT is NOT_FOUND (after the value checks).
    let (c, _) = code_of(declare(&mut dsi, "999999999", "CONV-1.3", "2025", Kind::Boolean(true)).await);
    assert_eq!(c, Code::NotFound);
}
on_every_backend!(type_and_range_checks, values_are_checked_against_the_catalogue);

async fn workflow_by_role_and_state(hub: &TestHub) {
    use proto::ReviewDecision::{Reject, Validate};
    seed_territory(hub).await;
    let mut dsi = ght_dsi(hub, G1).await;
    let mut est = as_role(hub, Role::EstablishmentDsi, Some(G1), Some(E2), None).await;
    let mut dim = as_role(hub, Role::DimPhysician, Some(G1), None, None).await;
    let mut other_dsi = ght_dsi(hub, G2).await;
    let mut ars44 = ars(hub, R1).await;
    let mut ars76 = ars(hub, R2).await;
    let mut adm = admin(hub).await;

    // Who may declare a GHT indicator: its GHT_DSI only.
    for (who, c) in [
        ("establishment DSI", &mut est),
        ("DIM physician", &mut dim),
        ("other GHT's DSI", &mut other_dsi),
        ("ARS", &mut ars44),
        ("admin", &mut adm),
    ] {
        let (code, m) = code_of(declare(c, G1, "CONV-3.1", "2025", Kind::Percent(40.0)).await);
        assert_eq!(code, Code::PermissionDenied, "{who}: {m}");
    }
    let v = declare(&mut dsi, G1, "CONV-3.1", "2025", Kind::Percent(40.0)).await.unwrap();
    assert_eq!((v.status, v.revision, v.value_text.as_str()), (proto::ValueStatus::Draft as i32, 1, "40"));
    assert_eq!(v.declared_by, "ght_dsi-540000213");
    // Re-declaring a DRAFT replaces it (same revision).
    let v = declare(&mut dsi, G1, "CONV-3.1", "2025", Kind::Percent(45.0)).await.unwrap();
    assert_eq!((v.revision, v.value_text.as_str()), (1, "45"));
    declare(&mut dsi, G1, "CONV-2.1", "2025", Kind::Boolean(true)).await.unwrap();

    // Idempotent declaration: the same request id returns the first answer, writes nothing.
    let mut req = decl(G1, "", "CONV-1.4", "2025", Kind::Status("IN_PROGRESS".into()));
    req.request_id = "retry-1".into();
    let first = dsi.declare_value(req.clone()).await.unwrap().into_inner();
    let second = dsi.declare_value(req).await.unwrap().into_inner();
    assert_eq!(first, second);
    assert_eq!(history(&mut dsi, G1, "", "CONV-1.4", "2025").await.events.len(), 1);

    // The ARS reviews SUBMITTED values only.
    let (c, m) = code_of(review(&mut ars44, &v.id, Validate, "").await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("DRAFT"), "{m}");

    // Submitting: the GHT DSI, for its GHT.
    assert_eq!(code_of(submit(&mut est, G1, "", "2025").await).0, Code::PermissionDenied);
    assert_eq!(code_of(submit(&mut other_dsi, G1, "", "2025").await).0, Code::PermissionDenied);
    assert_eq!(code_of(submit(&mut dsi, G1, "", "2024").await).0, Code::FailedPrecondition);
    let s = submit(&mut dsi, G1, "", "2025").await.unwrap();
    assert_eq!(s.submitted, 3);
    assert!(s
        .values
        .iter()
        .all(|v| v.status == proto::ValueStatus::Submitted as i32 && v.submitted_by == "ght_dsi-540000213"));
    assert_eq!(code_of(submit(&mut dsi, G1, "", "2025").await).0, Code::FailedPrecondition, "nothing left in DRAFT");
    // Frozen while under review.
    let (c, m) = code_of(declare(&mut dsi, G1, "CONV-3.1", "2025", Kind::Percent(50.0)).await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("SUBMITTED"), "{m}");

    // Reviewing: the ARS of the GHT's region only; a rejection needs a comment.
    for (who, c) in [
        ("GHT DSI", &mut dsi),
        ("establishment DSI", &mut est),
        ("admin", &mut adm),
        ("ARS of another region", &mut ars76),
    ] {
        let (code, m) = code_of(review(c, &v.id, Validate, "").await);
        assert_eq!(code, Code::PermissionDenied, "{who}: {m}");
    }
    let (c, m) = code_of(review(&mut ars44, &v.id, Reject, "  ").await);
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(m.contains("comment"), "{m}");
    let rejected = review(&mut ars44, &v.id, Reject, "share computed on counts, not amounts").await.unwrap();
    assert_eq!(rejected.status, proto::ValueStatus::Rejected as i32);
    assert_eq!(rejected.reviewed_by, "ars-44");
    assert_eq!(code_of(review(&mut ars44, &v.id, Validate, "").await).0, Code::FailedPrecondition);

    // A rejected value is declared again, resubmitted, validated.
    let v = declare(&mut dsi, G1, "CONV-3.1", "2025", Kind::Percent(35.0)).await.unwrap();
    assert_eq!((v.revision, v.status, v.review_comment.as_str()), (1, proto::ValueStatus::Draft as i32, ""));
    assert_eq!(submit(&mut dsi, G1, "", "2025").await.unwrap().submitted, 1);
    // Reviewing by key instead of id.
    let validated = ars44
        .review_value(proto::ReviewValueRequest {
            ght_id: G1.into(),
            indicator_code: "CONV-3.1".into(),
            period: "2025".into(),
            decision: Validate as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((validated.id.as_str(), validated.status), (v.id.as_str(), proto::ValueStatus::Validated as i32));

    let h = history(&mut dim, G1, "", "CONV-3.1", "2025").await;
    let steps: Vec<(&str, &str)> = h.events.iter().map(|e| (e.action.as_str(), e.value_text.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            ("DECLARED", "40"),
            ("REDECLARED", "45"),
            ("SUBMITTED", "45"),
            ("REJECTED", "45"),
            ("REDECLARED", "35"),
            ("SUBMITTED", "35"),
            ("VALIDATED", "35"),
        ]
    );
    assert_eq!(h.events[3].comment, "share computed on counts, not amounts");
    assert_eq!(h.events[3].actor_role, "ARS");
    assert!(h.events.windows(2).all(|w| w[0].change_seq < w[1].change_seq));
}
on_every_backend!(workflow_by_role, workflow_by_role_and_state);

async fn validated_values_are_immutable(hub: &TestHub) {
    seed_territory(hub).await;
    let mut dsi = ght_dsi(hub, G1).await;
    let mut ars44 = ars(hub, R1).await;
    let v1 = declare(&mut dsi, G1, "CONV-5.1", "2025", Kind::Percent(60.0)).await.unwrap();
    submit(&mut dsi, G1, "", "2025").await.unwrap();
    let validated =
        review(&mut ars44, &v1.id, proto::ReviewDecision::Validate, "checked against the DPI deployment plan")
            .await
            .unwrap();

    // A correction is a new revision; the validated one is untouched.
    let v2 = declare(&mut dsi, G1, "CONV-5.1", "2025", Kind::Percent(55.0)).await.unwrap();
    assert_eq!((v2.revision, v2.status), (2, proto::ValueStatus::Draft as i32));
    assert_ne!(v2.id, v1.id);
    let h = history(&mut dsi, G1, "", "CONV-5.1", "2025").await;
    assert_eq!(h.revisions.len(), 2);
    assert_eq!(h.revisions[0], validated, "the validated revision is unchanged");
    assert_eq!(h.revisions[1].value_text, "55");
    // The scorecard shows the correction and, beside it, the validated figure.
    let card = scorecard(&mut dsi, G1, "", "2025").await.unwrap();
    let r = row(&card, "CONV-5.1");
    assert_eq!(r.declared.as_ref().unwrap().revision, 2);
    assert_eq!(r.validated.as_ref().unwrap().value_text, "60");
    // Re-declaring revision 2 keeps revision 1 as it was.
    declare(&mut dsi, G1, "CONV-5.1", "2025", Kind::Percent(56.0)).await.unwrap();
    let h = history(&mut dsi, G1, "", "CONV-5.1", "2025").await;
    assert_eq!(
        (h.revisions.len(), h.revisions[0].value_text.as_str(), h.revisions[1].value_text.as_str()),
        (2, "60", "56")
    );

    // The database itself refuses to alter or delete a validated revision.
    let db = hub.db();
    let upd =
        sqlx::query("UPDATE indicator_value SET value_text = '99' WHERE id = $1").bind(&v1.id).execute(&db.write).await;
    assert!(upd.is_err(), "a VALIDATED row was updated");
    let del = sqlx::query("DELETE FROM indicator_value WHERE id = $1").bind(&v2.id).execute(&db.write).await;
    assert!(del.is_err(), "a revision was deleted");
    let ev = sqlx::query("DELETE FROM indicator_event").execute(&db.write).await;
    assert!(ev.is_err(), "history was deleted");
    assert_eq!(history(&mut dsi, G1, "", "CONV-5.1", "2025").await.revisions[0], validated);
}
on_every_backend!(validated_immutable, validated_values_are_immutable);

async fn hn_prerequisites_per_establishment(hub: &TestHub) {
    seed_territory(hub).await;
    let mut est2 = as_role(hub, Role::EstablishmentDsi, Some(G1), Some(E2), None).await;
    let mut dsi = ght_dsi(hub, G1).await;
    let mut ars44 = ars(hub, R1).await;

    // An establishment DSI declares its own prerequisites, not another's, not the GHT's.
    let p = est2.declare_value(decl(G1, E2, "P1.2", "2025", Kind::Percent(72.5))).await.unwrap().into_inner();
    assert_eq!((p.establishment_id.as_str(), p.catalogue.as_str()), (E2, "hn-prerequisites"));
    assert_eq!(
        code_of(est2.declare_value(decl(G1, E1, "P1.2", "2025", Kind::Percent(80.0))).await).0,
        Code::PermissionDenied
    );
    assert_eq!(
        code_of(est2.declare_value(decl(G2, F1, "P1.2", "2025", Kind::Percent(80.0))).await).0,
        Code::PermissionDenied
    );
    // An establishment of another GHT under this GHT: refused by the target check.
    assert_eq!(
        code_of(dsi.declare_value(decl(G1, F1, "P1.2", "2025", Kind::Percent(80.0))).await).0,
        Code::PermissionDenied
    );
    // The GHT DSI may declare for the GHT's establishments.
    dsi.declare_value(decl(G1, E1, "P3.2", "2025", Kind::Boolean(true))).await.unwrap();
    est2.declare_value(decl(G1, E2, "P1.1", "2025", Kind::Boolean(false))).await.unwrap();

    // Submitting E2's values leaves E1's (and the GHT's) alone.
    assert_eq!(code_of(submit(&mut est2, G1, E1, "2025").await).0, Code::PermissionDenied);
    let s = submit(&mut est2, G1, E2, "2025").await.unwrap();
    assert_eq!(s.submitted, 2);
    review(&mut ars44, &p.id, proto::ReviewDecision::Validate, "").await.unwrap();

    let card = scorecard(&mut est2, G1, E2, "2025").await.unwrap();
    assert_eq!(
        (card.catalogue.as_str(), card.rows.len(), card.establishment_id.as_str()),
        ("hn-prerequisites", 10, E2)
    );
    let r = row(&card, "P1.2");
    assert_eq!(r.declared.as_ref().unwrap().status, proto::ValueStatus::Validated as i32);
    assert_eq!(r.target_reached, proto::TargetReached::No as i32, "72.5 % is below the 90 % target");
    assert_eq!(row(&card, "P1.1").target_reached, proto::TargetReached::No as i32);
    assert_eq!(card.domains.len(), 3);
    let e1 = scorecard(&mut est2, G1, E1, "2025").await.unwrap();
    assert_eq!(row(&e1, "P3.2").declared.as_ref().unwrap().status, proto::ValueStatus::Draft as i32);
}
on_every_backend!(hn_prerequisites, hn_prerequisites_per_establishment);

async fn computed_values_from_the_hubs_facts(hub: &TestHub) {
    seed_territory(hub).await;
    let mut dsi = ght_dsi(hub, G1).await;
    let year = current_year().to_string();

    // Before any inventory or identity: only the registry is known (parties E1, E2; E3 is an associé).
    let card = scorecard(&mut dsi, G1, "", &year).await.unwrap();
    assert!(card.computed_shown && !card.computed_at.is_empty());
    let r = row(&card, "CONV-1.1");
    let c = r.computed.as_ref().unwrap();
    assert!(c.computable);
    assert_eq!((c.numerator, c.denominator), (0, 2));
    assert_eq!(c.value, val(Kind::Status("NOT_STARTED".into())));
    assert!(c.detail.contains("0 of 2 parties") && c.detail.contains("(0 %)"), "{}", c.detail);
    assert_eq!(r.reference, proto::ReferenceValue::Computed as i32);
    assert_eq!(r.target_reached, proto::TargetReached::No as i32);
    let r = row(&card, "CONV-4.1");
    assert_eq!(r.computed.as_ref().unwrap().value, val(Kind::Status("NOT_STARTED".into())));
    assert_eq!(row(&card, "CONV-4.3").computed.as_ref().unwrap().value, val(Kind::Percent(0.0)));
    assert_eq!(row(&card, "CONV-5.2").computed.as_ref().unwrap().value, val(Kind::Count(0)));
    assert_eq!(row(&card, "CONV-2.4").computed.as_ref().unwrap().value, val(Kind::Boolean(false)));
    assert!(!row(&card, "CONV-4.2").computed.as_ref().unwrap().computable);
    assert!(row(&card, "CONV-1.2").computed.is_none(), "declared indicators are not computed");
    assert!(card.rows.iter().all(|r| !r.disagreement));

    // An unrequested declaration of a computed indicator is accepted, and compared.
    declare(&mut dsi, G1, "CONV-1.1", &year, Kind::Status("DONE".into())).await.unwrap();
    declare(&mut dsi, G1, "CONV-5.2", &year, Kind::Count(0)).await.unwrap();
    let card = scorecard(&mut dsi, G1, "", &year).await.unwrap();
    let r = row(&card, "CONV-1.1");
    assert!(r.disagreement);
    assert_eq!(r.reference, proto::ReferenceValue::Declared as i32);
    assert!(!row(&card, "CONV-5.2").disagreement);

    // A period that has ended: the hub's present facts are not shown for it.
    let past = scorecard(&mut dsi, G1, "", "2020").await.unwrap();
    assert!(!past.computed_shown && past.rows.iter().all(|r| r.computed.is_none()));

    // Who reads the scorecard: the GHT's DSIs, the DIM physician, the region's ARS.
    for (role, est, region) in [(Role::EstablishmentDsi, Some(E2), None), (Role::DimPhysician, None, None)] {
        let mut c = as_role(hub, role, Some(G1), est, region).await;
        scorecard(&mut c, G1, "", &year).await.unwrap();
    }
    scorecard(&mut ars(hub, R1).await, G1, "", &year).await.unwrap();
    let mut practitioner = as_role(hub, Role::Practitioner, Some(G1), Some(E2), None).await;
    assert_eq!(code_of(scorecard(&mut practitioner, G1, "", &year).await).0, Code::PermissionDenied);
    assert_eq!(code_of(scorecard(&mut ght_dsi(hub, G2).await, G1, "", &year).await).0, Code::PermissionDenied);
    // Default period: the latest with a value.
    assert_eq!(scorecard(&mut dsi, G1, "", "").await.unwrap().period, year);
}
on_every_backend!(computed_end_to_end, computed_values_from_the_hubs_facts);

async fn ars_sees_only_its_region(hub: &TestHub) {
    seed_territory(hub).await;
    let mut g1 = ght_dsi(hub, G1).await;
    let mut g2 = ght_dsi(hub, G2).await;
    let v1 = declare(&mut g1, G1, "CONV-2.1", "2025", Kind::Boolean(true)).await.unwrap();
    let v2 = declare(&mut g2, G2, "CONV-2.1", "2025", Kind::Boolean(false)).await.unwrap();
    submit(&mut g1, G1, "", "2025").await.unwrap();
    submit(&mut g2, G2, "", "2025").await.unwrap();

    let mut ars44 = ars(hub, R1).await;
    let mut ars76 = ars(hub, R2).await;
    let (a, _) = pull(&mut ars44, 0).await;
    let (b, _) = pull(&mut ars76, 0).await;
    assert_eq!(a.iter().map(|v| v.ght_id.as_str()).collect::<Vec<_>>(), vec![G1]);
    assert_eq!(b.iter().map(|v| v.ght_id.as_str()).collect::<Vec<_>>(), vec![G2]);

    // Naming the other region, reading the other GHT's scorecard or history, reviewing its values: refused.
    let other =
        pull_messages(&mut ars76, proto::PullRegionRequest { ars_region: R1.into(), ..Default::default() }).await;
    assert_eq!(code_of(other).0, Code::PermissionDenied);
    assert_eq!(code_of(scorecard(&mut ars76, G1, "", "2025").await).0, Code::PermissionDenied);
    let h = ars76
        .history(proto::HistoryRequest {
            ght_id: G1.into(),
            indicator_code: "CONV-2.1".into(),
            period: "2025".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(h).0, Code::PermissionDenied);
    assert_eq!(
        code_of(review(&mut ars76, &v1.id, proto::ReviewDecision::Validate, "").await).0,
        Code::PermissionDenied
    );
    review(&mut ars76, &v2.id, proto::ReviewDecision::Validate, "").await.unwrap();
    // A GHT DSI does not pull regions; the operator pulls a region it names.
    assert_eq!(code_of(pull_messages(&mut g1, proto::PullRegionRequest::default()).await).0, Code::InvalidArgument);
    let named = pull_messages(&mut g1, proto::PullRegionRequest { ars_region: R1.into(), ..Default::default() }).await;
    assert_eq!(code_of(named).0, Code::PermissionDenied);
    let mut adm = admin(hub).await;
    let msgs = pull_messages(&mut adm, proto::PullRegionRequest { ars_region: R2.into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(msgs.iter().flat_map(|m| &m.values).count(), 1);
}
on_every_backend!(region_isolation, ars_sees_only_its_region);

async fn incremental_pull_returns_exactly_the_changes(hub: &TestHub) {
    seed_territory(hub).await;
    let mut dsi = ght_dsi(hub, G1).await;
    let mut ars44 = ars(hub, R1).await;
    // An empty pull still answers, with the cursor unchanged.
    let msgs = pull_messages(&mut ars44, proto::PullRegionRequest { since: 7, ..Default::default() }).await.unwrap();
    assert_eq!((msgs.len(), msgs[0].values.len(), msgs[0].cursor), (1, 0, 7));

    for (code, k) in [
        ("CONV-1.3", Kind::Boolean(true)),
        ("CONV-2.1", Kind::Boolean(true)),
        ("CONV-3.1", Kind::Percent(20.0)),
        ("CONV-4.2", Kind::Percent(10.0)),
        ("CONV-5.1", Kind::Percent(5.0)),
    ] {
        declare(&mut dsi, G1, code, "2024", k).await.unwrap();
    }
    let (all, c1) = pull(&mut ars44, 0).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].change_seq < w[1].change_seq), "change order");
    assert_eq!(c1, all.last().unwrap().change_seq);
    let (none, same) = pull(&mut ars44, c1).await;
    assert!(none.is_empty());
    assert_eq!(same, c1);

    // Changes: one re-declaration, one new value, then a submission of all six.
    declare(&mut dsi, G1, "CONV-3.1", "2024", Kind::Percent(25.0)).await.unwrap();
    declare(&mut dsi, G1, "CONV-3.3", "2024", Kind::Boolean(false)).await.unwrap();
    let (changed, c2) = pull(&mut ars44, c1).await;
    assert_eq!(changed.iter().map(|v| v.indicator_code.as_str()).collect::<Vec<_>>(), vec!["CONV-3.1", "CONV-3.3"]);
    assert_eq!(changed[0].value_text, "25");
    submit(&mut dsi, G1, "", "2024").await.unwrap();
    let (submitted, c3) = pull(&mut ars44, c2).await;
    assert_eq!(submitted.len(), 6);
    assert!(submitted.iter().all(|v| v.status == proto::ValueStatus::Submitted as i32));
    let one = submitted.iter().find(|v| v.indicator_code == "CONV-2.1").unwrap();
    review(&mut ars44, &one.id, proto::ReviewDecision::Validate, "").await.unwrap();
    let (reviewed, c4) = pull(&mut ars44, c3).await;
    assert_eq!(reviewed.len(), 1);
    assert_eq!(reviewed[0].status, proto::ValueStatus::Validated as i32);
    assert!(c4 > c3 && c3 > c2 && c2 > c1);

    // Filters: status, domain, period, catalogue; small batches keep the order and the cursor.
    let filtered = |req: proto::PullRegionRequest| {
        let mut c = ars44.clone();
        async move { pull_messages(&mut c, req).await.unwrap().into_iter().flat_map(|m| m.values).collect::<Vec<_>>() }
    };
    let validated =
        filtered(proto::PullRegionRequest { status: proto::ValueStatus::Validated as i32, ..Default::default() }).await;
    assert_eq!(validated.len(), 1);
    let d3 = filtered(proto::PullRegionRequest { domain: 3, ..Default::default() }).await;
    assert_eq!(d3.iter().map(|v| v.indicator_code.as_str()).collect::<Vec<_>>(), vec!["CONV-3.1", "CONV-3.3"]);
    assert!(filtered(proto::PullRegionRequest { period: "2025".into(), ..Default::default() }).await.is_empty());
    assert!(filtered(proto::PullRegionRequest { catalogue: "hn-prerequisites".into(), ..Default::default() })
        .await
        .is_empty());
    let msgs =
        pull_messages(&mut ars44, proto::PullRegionRequest { batch_size: 4, ..Default::default() }).await.unwrap();
    assert_eq!(msgs.iter().map(|m| m.values.len()).collect::<Vec<_>>(), vec![4, 2]);
    assert_eq!(msgs[0].cursor, msgs[0].values[3].change_seq);
    assert_eq!(msgs[1].cursor, c4);
}
on_every_backend!(incremental_pull, incremental_pull_returns_exactly_the_changes);

/// Writers declare and re-declare concurrently while the ARS pulls incrementally; the
/// state rebuilt from the incremental pulls must equal a full pull at the end: no
/// change is skipped even when transactions overlap. (Checked to fail most runs on
/// PostgreSQL when positions are taken outside the writing transaction.)
async fn incremental_pull_under_concurrent_writers(hub: &TestHub) {
    seed_territory(hub).await;
    let codes = ["CONV-1.3", "CONV-2.1", "CONV-3.1", "CONV-3.3", "CONV-4.2", "CONV-5.1"];
    let periods = ["2021", "2022", "2023", "2024", "2025-S1", "2025-S2"];
    let writers = 6usize;
    // Two writes in three go to keys of the writer's own (one period per writer): a
    // position allocated outside the writing transaction, as a sequence is, shows up
    // there as a missed change. The third goes to keys every writer shares: concurrent
    // re-declarations of one value must serialise.
    let plan = move |w: usize, i: usize| {
        if i % 3 == 2 {
            (codes[(w + i) % codes.len()], "2020")
        } else {
            (codes[i % codes.len()], periods[w % periods.len()])
        }
    };
    let expected: BTreeSet<(String, String)> = (0..writers)
        .flat_map(|w| (0..24).map(move |i| plan(w, i)))
        .map(|(c, p)| (c.to_string(), p.to_string()))
        .collect();
    let mut tasks = Vec::new();
    for w in 0..writers {
        // Each writer its own connection; writers share keys so re-declarations race too.
        let mut c = as_role(hub, Role::GhtDsi, Some(G1), None, None).await;
        let mut other = ght_dsi(hub, G2).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..24usize {
                let (code, period) = plan(w, i);
                let k = match code {
                    "CONV-1.3" | "CONV-2.1" | "CONV-3.3" => Kind::Boolean(i % 2 == 0),
                    _ => Kind::Percent(((w * 24 + i) % 100) as f64),
                };
                declare(&mut c, G1, code, period, k.clone()).await.expect("declare G1");
                if i % 6 == 0 {
                    declare(&mut other, G2, code, period, k).await.expect("declare G2");
                }
            }
        }));
    }
    let mut ars44 = ars(hub, R1).await;
    let mut seen: BTreeMap<String, proto::IndicatorValue> = BTreeMap::new();
    let mut cursor = 0i64;
    let mut pulls = 0;
    loop {
        let done = tasks.iter().all(|t| t.is_finished());
        let (values, next) = pull(&mut ars44, cursor).await;
        assert!(next >= cursor);
        for v in values {
            assert!(v.change_seq > cursor, "a pull returned a change at or before its cursor");
            assert_eq!(v.ght_id, G1, "region 44 sees G1 only");
            seen.insert(v.id.clone(), v);
        }
        cursor = next;
        pulls += 1;
        if done {
            break;
        }
    }
    for t in tasks {
        t.await.expect("writer");
    }
    // One last incremental pull after every writer finished, then compare with a full pull.
    let (values, _) = pull(&mut ars44, cursor).await;
    for v in values {
        seen.insert(v.id.clone(), v);
    }
    let (full, _) = pull(&mut ars44, 0).await;
    let full: BTreeMap<String, proto::IndicatorValue> = full.into_iter().map(|v| (v.id.clone(), v)).collect();
    let keys: BTreeSet<(String, String)> =
        full.values().map(|v| (v.indicator_code.clone(), v.period.clone())).collect();
    assert_eq!(keys, expected, "every declared key, once (no revision but the first)");
    assert_eq!(full.len(), expected.len());
    let diff: Vec<&String> = full.keys().filter(|k| seen.get(*k) != full.get(*k)).collect();
    assert!(diff.is_empty(), "incremental pulls missed the latest state of {diff:?}");
    assert_eq!(seen.len(), full.len());
    assert!(pulls > 1, "the pulls ran while the writers wrote");
    // What the pulls serve (the hub's region log) is what the database holds (History
    // reads the table's columns).
    let mut dsi = ght_dsi(hub, G1).await;
    for v in full.values() {
        let h = history(&mut dsi, G1, "", &v.indicator_code, &v.period).await;
        assert_eq!(h.revisions.last(), Some(v), "{} {}", v.indicator_code, v.period);
    }
}
on_every_backend!(incremental_pull_concurrent, incremental_pull_under_concurrent_writers);

/// `ghthub demo seed --only indicators`: a trajectory over five periods, submitted and
/// reviewed; run twice, the second run changes nothing (the cursor does not move).
async fn demo_seed_is_idempotent(hub: &TestHub) {
    use ghthub::demo::{SeedArgs, SeedPart, DEMO_GHT, DEMO_REGION};
    let args = SeedArgs {
        only: SeedPart::Indicators,
        parties: 5,
        seed: 2017,
        patients: 0,
        signing_key: hub.args.dev_paths().token_signing_key(),
        issuer: hub.args.token_issuer.clone(),
        audience: hub.args.token_audience.clone(),
    };
    let channel = hub.admin().await;
    ghthub::demo::seed(args.clone(), &channel).await.expect("first seed");
    let mut ars = ars(hub, DEMO_REGION).await;
    let (values, cursor) = pull(&mut ars, 0).await;
    // 18 indicators × 5 periods, and 6 parties × 10 prerequisites × 2 periods.
    let ght: Vec<&proto::IndicatorValue> = values.iter().filter(|v| v.establishment_id.is_empty()).collect();
    assert_eq!((ght.len(), values.len() - ght.len()), (90, 120));
    let rejected: Vec<&&proto::IndicatorValue> =
        ght.iter().filter(|v| v.status == proto::ValueStatus::Rejected as i32).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!((rejected[0].indicator_code.as_str(), rejected[0].period.as_str()), ("CONV-3.1", "2026-S1"));
    assert!(!rejected[0].review_comment.is_empty());
    assert!(values.iter().filter(|v| v.id != rejected[0].id).all(|v| v.status == proto::ValueStatus::Validated as i32));

    ghthub::demo::seed(args, &channel).await.expect("second seed");
    let (again, next) = pull(&mut ars, cursor).await;
    assert!(again.is_empty(), "the second run changed {} values", again.len());
    assert_eq!(next, cursor);

    // The scorecard shows progress: the latest period, trends against the previous ones.
    let card = scorecard(&mut ars, DEMO_GHT, "", "").await.unwrap();
    assert_eq!(card.period, "2026-S1");
    assert_eq!(card.periods, vec!["2022", "2023", "2024", "2025", "2026-S1"]);
    assert_eq!(row(&card, "CONV-4.2").trend, proto::Trend::Up as i32);
    assert_eq!(row(&card, "CONV-2.1").target_reached, proto::TargetReached::Yes as i32);
    let svg = ghthub::indicators::chart::render_svg(&card).unwrap();
    assert!(svg.contains("2022") && svg.contains("Pilotage du projet de convergence"));
}
on_every_backend!(demo_seed, demo_seed_is_idempotent);
