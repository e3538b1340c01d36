//! `ghthub demo seed`: a plausible territory for a newcomer, created through the hub's
//! own gRPC services (as its parties would), so what it builds is what a real GHT
//! would see: a GHT of one support CHU and 5–12 parties plus an associé, their IS
//! inventories, patient identities and a year of movements, and the GHT's convergence
//! indicators.
//!
//! This module builds the registry and hands a [`DemoTerritory`] to each domain's
//! `demo::seed`, which adds that domain's data.

use anyhow::Context;
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::{
    access::{Principal, Role},
    auth::TokenIssuer,
    cli::client::HubClient,
    proto,
};

/// What to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedPart {
    /// The GHT and its establishments only.
    Registry,
    /// IS inventories of every establishment.
    Inventory,
    /// Patient identities (INS) and a year of movements.
    Movements,
    /// Convergence indicator declarations.
    Indicators,
    /// Everything, in that order.
    All,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SeedArgs {
    /// What to seed (the registry is always created first).
    #[arg(long, value_enum, default_value_t = SeedPart::All)]
    pub only: SeedPart,
    /// Number of parties besides the support establishment (5–12).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(5..=12))]
    pub parties: u8,
    /// Random seed: the same seed gives the same territory.
    #[arg(long, default_value_t = 2017)]
    pub seed: u64,
    /// Patients of the identity/movement part.
    #[arg(long, default_value_t = 2_000)]
    pub patients: u32,
    /// Ed25519 key that signs the demo parties' tokens (the hub's development key).
    #[arg(long, env = "GHTHUB_TOKEN_SIGNING_KEY", default_value = "data/certs/token-signing.key.pem")]
    pub signing_key: std::path::PathBuf,
    #[arg(long, env = "GHTHUB_TOKEN_ISSUER", default_value = "ghthub-dev")]
    pub issuer: String,
    #[arg(long, env = "GHTHUB_TOKEN_AUDIENCE", default_value = "ghthub")]
    pub audience: String,
}

/// One establishment of the demo territory.
#[derive(Debug, Clone)]
pub struct DemoEstablishment {
    pub id: String,
    pub name: String,
    pub role: proto::EstablishmentRole,
    pub category: proto::EstablishmentCategory,
    /// Beds, to scale inventories and activity.
    pub beds: u32,
}

impl DemoEstablishment {
    /// Support or partie: the establishments the territorial DIM and the SDSI-T cover.
    pub fn is_party(&self) -> bool {
        matches!(self.role, proto::EstablishmentRole::Support | proto::EstablishmentRole::Partie)
    }
}

/// The territory every domain's demo seeds into, and tokens for its parties.
pub struct DemoTerritory {
    pub ght_id: String,
    pub ght_name: String,
    pub region: String,
    pub establishments: Vec<DemoEstablishment>,
    pub args: SeedArgs,
    channel: tonic::transport::Channel,
    issuer: TokenIssuer,
}

/// The demo GHT: "GHT Sud Lorraine" (fictional FINESS numbers in department 54/88).
pub const DEMO_GHT: &str = "540099990";
pub const DEMO_REGION: &str = "44";

/// Support first, then parties; the last row is an associé (the reference CHU of a
/// neighbouring territory would be typical, here a private clinic).
const ESTABLISHMENTS: &[(&str, &str, proto::EstablishmentCategory, u32)] = &[
    ("540099008", "CHRU de Nancy", proto::EstablishmentCategory::Chu, 1_600),
    ("540099016", "CH de Lunéville", proto::EstablishmentCategory::Ch, 420),
    ("540099024", "CH Saint-Charles de Toul", proto::EstablishmentCategory::Ch, 310),
    ("540099032", "CPN de Laxou", proto::EstablishmentCategory::ChPsy, 480),
    ("540099040", "CH de Pont-à-Mousson", proto::EstablishmentCategory::Ch, 260),
    ("540099057", "CH de Briey", proto::EstablishmentCategory::Ch, 240),
    ("880099015", "CH Émile Durkheim d'Épinal", proto::EstablishmentCategory::Ch, 560),
    ("880099023", "CH de Remiremont", proto::EstablishmentCategory::Ch, 330),
    ("880099031", "CH de Saint-Dié-des-Vosges", proto::EstablishmentCategory::Ch, 390),
    ("540099065", "HAD du Grand Nancy", proto::EstablishmentCategory::Had, 90),
    ("540099073", "EHPAD public de Blâmont", proto::EstablishmentCategory::EpMedicoSocial, 120),
    ("880099049", "CH de Neufchâteau", proto::EstablishmentCategory::Ch, 180),
    ("540099081", "Centre Paul-Spillmann", proto::EstablishmentCategory::Ch, 150),
];
const ASSOCIE: (&str, &str, proto::EstablishmentCategory, u32) =
    ("540099099", "Clinique associée Saint-André", proto::EstablishmentCategory::EsPrive, 140);

