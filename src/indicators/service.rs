//! The `Indicators` gRPC service.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use prost::Message;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus};

use super::{
    catalogue::{self, Catalogue, Scope},
    region_log::RegionLogs,
    scorecard,
    store::{self, CatalogueRow, EventRow, PullFilter, ValueKey, ValueRow},
    values::{self, DeclareEffect, Period, Status},
};
use crate::{
    access::{Action, CallCtx, DataClass, Guard, Target},
    db::Db,
    idempotency,
    proto::{self, indicators_server},
    time::{now_micros, to_rfc3339},
    validate, AppError, AppResult,
};

const DEFAULT_BATCH: usize = 1000;
const MAX_BATCH: usize = 5000;

/// Parsed catalogue versions, shared by the calls of this process. A version never
/// changes once stored, so the cache needs no invalidation; which version is current
/// is asked of the database on each call, so every replica sees a new load at once.
/// A parsed catalogue version and its stored row (load time, author, hash).
type CatalogueEntry = (Arc<Catalogue>, Arc<CatalogueRow>);

pub struct Catalogues {
    db: Db,
    parsed: RwLock<HashMap<(String, String), CatalogueEntry>>,
    defaults: tokio::sync::OnceCell<()>,
}

impl Catalogues {
    pub fn new(db: Db) -> Catalogues {
        Catalogues { db, parsed: RwLock::new(HashMap::new()), defaults: tokio::sync::OnceCell::new() }
    }

    /// Writes the embedded catalogues into a database that has no version of them.
    async fn ensure_defaults(&self) -> AppResult<()> {
        self.defaults
            .get_or_try_init(|| async {
                for yaml in catalogue::EMBEDDED {
                    let c =
                        catalogue::parse(yaml).map_err(|e| AppError::internal(format!("embedded catalogue: {e}")))?;
                    let mut tx = self.db.begin_write().await?;
                    if !store::has_catalogue(&mut tx, &c.id).await? {
                        let row = CatalogueRow {
                            catalogue: c.id.clone(),
                            version: c.version.clone(),
                            yaml: yaml.to_string(),
                            sha256: catalogue::sha256_hex(yaml),
                            indicators: c.indicators.len() as i64,
                            loaded_by: "ghthub".into(),
                            loaded_at: now_micros(),
                        };
                        store::insert_catalogue(&mut tx, &row).await?;
                    }
                    tx.commit().await?;
                }
                Ok::<(), AppError>(())
            })
            .await?;
        Ok(())
    }

    /// A version of a catalogue (the current one when `version` is None).
    pub async fn get(&self, id: &str, version: Option<&str>) -> AppResult<CatalogueEntry> {
        self.ensure_defaults().await?;
        let version = match version {
            Some(v) => v.to_string(),
            None => store::current_version(&self.db, id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("catalogue {id}")))?,
        };
        let key = (id.to_string(), version.clone());
        if let Some(hit) = self.parsed.read().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let row = store::get_catalogue(&self.db, id, Some(&version))
            .await?
            .ok_or_else(|| AppError::not_found(format!("catalogue {id} version {version}")))?;
        let parsed = catalogue::parse(&row.yaml)
            .map_err(|e| AppError::internal(format!("stored catalogue {id} {version}: {e}")))?;
        let entry = (Arc::new(parsed), Arc::new(row));
        if let Ok(mut cache) = self.parsed.write() {
            cache.insert(key, entry.clone());
        }
        Ok(entry)
    }

    /// The current catalogue holding an indicator code for this scope.
    async fn for_code(&self, code: &str, scope: Scope) -> AppResult<Arc<Catalogue>> {
        let id = catalogue_for(scope);
        let (cat, _) = self.get(id, None).await?;
        if cat.get(code).is_some() {
            return Ok(cat);
        }
        // Name the scope the code belongs to, if any, to explain the refusal.
        let other = catalogue_for(if scope == Scope::Ght { Scope::Establishment } else { Scope::Ght });
        let (o, _) = self.get(other, None).await?;
        let hint = if o.get(code).is_some() {
            match scope {
                Scope::Ght => format!(" ({code} is an establishment prerequisite: set establishment_id)"),
                Scope::Establishment => format!(" ({code} is measured per GHT: leave establishment_id empty)"),
            }
        } else {
            String::new()
        };
        Err(AppError::invalid(
            "indicator_code",
            format!("unknown indicator {code} in catalogue {} version {}{hint}", cat.id, cat.version),
        ))
    }
}

