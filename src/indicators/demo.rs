//! Demo data of this domain for `ghthub demo seed` (see `crate::demo`): the demo GHT's
//! convergence trajectory from 2022 to 2026-S1, declared by its DSI, submitted and
//! reviewed by the ARS (all validated but one, rejected with a comment), and the
//! parties' hôpital numérique prerequisites for 2025 and 2026-S1.
//!
//! Every call carries a request id derived from what it does, so a second run replays
//! the first one's answers and changes nothing.

use anyhow::Context;
use rand::Rng;

use crate::{
    access::Role,
    demo::DemoTerritory,
    proto::{self, value::Kind},
};

const PERIODS: [&str; 5] = ["2022", "2023", "2024", "2025", "2026-S1"];

/// The value the ARS rejects, and why.
const REJECTED: (&str, &str, &str) = (
    "CONV-3.1",
    "2026-S1",
    "Part calculée en nombre de marchés et non en montant : merci de recalculer sur les montants engagés \
     (tableau des achats SI du semestre à joindre).",
);

/// A stage index per period (0 = first stage).
fn stage(stages: &[&str], per_period: [usize; 5], i: usize) -> Kind {
    Kind::Status(stages[per_period[i].min(stages.len() - 1)].to_string())
}

/// The demo GHT's trajectory: one value per indicator and period, progressing.
pub(crate) fn trajectory(code: &str, i: usize, parties: usize, noise: f64) -> Kind {
    const S: [&str; 3] = ["NOT_STARTED", "IN_PROGRESS", "DONE"];
    let pct = |v: [f64; 5]| Kind::Percent(((v[i] + noise).clamp(0.0, 100.0) * 10.0).round() / 10.0);
    match code {
        "CONV-1.1" => stage(&S, [1, 2, 2, 2, 2], i),
        "CONV-1.2" => stage(&["NOT_STARTED", "IN_PROGRESS", "DONE", "VALIDATED"], [1, 1, 2, 3, 3], i),
        "CONV-1.3" => Kind::Boolean(true),
        "CONV-1.4" => stage(&S, [0, 1, 1, 1, 2], i),
        "CONV-2.1" => Kind::Boolean(true),
        "CONV-2.2" => stage(&S, [0, 1, 1, 2, 2], i),
        "CONV-2.3" => stage(&S, [0, 0, 1, 1, 1], i),
        "CONV-2.4" => Kind::Boolean(i >= 2),
        "CONV-3.1" => pct([15.0, 30.0, 45.0, 60.0, 65.0]),
        "CONV-3.2" => stage(&S, [0, 1, 1, 2, 2], i),
        "CONV-3.3" => Kind::Boolean(i >= 1),
        "CONV-3.4" => stage(&S, [0, 0, 1, 1, 1], i),
        "CONV-4.1" => stage(&S, [0, 1, 1, 1, 2], i),
        "CONV-4.2" => pct([10.0, 20.0, 30.0, 40.0, 50.0]),
        "CONV-4.3" => {
            // Parties moving onto the target DPI one or two at a time.
            let on = [1, 2, 3, parties / 2 + 1, parties * 2 / 3 + 1][i].min(parties);
            Kind::Percent((on as f64 * 1000.0 / parties.max(1) as f64).round() / 10.0)
        }
        "CONV-4.4" => pct([20.0, 30.0, 45.0, 55.0, 62.0]),
        "CONV-5.1" => pct([5.0, 15.0, 30.0, 45.0, 55.0]),
        "CONV-5.2" => Kind::Count(([0.0, 150.0, 900.0, 2600.0, 3400.0][i] * (1.0 + noise / 50.0)).round() as i64),
        _ => Kind::Boolean(false),
    }
}