impl DemoTerritory {
    /// A client acting as `role` (with the attachments that role needs).
    pub fn client(&self, role: Role, subject: &str, establishment: Option<&str>) -> anyhow::Result<HubClient> {
        let p = Principal {
            subject: subject.to_string(),
            role,
            ght_id: role.needs_ght().then(|| self.ght_id.clone()),
            establishment_id: establishment.map(String::from),
            region: role.needs_region().then(|| self.region.clone()),
            expires_at: 0,
        };
        let token = self.issuer.issue(&p, 4 * 3600)?;
        HubClient::from_channel(self.channel.clone(), Some(&token))
    }

    /// A deterministic random generator for one domain (same seed, same data).
    pub fn rng(&self, domain: &str) -> StdRng {
        let salt = domain.bytes().fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
        StdRng::seed_from_u64(self.args.seed ^ salt)
    }

    pub fn parties(&self) -> impl Iterator<Item = &DemoEstablishment> {
        self.establishments.iter().filter(|e| e.is_party())
    }
}

/// Creates the demo registry (idempotently) and seeds the parts asked for.
pub async fn seed(args: SeedArgs, hub: &HubClient) -> anyhow::Result<()> {
    let pem = std::fs::read(&args.signing_key).with_context(|| {
        format!("reading {} (the hub writes it on first start: run `ghthub serve` once)", args.signing_key.display())
    })?;
    let issuer = TokenIssuer::new(&pem, "dev", &args.issuer, &args.audience)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut establishments: Vec<DemoEstablishment> = ESTABLISHMENTS
        .iter()
        .take(usize::from(args.parties) + 1)
        .enumerate()
        .map(|(i, (id, name, category, beds))| DemoEstablishment {
            id: id.to_string(),
            name: name.to_string(),
            role: if i == 0 { proto::EstablishmentRole::Support } else { proto::EstablishmentRole::Partie },
            category: *category,
            beds: beds * rng.gen_range(90..=110) / 100,
        })
        .collect();
    establishments.push(DemoEstablishment {
        id: ASSOCIE.0.into(),
        name: ASSOCIE.1.into(),
        role: proto::EstablishmentRole::Associe,
        category: ASSOCIE.2,
        beds: ASSOCIE.3,
    });
    let territory = DemoTerritory {
        ght_id: DEMO_GHT.into(),
        ght_name: "GHT Sud Lorraine (démo)".into(),
        region: DEMO_REGION.into(),
        establishments,
        args: args.clone(),
        channel: hub.channel.clone(),
        issuer,
    };
    seed_registry(&territory).await?;
    println!(
        "registry: GHT {} ({}), {} establishments",
        territory.ght_id,
        territory.ght_name,
        territory.establishments.len()
    );
    let wants = |p: SeedPart| args.only == p || args.only == SeedPart::All;
    if wants(SeedPart::Inventory) {
        crate::inventory::demo::seed(&territory).await.context("seeding inventories")?;
    }
    if wants(SeedPart::Movements) {
        crate::identity::demo::seed(&territory).await.context("seeding identities and movements")?;
    }
    if wants(SeedPart::Indicators) {
        crate::indicators::demo::seed(&territory).await.context("seeding indicators")?;
    }
    println!(
        "\nlook at it as the DSI de GHT:\n  export GHTHUB_TOKEN=$(ghthub token --signing-key {} --sub dsi@ght --role GHT_DSI --ght {})\n  ghthub territory show",
        args.signing_key.display(),
        territory.ght_id
    );
    Ok(())
}

/// Tolerates ALREADY_EXISTS so the seed can run again on the same hub.
fn created<T>(r: Result<tonic::Response<T>, tonic::Status>) -> anyhow::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
        Err(s) => Err(s.into()),
    }
}

async fn seed_registry(t: &DemoTerritory) -> anyhow::Result<()> {
    let admin = t.client(Role::Admin, "demo-admin", None)?;
    let mut reg = admin.registry();
    created(
        reg.create_ght(proto::CreateGhtRequest {
            id: t.ght_id.clone(),
            name: t.ght_name.clone(),
            ars_region: t.region.clone(),
            request_id: format!("demo-ght-{}", t.ght_id),
        })
        .await,
    )?;
    for e in &t.establishments {
        created(
            reg.create_establishment(proto::CreateEstablishmentRequest {
                id: e.id.clone(),
                ght_id: t.ght_id.clone(),
                name: e.name.clone(),
                role: e.role as i32,
                category: e.category as i32,
                request_id: format!("demo-est-{}", e.id),
            })
            .await,
        )?;
    }
    Ok(())
}