/// GHT-level values follow the convergence catalogue; establishment-level values the
/// hôpital numérique prerequisites.
fn catalogue_for(scope: Scope) -> &'static str {
    match scope {
        Scope::Ght => catalogue::GHT_CONVERGENCE,
        Scope::Establishment => catalogue::HN_PREREQUISITES,
    }
}

pub struct IndicatorsService {
    pub db: Db,
    pub guard: Guard,
    pub catalogues: Arc<Catalogues>,
    pub region_logs: Arc<RegionLogs>,
    pub max_message_bytes: usize,
}

/// A checked declaration, before access and state checks.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub key: ValueKey,
    pub period: Period,
    pub evidence_note: String,
    pub evidence_ref: String,
}

/// Checks a DeclareValue request's shape (not the value, which needs the catalogue).
/// Pure, for fuzzing.
pub fn check_declaration(req: &proto::DeclareValueRequest) -> AppResult<Declaration> {
    let (key, period) = check_key(&req.ght_id, &req.establishment_id, &req.indicator_code, &req.period)?;
    Ok(Declaration {
        key,
        period,
        evidence_note: validate::opt_text("evidence_note", &req.evidence_note, 2000)?.unwrap_or_default(),
        evidence_ref: validate::opt_text("evidence_ref", &req.evidence_ref, 500)?.unwrap_or_default(),
    })
}

/// Checks what names a value. Pure.
pub fn check_key(ght_id: &str, establishment_id: &str, code: &str, period: &str) -> AppResult<(ValueKey, Period)> {
    let ght_id = validate::finess("ght_id", ght_id)?;
    let establishment_id = if establishment_id.trim().is_empty() {
        String::new()
    } else {
        validate::finess("establishment_id", establishment_id)?
    };
    let indicator_code = validate::token("indicator_code", code, 32)?;
    let period = Period::parse("period", period)?;
    Ok((ValueKey { ght_id, establishment_id, indicator_code, period: period.to_string() }, period))
}

/// Checks a ReviewValue request. Pure.
pub fn check_review(req: &proto::ReviewValueRequest) -> AppResult<(proto::ReviewDecision, String)> {
    let decision: proto::ReviewDecision = validate::enum_value("decision", req.decision)?;
    let comment = validate::opt_text("comment", &req.comment, 2000)?.unwrap_or_default();
    if decision == proto::ReviewDecision::Reject && comment.is_empty() {
        return Err(AppError::invalid("comment", "is required to reject a value: say what must change"));
    }
    if req.value_id.trim().is_empty() && req.ght_id.trim().is_empty() {
        return Err(AppError::invalid("value_id", "name the value: value_id, or ght_id + indicator_code + period"));
    }
    Ok((decision, comment))
}

fn check_request_id(request_id: &str) -> AppResult<()> {
    if request_id.len() > 200 {
        return Err(AppError::invalid("request_id", "longer than 200 characters"));
    }
    Ok(())
}

fn scope_of(key: &ValueKey) -> Scope {
    if key.establishment_id.is_empty() {
        Scope::Ght
    } else {
        Scope::Establishment
    }
}

