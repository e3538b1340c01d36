//! The synthetic territory and the calls each kind of party makes.

use std::{path::Path, time::Duration};

use anyhow::Context;
use tokio::time::Instant;

use super::{merge_into, Stats};
use crate::{
    access::{Principal, Role},
    auth::TokenIssuer,
    bench_proto::{echo_client::EchoClient, EchoMessage},
    cli::client::HubClient,
    proto,
};

/// FINESS-like ids of the synthetic territory (the 99 department does not exist).
pub const LOAD_GHT: &str = "990000010";
pub const LOAD_REGION: &str = "LD";

pub fn establishment_id(i: usize) -> String {
    format!("9900001{:02}", i % 100)
}

/// Clients of the synthetic parties, on one shared HTTP/2 connection.
pub struct Env {
    pub admin: HubClient,
    pub ght_dsi: HubClient,
    pub dim: HubClient,
    pub ars: HubClient,
    /// (establishment id, its DSI, its practitioner)
    pub establishments: Vec<(String, HubClient, HubClient)>,
}

impl Env {
    pub async fn prepare(channel: tonic::transport::Channel, signing_key: &Path, n: usize) -> anyhow::Result<Env> {
        let pem = std::fs::read(signing_key).with_context(|| format!("reading {}", signing_key.display()))?;
        let issuer = TokenIssuer::new(&pem, "dev", "ghthub-dev", "ghthub")?;
        let token = |role, sub: &str, ght: Option<&str>, est: Option<&str>, region: Option<&str>| {
            issuer.issue(
                &Principal {
                    subject: sub.into(),
                    role,
                    ght_id: ght.map(String::from),
                    establishment_id: est.map(String::from),
                    region: region.map(String::from),
                    expires_at: 0,
                },
                24 * 3600,
            )
        };
        let client = |t: String| HubClient::from_channel(channel.clone(), Some(&t));
        let admin = client(token(Role::Admin, "load-admin", None, None, None)?)?;
        let mut reg = admin.registry();
        let created = reg
            .create_ght(proto::CreateGhtRequest {
                id: LOAD_GHT.into(),
                name: "GHT de charge".into(),
                ars_region: LOAD_REGION.into(),
                request_id: "load-ght".into(),
            })
            .await;
        if let Err(s) = created {
            if s.code() != tonic::Code::AlreadyExists {
                return Err(s.into());
            }
        }
        let mut establishments = vec![];
        for i in 0..n {
            let id = establishment_id(i);
            let role = if i == 0 { proto::EstablishmentRole::Support } else { proto::EstablishmentRole::Partie };
            let r = reg
                .create_establishment(proto::CreateEstablishmentRequest {
                    id: id.clone(),
                    ght_id: LOAD_GHT.into(),
                    name: format!("Établissement de charge {i}"),
                    role: role as i32,
                    category: proto::EstablishmentCategory::Ch as i32,
                    request_id: format!("load-est-{i}"),
                })
                .await;
            if let Err(s) = r {
                if s.code() != tonic::Code::AlreadyExists {
                    return Err(s.into());
                }
            }
            let dsi =
                client(token(Role::EstablishmentDsi, &format!("load-dsi-{i}"), Some(LOAD_GHT), Some(&id), None)?)?;
            let dr = client(token(Role::Practitioner, &format!("load-dr-{i}"), Some(LOAD_GHT), Some(&id), None)?)?;
            establishments.push((id, dsi, dr));
        }
        Ok(Env {
            ght_dsi: client(token(Role::GhtDsi, "load-ght-dsi", Some(LOAD_GHT), None, None)?)?,
            dim: client(token(Role::DimPhysician, "load-dim", Some(LOAD_GHT), None, None)?)?,
            ars: client(token(Role::Ars, "load-ars", None, None, Some(LOAD_REGION))?)?,
            admin,
            establishments,
        })
    }
}

fn record(stats: &mut Stats, name: &'static str, started: Instant, ok: bool, items: u64) {
    let s = stats.entry(name).or_default();
    if ok {
        let _ = s.hist.record(started.elapsed().as_micros().max(1) as u64);
        s.items += items;
    } else {
        s.errors += 1;
    }
}

/// One unary call of the mix, chosen by `n`.
async fn unary_call(env: &Env, worker: usize, n: u64, stats: &mut Stats) {
    let est = &env.establishments[worker % env.establishments.len()];
    let started = Instant::now();
    match n % 4 {
        0 => {
            let r = est.1.registry().get_ght(proto::GetGhtRequest { id: LOAD_GHT.into() }).await;
            record(stats, "Registry/GetGht", started, r.is_ok(), 1);
        }
        1 => {
            let r = env.ars.registry().list_ghts(proto::ListGhtsRequest::default()).await;
            record(stats, "Registry/ListGhts (ARS)", started, r.is_ok(), 1);
        }
        2 => {
            let r = env
                .ght_dsi
                .registry()
                .list_establishments(proto::ListEstablishmentsRequest { ght_id: LOAD_GHT.into() })
                .await;
            record(stats, "Registry/ListEstablishments", started, r.is_ok(), 1);
        }
        _ => {
            let r = est.2.registry().who_am_i(proto::WhoAmIRequest {}).await;
            record(stats, "Registry/WhoAmI", started, r.is_ok(), 1);
        }
    }
}

pub async fn run_hub(env: std::sync::Arc<Env>, args: &super::LoadArgs, duration: Duration) -> Stats {
    let deadline = Instant::now() + duration;
    let progress = indicatif::ProgressBar::new(duration.as_secs());
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} hub load [{bar:30}] {pos}/{len} s")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                progress.inc(1);
            }
        })
    };
    let mut handles = vec![];
    for w in 0..args.concurrency.max(1) {
        let env = env.clone();
        handles.push(tokio::spawn(async move {
            let mut stats = Stats::new();
            let mut n = w as u64;
            while Instant::now() < deadline {
                unary_call(&env, w, n, &mut stats).await;
                n += 1;
            }
            stats
        }));
    }
    let mut total = Stats::new();
    for h in handles {
        if let Ok(part) = h.await {
            merge_into(&mut total, part);
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    total
}

pub async fn run_echo(channel: tonic::transport::Channel, concurrency: usize, duration: Duration) -> Stats {
    let deadline = Instant::now() + duration;
    let handles: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let mut client = EchoClient::new(channel.clone());
            tokio::spawn(async move {
                let mut stats = Stats::new();
                let payload = vec![7u8; 64];
                while Instant::now() < deadline {
                    let started = Instant::now();
                    let r = client.unary(EchoMessage { payload: payload.clone() }).await;
                    record(&mut stats, "Echo/Unary", started, r.is_ok(), 1);
                }
                stats
            })
        })
        .collect();
    let mut total = Stats::new();
    for h in handles {
        if let Ok(part) = h.await {
            merge_into(&mut total, part);
        }
    }
    total
}