/// Seeds this domain's part of the demo territory through the hub's gRPC services.
pub async fn seed(t: &DemoTerritory) -> anyhow::Result<()> {
    let mut dsi = t.client(Role::GhtDsi, "dsi@ght-demo", None)?.indicators();
    let mut ars = t.client(Role::Ars, "cmsi@ars-demo", None)?.indicators();
    let cat = dsi
        .list_catalogue(proto::ListCatalogueRequest::default())
        .await?
        .into_inner()
        .catalogue
        .context("the hub sent no catalogue")?;
    let parties = t.parties().count();
    let mut rng = t.rng("indicators");
    let (mut validated, mut rejected) = (0usize, 0usize);
    for (i, period) in PERIODS.iter().enumerate() {
        for def in &cat.indicators {
            let noise = rng.gen_range(-3.0..3.0);
            dsi.declare_value(proto::DeclareValueRequest {
                ght_id: t.ght_id.clone(),
                establishment_id: String::new(),
                indicator_code: def.code.clone(),
                period: period.to_string(),
                value: Some(proto::Value { kind: Some(trajectory(&def.code, i, parties, noise)) }),
                evidence_note: format!("Bilan {period} du comité de pilotage de la convergence"),
                evidence_ref: format!("CR-COPIL-SI-{period}"),
                request_id: format!("demo-ind-{}-{}-{period}", t.ght_id, def.code),
            })
            .await
            .with_context(|| format!("declaring {} for {period}", def.code))?;
        }
        let submitted = dsi
            .submit_period(proto::SubmitPeriodRequest {
                ght_id: t.ght_id.clone(),
                establishment_id: String::new(),
                period: period.to_string(),
                request_id: format!("demo-submit-{}-{period}", t.ght_id),
            })
            .await
            .with_context(|| format!("submitting {period}"))?
            .into_inner();
        for v in &submitted.values {
            let reject = (v.indicator_code.as_str(), v.period.as_str()) == (REJECTED.0, REJECTED.1);
            ars.review_value(proto::ReviewValueRequest {
                value_id: v.id.clone(),
                decision: if reject { proto::ReviewDecision::Reject } else { proto::ReviewDecision::Validate } as i32,
                comment: if reject { REJECTED.2.to_string() } else { String::new() },
                request_id: format!("demo-review-{}-{}-{period}", t.ght_id, v.indicator_code),
                ..Default::default()
            })
            .await
            .with_context(|| format!("reviewing {} for {period}", v.indicator_code))?;
            if reject {
                rejected += 1;
            } else {
                validated += 1;
            }
        }
    }
    println!(
        "indicators: {} convergence indicators × {} periods ({}–{}): {validated} validated, {rejected} rejected by the ARS",
        cat.indicators.len(),
        PERIODS.len(),
        PERIODS[0],
        PERIODS[PERIODS.len() - 1]
    );

    let hn = seed_prerequisites(t, &mut ars).await?;
    println!("HN prerequisites: {hn} values for {parties} parties (2025, 2026-S1), validated");
    println!("  ghthub indicators scorecard --ght {}    (as the DSI de GHT)", t.ght_id);
    println!("  ghthub indicators chart --ght {} --out trajectory.svg", t.ght_id);
    Ok(())
}

/// Each party's DSI declares its prerequisites; the ARS validates them.
async fn seed_prerequisites(
    t: &DemoTerritory,
    ars: &mut proto::indicators_client::IndicatorsClient<crate::cli::client::Authed>,
) -> anyhow::Result<usize> {
    let mut rng = t.rng("hn-prerequisites");
    let mut count = 0;
    for e in t.parties() {
        let mut dsi = t.client(Role::EstablishmentDsi, &format!("dsi@{}", e.id), Some(&e.id))?.indicators();
        for (i, period) in ["2025", "2026-S1"].iter().enumerate() {
            for code in ["P1.1", "P1.2", "P1.3", "P1.4", "P2.1", "P2.2", "P2.3", "P3.1", "P3.2", "P3.3"] {
                let kind = if matches!(code, "P1.2" | "P1.3") {
                    Kind::Percent(f64::from(rng.gen_range(60..=85) + 8 * i as i32).min(100.0))
                } else {
                    // Mostly in place; a few still missing, fewer the next semester.
                    Kind::Boolean(rng.gen_bool(if i == 0 { 0.75 } else { 0.9 }))
                };
                dsi.declare_value(proto::DeclareValueRequest {
                    ght_id: t.ght_id.clone(),
                    establishment_id: e.id.clone(),
                    indicator_code: code.into(),
                    period: period.to_string(),
                    value: Some(proto::Value { kind: Some(kind) }),
                    evidence_note: "Autodiagnostic des prérequis".into(),
                    evidence_ref: String::new(),
                    request_id: format!("demo-hn-{}-{code}-{period}", e.id),
                })
                .await
                .with_context(|| format!("declaring {code} of {} for {period}", e.name))?;
            }
            let submitted = dsi
                .submit_period(proto::SubmitPeriodRequest {
                    ght_id: t.ght_id.clone(),
                    establishment_id: e.id.clone(),
                    period: period.to_string(),
                    request_id: format!("demo-hn-submit-{}-{period}", e.id),
                })
                .await
                .with_context(|| format!("submitting {} for {period}", e.name))?
                .into_inner();
            for v in submitted.values {
                ars.review_value(proto::ReviewValueRequest {
                    value_id: v.id.clone(),
                    decision: proto::ReviewDecision::Validate as i32,
                    request_id: format!("demo-hn-review-{}-{}-{period}", e.id, v.indicator_code),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("reviewing {} of {}", v.indicator_code, e.name))?;
                count += 1;
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{catalogue, values};

    /// Every demo value passes the catalogue's checks.
    #[test]
    fn trajectory_values_fit_the_catalogue() {
        let cat = catalogue::parse(catalogue::EMBEDDED[0]).unwrap();
        for def in &cat.indicators {
            for i in 0..PERIODS.len() {
                for noise in [-3.0, 0.0, 3.0] {
                    let v = proto::Value { kind: Some(trajectory(&def.code, i, 9, noise)) };
                    values::check("value", def, Some(&v)).unwrap();
                }
            }
        }
    }
}