impl IndicatorsService {
    /// The target of a call on a GHT (or one of its establishments), with the GHT's
    /// region for the ARS rules. NOT_FOUND when the GHT is unknown.
    async fn target(&self, ght_id: &str, establishment_id: &str) -> AppResult<Target> {
        let region = crate::registry::store::ght_region(&self.db, ght_id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("GHT {ght_id}")))?;
        let t = if establishment_id.is_empty() {
            Target::ght(ght_id)
        } else {
            Target::establishment(ght_id, establishment_id)
        };
        let mut ids = vec![ght_id.to_string()];
        if !establishment_id.is_empty() {
            ids.push(establishment_id.to_string());
        }
        Ok(t.with_region(Some(region)).with_ids(ids))
    }

    async fn list_catalogue(
        &self,
        _ctx: CallCtx,
        req: proto::ListCatalogueRequest,
    ) -> AppResult<proto::ListCatalogueResponse> {
        // Reference data, not a GHT's data: every authenticated party may read it.
        let id = match req.catalogue.trim() {
            "" => catalogue::GHT_CONVERGENCE.to_string(),
            c => validate::token("catalogue", c, 64)?,
        };
        let version = validate::opt_text("version", &req.version, 64)?;
        let (cat, meta) = self.catalogues.get(&id, version.as_deref()).await?;
        let current = store::current_version(&self.db, &id).await?;
        let versions = store::list_catalogue_versions(&self.db, &id)
            .await?
            .into_iter()
            .map(|v| proto::CatalogueVersion {
                current: current.as_deref() == Some(v.version.as_str()),
                version: v.version,
                loaded_at: to_rfc3339(v.loaded_at),
                loaded_by: v.loaded_by,
                indicators: v.indicators as u32,
                sha256: v.sha256,
            })
            .collect();
        let mut c = cat.to_proto();
        c.loaded_at = to_rfc3339(meta.loaded_at);
        c.loaded_by = meta.loaded_by.clone();
        c.sha256 = meta.sha256.clone();
        Ok(proto::ListCatalogueResponse { catalogue: Some(c), versions })
    }

    async fn load_catalogue(
        &self,
        ctx: CallCtx,
        req: proto::LoadCatalogueRequest,
    ) -> AppResult<proto::LoadCatalogueResponse> {
        let cat = catalogue::parse(&req.yaml)?;
        let sha256 = catalogue::sha256_hex(&req.yaml);
        let target = Target::default().with_ids([format!("catalogue:{}:{}", cat.id, cat.version)]);
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Admin, &target).await?;
        self.catalogues.ensure_defaults().await?;
        let answer = proto::LoadCatalogueResponse {
            catalogue: cat.id.clone(),
            version: cat.version.clone(),
            indicators: cat.indicators.len() as u32,
            sha256: sha256.clone(),
            already_loaded: false,
        };
        let mut tx = self.db.begin_write().await?;
        let row = CatalogueRow {
            catalogue: cat.id.clone(),
            version: cat.version.clone(),
            yaml: req.yaml,
            sha256: sha256.clone(),
            indicators: cat.indicators.len() as i64,
            loaded_by: ctx.principal.subject.clone(),
            loaded_at: now_micros(),
        };
        if store::insert_catalogue(&mut tx, &row).await? {
            tx.commit().await?;
            return Ok(answer);
        }
        drop(tx);
        let existing = store::get_catalogue(&self.db, &cat.id, Some(&cat.version)).await?;
        match existing {
            Some(e) if e.sha256 == sha256 => Ok(proto::LoadCatalogueResponse { already_loaded: true, ..answer }),
            _ => Err(AppError::AlreadyExists(format!(
                "catalogue {} version {} with other content (give the new file a new version)",
                cat.id, cat.version
            ))),
        }
    }

    async fn declare_value(&self, ctx: CallCtx, req: proto::DeclareValueRequest) -> AppResult<proto::IndicatorValue> {
        let d = check_declaration(&req)?;
        check_request_id(&req.request_id)?;
        let cat = self.catalogues.for_code(&d.key.indicator_code, scope_of(&d.key)).await?;
        let def = cat.get(&d.key.indicator_code).ok_or_else(|| AppError::internal("catalogue lost a code"))?;
        let value = values::check("value", def, req.value.as_ref())?;
        let target = self
            .target(&d.key.ght_id, &d.key.establishment_id)
            .await?
            .with_ids([d.key.indicator_code.clone(), d.key.period.clone()]);
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Write, &target).await?;

        let mut tx = self.db.begin_write().await?;
        let mut positions = store::lock_positions(&mut tx).await?;
        if let Some(prev) = idempotency::replay(&mut *tx, &ctx, &req.request_id).await? {
            return Ok(prev);
        }
        let latest = store::latest_revision(&mut tx, &d.key).await?;
        let effect = values::on_declare(latest.as_ref().map(|l| l.status), &d.key.to_string())?;
        let at = now_micros();
        let by = ctx.principal.subject.clone();
        let region = target.region.clone().unwrap_or_default();
        let fresh = |revision: i64, change_seq: i64| ValueRow {
            id: uuid::Uuid::new_v4().to_string(),
            key: d.key.clone(),
            ars_region: region.clone(),
            catalogue: cat.id.clone(),
            catalogue_version: cat.version.clone(),
            domain: i64::from(def.domain),
            period_key: d.period.key(),
            revision,
            value_type: def.value_type.as_str().to_string(),
            value_text: value.text(),
            evidence_note: d.evidence_note.clone(),
            evidence_ref: d.evidence_ref.clone(),
            status: Status::Draft,
            declared_by: by.clone(),
            declared_at: at,
            submitted_by: String::new(),
            submitted_at: 0,
            reviewed_by: String::new(),
            reviewed_at: 0,
            review_comment: String::new(),
            updated_at: at,
            change_seq,
        };
        let (row, action) = match (effect, latest) {
            (DeclareEffect::Redeclare, Some(prev)) => {
                let row = ValueRow { id: prev.id.clone(), ..fresh(prev.revision, positions.take()) };
                store::update_value(&mut tx, &row).await?;
                (row, "REDECLARED")
            }
            (DeclareEffect::NewRevision, Some(prev)) => {
                let row = fresh(prev.revision + 1, positions.take());
                store::insert_value(&mut tx, &row).await?;
                (row, "DECLARED")
            }
            _ => {
                let row = fresh(1, positions.take());
                store::insert_value(&mut tx, &row).await?;
                (row, "DECLARED")
            }
        };
        store::insert_event(&mut tx, &EventRow::of(&row, action, &by, ctx.principal.role.as_str(), "")).await?;
        store::save_positions(&mut tx, &positions).await?;
        let answer = row.to_proto();
        idempotency::remember(&mut *tx, &ctx, &req.request_id, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn submit_period(
        &self,
        ctx: CallCtx,
        req: proto::SubmitPeriodRequest,
    ) -> AppResult<proto::SubmitPeriodResponse> {
        let ght_id = validate::finess("ght_id", &req.ght_id)?;
        let establishment_id = match req.establishment_id.trim() {
            "" => String::new(),
            e => validate::finess("establishment_id", e)?,
        };
        let period = Period::parse("period", &req.period)?.to_string();
        check_request_id(&req.request_id)?;
        let target = self.target(&ght_id, &establishment_id).await?.with_ids([period.clone()]);
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Write, &target).await?;

        let mut tx = self.db.begin_write().await?;
        let mut positions = store::lock_positions(&mut tx).await?;
        if let Some(prev) = idempotency::replay(&mut *tx, &ctx, &req.request_id).await? {
            return Ok(prev);
        }
        let drafts = store::drafts(&mut tx, &ght_id, &establishment_id, &period).await?;
        if drafts.is_empty() {
            let whose = if establishment_id.is_empty() {
                format!("GHT {ght_id}")
            } else {
                format!("establishment {establishment_id}")
            };
            return Err(AppError::precondition(format!("{whose} has no DRAFT value for {period} to submit")));
        }
        let at = now_micros();
        let by = &ctx.principal.subject;
        let mut values = Vec::with_capacity(drafts.len());
        for d in drafts {
            let row = ValueRow {
                status: Status::Submitted,
                submitted_by: by.clone(),
                submitted_at: at,
                updated_at: at,
                change_seq: positions.take(),
                ..d
            };
            store::update_value(&mut tx, &row).await?;
            store::insert_event(&mut tx, &EventRow::of(&row, "SUBMITTED", by, ctx.principal.role.as_str(), "")).await?;
            values.push(row.to_proto());
        }
        store::save_positions(&mut tx, &positions).await?;
        let answer = proto::SubmitPeriodResponse { submitted: values.len() as u32, values };
        idempotency::remember(&mut *tx, &ctx, &req.request_id, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn review_value(&self, ctx: CallCtx, req: proto::ReviewValueRequest) -> AppResult<proto::IndicatorValue> {
        let (decision, comment) = check_review(&req)?;
        check_request_id(&req.request_id)?;
        // Name the value: by id (its GHT is read first, for the access check), or by key.
        let (by_id, key) = if req.value_id.trim().is_empty() {
            (None, check_key(&req.ght_id, &req.establishment_id, &req.indicator_code, &req.period)?.0)
        } else {
            let id = validate::token("value_id", &req.value_id, 64)?;
            let mut conn = self.db.read.acquire().await?;
            let row = store::get_value(&mut conn, &id)
                .await?
                .ok_or_else(|| AppError::not_found(format!("indicator value {id}")))?;
            (Some(id), row.key)
        };
        let target = self
            .target(&key.ght_id, &key.establishment_id)
            .await?
            .with_ids([key.indicator_code.clone(), key.period.clone()]);
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Review, &target).await?;

        let mut tx = self.db.begin_write().await?;
        let mut positions = store::lock_positions(&mut tx).await?;
        if let Some(prev) = idempotency::replay(&mut *tx, &ctx, &req.request_id).await? {
            return Ok(prev);
        }
        let current = match &by_id {
            Some(id) => store::get_value(&mut tx, id).await?,
            None => store::latest_revision(&mut tx, &key).await?,
        }
        .ok_or_else(|| AppError::not_found(format!("indicator value {key}")))?;
        values::on_review(current.status, &format!("{key} (revision {})", current.revision))?;
        let (status, action) = match decision {
            proto::ReviewDecision::Reject => (Status::Rejected, "REJECTED"),
            _ => (Status::Validated, "VALIDATED"),
        };
        let at = now_micros();
        let row = ValueRow {
            status,
            reviewed_by: ctx.principal.subject.clone(),
            reviewed_at: at,
            review_comment: comment.clone(),
            updated_at: at,
            change_seq: positions.take(),
            ..current
        };
        store::update_value(&mut tx, &row).await?;
        store::insert_event(
            &mut tx,
            &EventRow::of(&row, action, &ctx.principal.subject, ctx.principal.role.as_str(), &comment),
        )
        .await?;
        store::save_positions(&mut tx, &positions).await?;
        let answer = row.to_proto();
        idempotency::remember(&mut *tx, &ctx, &req.request_id, &answer).await?;
        tx.commit().await?;
        Ok(answer)
    }

    async fn scorecard(&self, ctx: CallCtx, req: proto::GetGhtScorecardRequest) -> AppResult<proto::Scorecard> {
        let ght_id = validate::finess("ght_id", &req.ght_id)?;
        let establishment_id = match req.establishment_id.trim() {
            "" => String::new(),
            e => validate::finess("establishment_id", e)?,
        };
        let period = match req.period.trim() {
            "" => None,
            p => Some(Period::parse("period", p)?),
        };
        let target = self.target(&ght_id, &establishment_id).await?;
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Read, &target).await?;

        let scope = if establishment_id.is_empty() { Scope::Ght } else { Scope::Establishment };
        let (cat, _) = self.catalogues.get(catalogue_for(scope), None).await?;
        let rows = store::values_of_scope(&self.db, &ght_id, &establishment_id, &cat.id).await?;
        let now = now_micros();
        let today =
            chrono::DateTime::<chrono::Utc>::from_timestamp_micros(now).map(|t| t.date_naive()).unwrap_or_default();
        let period = period.unwrap_or_else(|| scorecard::default_period(&rows, today));
        let wants_facts =
            period.is_open(today) && cat.indicators.iter().any(|d| d.scope == scope && d.formula.is_some());
        let computed = if wants_facts {
            let facts = crate::facts::load(&self.db, &ght_id).await?;
            let by_code = cat
                .indicators
                .iter()
                .filter(|d| d.scope == scope)
                .filter_map(|d| d.formula.map(|f| (d.code.clone(), f.compute(&facts, now))))
                .collect();
            Some((by_code, to_rfc3339(now)))
        } else {
            None
        };
        Ok(scorecard::build(scorecard::Input {
            catalogue: &cat,
            scope,
            ght_id: &ght_id,
            establishment_id: &establishment_id,
            period,
            rows: &rows,
            computed,
        }))
    }

    async fn history(&self, ctx: CallCtx, req: proto::HistoryRequest) -> AppResult<proto::HistoryResponse> {
        let (key, _) = check_key(&req.ght_id, &req.establishment_id, &req.indicator_code, &req.period)?;
        let target = self.target(&key.ght_id, &key.establishment_id).await?;
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Read, &target).await?;
        let (revisions, events) = store::history(&self.db, &key).await?;
        if revisions.is_empty() {
            return Err(AppError::not_found(format!("indicator value {key}")));
        }
        Ok(proto::HistoryResponse {
            revisions: revisions.iter().map(ValueRow::to_proto).collect(),
            events: events.iter().map(EventRow::to_proto).collect(),
        })
    }

    /// Checks the request and the caller, takes the matching changes from the region's
    /// log, and streams them in batches from a task through a bounded channel: a slow
    /// client holds the task, nothing piles up.
    async fn pull_region(
        &self,
        ctx: CallCtx,
        req: proto::PullRegionRequest,
    ) -> AppResult<ReceiverStream<Result<proto::PullRegionResponse, GrpcStatus>>> {
        let filter = check_pull(&req, ctx.principal.region.as_deref())?;
        let target = Target {
            region: Some(filter.region.clone()),
            ids: vec![format!("region:{}", filter.region)],
            ..Default::default()
        };
        self.guard.authorize(&ctx, DataClass::Indicator, Action::Read, &target).await?;
        let batch = match req.batch_size as usize {
            0 => DEFAULT_BATCH,
            n => n.min(MAX_BATCH),
        };
        // Half the message limit leaves room for the envelope of a batch.
        let max_bytes = self.max_message_bytes / 2;
        let changes = self.region_logs.changes(&self.db, &filter).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut cursor = filter.since;
            let mut values: Vec<proto::IndicatorValue> = Vec::with_capacity(batch.min(changes.len()));
            let mut bytes = 0usize;
            let last = changes.len();
            for (i, v) in changes.iter().enumerate() {
                cursor = v.change_seq;
                bytes += v.encoded_len();
                values.push(proto::IndicatorValue::clone(v));
                if values.len() >= batch || bytes >= max_bytes || i + 1 == last {
                    let msg = proto::PullRegionResponse { values: std::mem::take(&mut values), cursor };
                    bytes = 0;
                    if tx.send(Ok(msg)).await.is_err() {
                        return; // the client went away
                    }
                }
            }
            if last == 0 {
                // The stream always carries one message, so the client gets a cursor.
                let _ = tx.send(Ok(proto::PullRegionResponse { values: Vec::new(), cursor })).await;
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}

/// Checks a PullRegion request; an ARS pulls its own region by default. Pure.
pub fn check_pull(req: &proto::PullRegionRequest, caller_region: Option<&str>) -> AppResult<PullFilter> {
    let region = match (req.ars_region.trim(), caller_region) {
        ("", Some(r)) => r.to_string(),
        ("", None) => return Err(AppError::invalid("ars_region", "is required (the caller has no ARS region)")),
        (r, _) => validate::token("ars_region", r, 20)?,
    };
    let period = match req.period.trim() {
        "" => String::new(),
        p => Period::parse("period", p)?.to_string(),
    };
    if req.domain > 5 {
        return Err(AppError::invalid("domain", format!("{} is not a domain 1 to 5 (0 = every domain)", req.domain)));
    }
    let status = match req.status {
        0 => String::new(),
        s => proto::ValueStatus::try_from(s)
            .ok()
            .and_then(Status::from_proto)
            .map(|s| s.as_str().to_string())
            .ok_or_else(|| AppError::invalid("status", format!("unknown enum value {s}")))?,
    };
    let catalogue = match req.catalogue.trim() {
        "" => String::new(),
        c => validate::token("catalogue", c, 64)?,
    };
    if req.since < 0 {
        return Err(AppError::invalid("since", "must be 0 or a cursor from a previous pull"));
    }
    Ok(PullFilter { region, since: req.since, period, domain: i64::from(req.domain), status, catalogue })
}

#[tonic::async_trait]
impl indicators_server::Indicators for IndicatorsService {
    type PullRegionStream = ReceiverStream<Result<proto::PullRegionResponse, GrpcStatus>>;

    async fn list_catalogue(
        &self,
        req: Request<proto::ListCatalogueRequest>,
    ) -> Result<Response<proto::ListCatalogueResponse>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list_catalogue(ctx, req.into_inner()).await?))
    }
    async fn load_catalogue(
        &self,
        req: Request<proto::LoadCatalogueRequest>,
    ) -> Result<Response<proto::LoadCatalogueResponse>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.load_catalogue(ctx, req.into_inner()).await?))
    }
    async fn declare_value(
        &self,
        req: Request<proto::DeclareValueRequest>,
    ) -> Result<Response<proto::IndicatorValue>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.declare_value(ctx, req.into_inner()).await?))
    }
    async fn submit_period(
        &self,
        req: Request<proto::SubmitPeriodRequest>,
    ) -> Result<Response<proto::SubmitPeriodResponse>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.submit_period(ctx, req.into_inner()).await?))
    }
    async fn review_value(
        &self,
        req: Request<proto::ReviewValueRequest>,
    ) -> Result<Response<proto::IndicatorValue>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.review_value(ctx, req.into_inner()).await?))
    }
    async fn get_ght_scorecard(
        &self,
        req: Request<proto::GetGhtScorecardRequest>,
    ) -> Result<Response<proto::Scorecard>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.scorecard(ctx, req.into_inner()).await?))
    }
    async fn pull_region(
        &self,
        req: Request<proto::PullRegionRequest>,
    ) -> Result<Response<Self::PullRegionStream>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.pull_region(ctx, req.into_inner()).await?))
    }
    async fn history(
        &self,
        req: Request<proto::HistoryRequest>,
    ) -> Result<Response<proto::HistoryResponse>, GrpcStatus> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.history(ctx, req.into_inner()).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_requests_are_checked() {
        let ok = check_pull(&proto::PullRegionRequest::default(), Some("44")).unwrap();
        assert_eq!((ok.region.as_str(), ok.since, ok.domain), ("44", 0, 0));
        assert!(check_pull(&proto::PullRegionRequest::default(), None).is_err());
        let bad = |r: proto::PullRegionRequest| check_pull(&r, Some("44")).unwrap_err().to_string();
        assert!(bad(proto::PullRegionRequest { domain: 6, ..Default::default() }).contains("domain"));
        assert!(bad(proto::PullRegionRequest { since: -1, ..Default::default() }).contains("since"));
        assert!(bad(proto::PullRegionRequest { status: 9, ..Default::default() }).contains("status"));
        assert!(bad(proto::PullRegionRequest { period: "2026-S3".into(), ..Default::default() }).contains("period"));
        let f = check_pull(
            &proto::PullRegionRequest {
                status: proto::ValueStatus::Validated as i32,
                period: "2026-s1".into(),
                ..Default::default()
            },
            Some("44"),
        )
        .unwrap();
        assert_eq!((f.status.as_str(), f.period.as_str()), ("VALIDATED", "2026-S1"));
    }

    #[test]
    fn reviews_and_declarations_are_checked() {
        let reject = proto::ReviewValueRequest {
            value_id: "x".into(),
            decision: proto::ReviewDecision::Reject as i32,
            ..Default::default()
        };
        assert!(check_review(&reject).unwrap_err().to_string().contains("comment"));
        assert!(
            check_review(&proto::ReviewValueRequest { comment: "missing minutes".into(), ..reject.clone() }).is_ok()
        );
        assert!(check_review(&proto::ReviewValueRequest { decision: 0, ..reject.clone() }).is_err());
        let anonymous =
            proto::ReviewValueRequest { decision: proto::ReviewDecision::Validate as i32, ..Default::default() };
        assert!(check_review(&anonymous).unwrap_err().to_string().contains("value_id"));

        let d = proto::DeclareValueRequest {
            ght_id: "540000213".into(),
            indicator_code: "CONV-1.1".into(),
            period: "2026".into(),
            ..Default::default()
        };
        assert_eq!(check_declaration(&d).unwrap().key.establishment_id, "");
        for bad in [
            proto::DeclareValueRequest { ght_id: "54".into(), ..d.clone() },
            proto::DeclareValueRequest { establishment_id: "x".into(), ..d.clone() },
            proto::DeclareValueRequest { indicator_code: "CONV 1".into(), ..d.clone() },
            proto::DeclareValueRequest { period: "2026-S9".into(), ..d.clone() },
            proto::DeclareValueRequest { evidence_note: "x".repeat(2001), ..d.clone() },
        ] {
            assert_eq!(check_declaration(&bad).unwrap_err().code(), tonic::Code::InvalidArgument);
        }
    }
}
