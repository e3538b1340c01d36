//! The `Movements` gRPC service.

use std::{collections::HashMap, time::Duration};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    bus::Bus,
    publish::{self, Outcome},
    store,
    types::{validate_movement, MovementInput},
};
use crate::{
    access::{Action, CallCtx, DataClass, Guard, Target},
    db::Db,
    identity::scope::{authorize_at, ght_of, read_scope},
    proto::{self, movements_server},
    time::now_micros,
    validate, AppError, AppResult,
};

const MOVE: DataClass = DataClass::MovementNominative;

/// Most movements one transaction commits on SQLite. Every other write to the main
/// file (an identity upsert, an inventory push) waits for the batch holding the one
/// writer: 256 movements hold it ~6 ms since checkpoints left the write path (see
/// `db::checkpointer`). `cargo bench --bench movements` over one stream (200,000
/// identities loaded), 2026-12-03: 256 gives ~42,000 events/s; 512 gave 3 % more and
/// 1,024 no more than 512 (runs vary by ±3 %): small gains next to a doubled wait.
pub const MAX_BATCH_SQLITE: usize = 256;
/// Most movements one transaction commits on PostgreSQL: other writes do not wait for
/// movement batches there, and larger batches save round trips.
pub const MAX_BATCH_POSTGRES: usize = 1024;
/// Movements buffered per subscriber between the database and its stream: a slow
/// subscriber fills it and its reader waits (backpressure), memory stays bounded.
pub const SUBSCRIBER_BUFFER: usize = 64;
/// Rows read per feed query.
const FEED_PAGE: i64 = 500;
/// A following subscriber woken by a commit waits this long before reading, so that
/// the commits of several publishers make one page. Paced load mix (4 streams of 500
/// events/s): without it, a page (a read and an audit record) every 2.6 movements.
const FEED_LINGER: Duration = Duration::from_millis(10);
/// A publishing stream whose batch holds fewer movements than this waits up to
/// [`PUBLISH_LINGER`] for more before committing it. A stream at 500 events/s
/// committed every 2.2 movements (the paced load mix): as many transactions and
/// audited authorizations as batches, for an ack a few milliseconds sooner.
const LINGER_BELOW: usize = 64;
const PUBLISH_LINGER: Duration = Duration::from_millis(10);
/// A following subscriber re-reads the database at least this often.
const POLL: Duration = Duration::from_millis(500);
/// A long subscription re-checks the caller's rights this often (designations end).
const RECHECK: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct MovementService {
    pub db: Db,
    pub guard: Guard,
    pub bus: Bus,
    /// The histories of recently published encounters (see [`publish::EncounterCache`]).
    pub encounters: std::sync::Arc<publish::EncounterCache>,
    /// True once the hub drains: streams end so the drain completes.
    pub stopping: watch::Receiver<bool>,
}

/// A batch validated and authorized, waiting for its commit.
struct Prepared {
    now: i64,
    /// The acks already known (invalid or refused movements), by slot.
    acks: Vec<Option<proto::MovementAck>>,
    /// The slots of the movements to commit, and the movements.
    slots: Vec<usize>,
    inputs: Vec<MovementInput>,
}

/// What the preparing side of a publishing stream hands to the committing side.
enum Step {
    /// A batch, and whether the stream broke after it (nothing more will come).
    Batch(Prepared, bool),
    /// The hub is draining: the batches before are committed, then the stream ends.
    Stop,
}

/// Why a stream stopped sending.
enum Halt {
    /// The client went away.
    Closed,
    /// The hub is draining.
    Stopping,
}

/// Sends on a stream unless the hub starts draining first (a stalled client must not
/// hold the drain up).
async fn send_or_stop<T>(tx: &mpsc::Sender<T>, msg: T, stopping: &mut watch::Receiver<bool>) -> Result<(), Halt> {
    if *stopping.borrow() {
        return Err(Halt::Stopping);
    }
    tokio::select! {
        r = tx.send(msg) => r.map_err(|_| Halt::Closed),
        _ = stopping.changed() => Err(Halt::Stopping),
    }
}

/// A REJECTED ack; `s` comes from an AppError through Status, so internal details
/// are logged and not sent.
fn ack_rejected(event_id: &str, est: &str, s: &Status) -> proto::MovementAck {
    proto::MovementAck {
        event_id: event_id.to_string(),
        establishment_id: est.to_string(),
        status: proto::MovementAckStatus::Rejected as i32,
        position: 0,
        code: s.code() as i32,
        message: s.message().to_string(),
    }
}

impl MovementService {
    /// Validates and authorizes one batch (one audited decision per establishment):
    /// what is left to do is its commit.
    async fn prepare_batch(&self, ctx: &CallCtx, batch: Vec<Option<proto::Movement>>) -> Prepared {
        let now = now_micros();
        let mut acks: Vec<Option<proto::MovementAck>> = (0..batch.len()).map(|_| None).collect();
        let mut valid: Vec<(usize, MovementInput)> = vec![];
        for (i, m) in batch.iter().enumerate() {
            match m {
                None => acks[i] = Some(ack_rejected("", "", &AppError::invalid("movement", "is required").into())),
                Some(m) => match validate_movement(m, now) {
                    Ok(v) => valid.push((i, v)),
                    Err(e) => acks[i] = Some(ack_rejected(&m.event_id, &m.establishment_id, &e.into())),
                },
            }
        }
        let mut per_est: Vec<(String, Vec<&str>)> = vec![];
        for (_, v) in &valid {
            match per_est.iter_mut().find(|(e, _)| *e == v.establishment_id) {
                Some((_, ids)) => ids.push(&v.event_id),
                None => per_est.push((v.establishment_id.clone(), vec![&v.event_id])),
            }
        }
        let mut refused: HashMap<String, Status> = HashMap::new();
        for (est, ids) in &per_est {
            let audit_ids = vec![
                est.clone(),
                format!("events:{}", ids.len()),
                ids.first().map(|s| s.to_string()).unwrap_or_default(),
                ids.last().map(|s| s.to_string()).unwrap_or_default(),
            ];
            if let Err(e) = authorize_at(&self.guard, &self.db, ctx, MOVE, Action::Write, est, None, audit_ids).await {
                refused.insert(est.clone(), e.into());
            }
        }
        let (slots, inputs): (Vec<usize>, Vec<MovementInput>) = valid
            .into_iter()
            .filter_map(|(i, v)| match refused.get(&v.establishment_id) {
                Some(e) => {
                    acks[i] = Some(ack_rejected(&v.event_id, &v.establishment_id, e));
                    None
                }
                None => Some((i, v)),
            })
            .unzip();
        Prepared { now, acks, slots, inputs }
    }

    /// Commits a prepared batch; one ack per movement, in order.
    async fn commit_batch(&self, ctx: &CallCtx, p: Prepared) -> Vec<proto::MovementAck> {
        let Prepared { now, mut acks, slots, inputs } = p;
        if !inputs.is_empty() {
            // Shared with the writer's thread (SQLite) rather than copied for it.
            let inputs: std::sync::Arc<[MovementInput]> = inputs.into();
            match publish::publish_batch(&self.db, &self.encounters, inputs.clone(), &ctx.principal.subject, now).await
            {
                Ok(outcomes) => {
                    let mut accepted = false;
                    for ((slot, v), o) in slots.iter().zip(inputs.iter()).zip(outcomes) {
                        let ack = |status: proto::MovementAckStatus, position| proto::MovementAck {
                            event_id: v.event_id.clone(),
                            establishment_id: v.establishment_id.clone(),
                            status: status as i32,
                            position,
                            code: 0,
                            message: String::new(),
                        };
                        acks[*slot] = Some(match o {
                            Outcome::Accepted(p) => {
                                accepted = true;
                                ack(proto::MovementAckStatus::Accepted, p)
                            }
                            Outcome::Duplicate(p) => ack(proto::MovementAckStatus::Duplicate, p),
                            Outcome::Rejected(e) => ack_rejected(&v.event_id, &v.establishment_id, &e.into()),
                        });
                    }
                    if accepted {
                        self.bus.bump();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = inputs.len(), "movement batch not committed");
                    let s = Status::from(e);
                    for (slot, v) in slots.iter().zip(inputs.iter()) {
                        acks[*slot] = Some(ack_rejected(&v.event_id, &v.establishment_id, &s));
                    }
                }
            }
        }
        acks.into_iter()
            .map(|a| a.unwrap_or_else(|| ack_rejected("", "", &AppError::internal("no ack").into())))
            .collect()
    }

    /// Takes batches off a publishing stream and prepares them (validation, the
    /// audited authorization) while the batch before is committing: the audit record
    /// of batch N+1 is written during the commit of batch N instead of after it.
    async fn prepare_stream(
        self,
        ctx: CallCtx,
        mut events: mpsc::Receiver<Result<proto::PublishMovementsRequest, Status>>,
        prepared: mpsc::Sender<Step>,
    ) {
        let mut stopping = self.stopping.clone();
        let max_batch = if self.db.is_postgres() { MAX_BATCH_POSTGRES } else { MAX_BATCH_SQLITE };
        loop {
            // Between batches only: a batch taken is prepared and committed. The flag is
            // read first: a linger below may have seen it change already.
            let first = if *stopping.borrow() {
                None
            } else {
                tokio::select! {
                    biased;
                    _ = stopping.changed() => None,
                    e = events.recv() => match e {
                        Some(e) => Some(e),
                        None => return,
                    },
                }
            };
            let Some(first) = first.filter(|_| !*stopping.borrow()) else {
                let _ = prepared.send(Step::Stop).await;
                return;
            };
            let mut items = vec![first];
            while items.len() < max_batch {
                match events.try_recv() {
                    Ok(x) => items.push(x),
                    Err(_) => break,
                }
            }
            // A trickle (a few events per commit) lingers for more: each batch costs a
            // transaction and an audit record whatever its size.
            if items.len() < LINGER_BELOW {
                let until = tokio::time::Instant::now() + PUBLISH_LINGER;
                while items.len() < max_batch && !matches!(items.last(), Some(Err(_))) {
                    tokio::select! {
                        biased;
                        _ = stopping.changed() => break,
                        e = tokio::time::timeout_at(until, events.recv()) => match e {
                            Ok(Some(x)) => items.push(x),
                            // The stream ended, or the linger is over.
                            Ok(None) | Err(_) => break,
                        },
                    }
                }
            }
            let mut broken = false;
            let mut batch = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    Ok(r) => batch.push(r.movement),
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            let p = self.prepare_batch(&ctx, batch).await;
            if prepared.send(Step::Batch(p, broken)).await.is_err() || broken {
                return;
            }
        }
    }

    /// Commits the prepared batches of a publishing stream in order and sends their acks.
    async fn run_publish(
        self,
        ctx: CallCtx,
        events: mpsc::Receiver<Result<proto::PublishMovementsRequest, Status>>,
        acks: mpsc::Sender<Result<proto::MovementAck, Status>>,
    ) {
        // One batch waits prepared while one commits: memory stays bounded.
        let (prepared_tx, mut prepared) = mpsc::channel(1);
        tokio::spawn(self.clone().prepare_stream(ctx.clone(), events, prepared_tx));
        while let Some(step) = prepared.recv().await {
            match step {
                Step::Batch(p, broken) => {
                    for ack in self.commit_batch(&ctx, p).await {
                        if acks.send(Ok(ack)).await.is_err() {
                            return;
                        }
                    }
                    if broken {
                        return;
                    }
                }
                Step::Stop => {
                    let _ = acks
                        .send(Err(Status::unavailable(
                            "the hub is shutting down: resend the movements not acknowledged",
                        )))
                        .await;
                    return;
                }
            }
        }
    }

    async fn subscribe(
        &self,
        ctx: CallCtx,
        req: proto::SubscribeMovementsRequest,
    ) -> AppResult<mpsc::Receiver<Result<proto::SubscribeMovementsResponse, Status>>> {
        if req.since < 0 {
            return Err(AppError::invalid("since", "must be 0 or a position received earlier"));
        }
        let Some(ght) = ctx.principal.ght_id.clone() else {
            self.guard.authorize(&ctx, MOVE, Action::Read, &Target::default()).await?;
            return Err(AppError::denied("deny-by-default", "the caller's token names no GHT"));
        };
        let mut ests = vec![];
        for (i, e) in req.establishment_ids.iter().enumerate() {
            let field = format!("establishment_ids[{i}]");
            let e = validate::finess(&field, e)?;
            if ght_of(&self.db, &e).await? != ght {
                return Err(AppError::invalid(field, "is not an establishment of the caller's GHT"));
            }
            ests.push(e);
        }
        let explicit = !ests.is_empty();
        if !explicit {
            ests =
                crate::registry::store::list_establishments(&self.db, &ght).await?.into_iter().map(|e| e.id).collect();
        }
        let scope = read_scope(&self.guard, &ctx, MOVE, &ght, &ests, None).await?;
        if explicit {
            if let Some(e) = ests.iter().find(|e| !scope.allows(e)) {
                let msg = format!("establishment {e} is outside what the caller may read");
                self.guard.record(&ctx, MOVE, Action::Read, &Target::establishment(&ght, e), "DENY", &msg).await?;
                return Err(AppError::denied("subscription-scope", msg));
            }
        }
        let allowed = scope.allowed.clone();
        let mut ids = allowed.clone();
        ids.push(format!("since:{}", req.since));
        scope.record(&self.guard, &ctx, ids).await?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let feed =
            Feed { svc: self.clone(), ctx, ght, requested: ests, allowed, cursor: req.since, follow: req.follow };
        tokio::spawn(feed.run(tx));
        Ok(rx)
    }

    async fn get_encounter(&self, ctx: CallCtx, req: proto::GetEncounterRequest) -> AppResult<proto::Encounter> {
        let est = validate::finess("establishment_id", &req.establishment_id)?;
        let enc = validate::token("encounter_id", &req.encounter_id, 64)?;
        // The patient is needed to decide (care relationship); nothing is returned before.
        let row = store::encounter(&self.db, &est, &enc).await?;
        let patient = match &row {
            Some(r) => Some(store::territorial_of(&self.db, &est, &r.ipp).await?),
            None => None,
        };
        let mut ids = vec![format!("{est}:{enc}")];
        if let (Some(r), Some(t)) = (&row, &patient) {
            ids.extend([format!("{est}:{}", r.ipp), t.clone()]);
        }
        authorize_at(&self.guard, &self.db, &ctx, MOVE, Action::Read, &est, patient.as_deref(), ids).await?;
        let row = row.ok_or_else(|| AppError::not_found(format!("encounter {est}:{enc}")))?;
        let t = patient.unwrap_or_default();
        let movements = store::history(&self.db, &est, &enc).await?.iter().map(|m| m.to_proto(&t)).collect();
        Ok(row.to_proto(&t, movements))
    }

    async fn journey(
        &self,
        ctx: CallCtx,
        req: proto::PatientJourneyRequest,
    ) -> AppResult<proto::PatientJourneyResponse> {
        use crate::identity::store as ids;
        let t = validate::token("territorial_id", &req.territorial_id, 40)?;
        let mut db = self.db.reader();
        let (ght, _, _) = ids::territorial(&mut db, &t)
            .await?
            .ok_or_else(|| AppError::not_found(format!("territorial identity {t}")))?;
        let live = ids::resolve_territorial(&mut db, &t).await?.unwrap_or_else(|| t.clone());
        let locals = ids::locals_of(&mut db, &live).await?;
        let mut encounters = vec![];
        for l in &locals {
            encounters.extend(store::encounters_of_patient(&self.db, &l.establishment_id, &l.ipp).await?);
        }
        let mut ests: Vec<String> = locals.iter().map(|l| l.establishment_id.clone()).collect();
        ests.sort();
        ests.dedup();
        let scope = read_scope(&self.guard, &ctx, MOVE, &ght, &ests, Some(&live)).await?;
        encounters.retain(|e| scope.allows(&e.establishment_id));
        encounters.sort_by_key(|e| (e.admitted_at.unwrap_or(e.first_event_at), e.establishment_id.clone()));
        let mut audit_ids = vec![live.clone()];
        audit_ids.extend(encounters.iter().map(|e| format!("{}:{}", e.establishment_id, e.encounter_id)));
        scope.record(&self.guard, &ctx, audit_ids).await?;
        let mut out = vec![];
        for e in &encounters {
            let history = store::history(&self.db, &e.establishment_id, &e.encounter_id).await?;
            out.push(e.to_proto(&live, history.iter().map(|m| m.to_proto(&live)).collect()));
        }
        Ok(proto::PatientJourneyResponse { territorial_id: live, encounters: out })
    }
}

/// One subscription: reads the feed after its cursor, in pages, and sends what the
/// subscriber may see through a bounded channel.
struct Feed {
    svc: MovementService,
    ctx: CallCtx,
    ght: String,
    requested: Vec<String>,
    allowed: Vec<String>,
    cursor: i64,
    follow: bool,
}

type FeedSender = mpsc::Sender<Result<proto::SubscribeMovementsResponse, Status>>;

impl Feed {
    async fn run(mut self, tx: FeedSender) {
        if let Err(e) = self.pump(&tx).await {
            let _ = tx.send(Err(e.into())).await;
        }
    }

    async fn pump(&mut self, tx: &FeedSender) -> AppResult<()> {
        let mut wake = self.svc.bus.subscribe();
        let mut stopping = self.svc.stopping.clone();
        let mut checked = tokio::time::Instant::now();
        loop {
            if *stopping.borrow() {
                return Err(AppError::Unavailable(format!(
                    "the hub is shutting down: resume from cursor {}",
                    self.cursor
                )));
            }
            if checked.elapsed() >= RECHECK {
                self.recheck().await?;
                checked = tokio::time::Instant::now();
            }
            let page = store::feed_after(&self.svc.db, self.cursor, FEED_PAGE).await?;
            let Some(last) = page.last().map(|r| r.movement.mv.position) else {
                if !self.follow {
                    return Ok(());
                }
                tokio::select! {
                    _ = wake.changed() => {
                        // Commits close together make one page (one read, one audit
                        // record) rather than one each.
                        tokio::select! {
                            _ = tokio::time::sleep(FEED_LINGER) => {}
                            _ = stopping.changed() => {}
                            _ = tx.closed() => return Ok(()),
                        }
                    }
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stopping.changed() => {}
                    _ = tx.closed() => return Ok(()),
                }
                continue;
            };
            let visible: Vec<&store::FeedRow> =
                page.iter().filter(|r| self.allowed.contains(&r.movement.establishment_id)).collect();
            if !visible.is_empty() {
                // Audited before anything leaves: the patients this page shows.
                let first = visible[0].movement.mv.position;
                let mut ids: Vec<String> = visible.iter().map(|r| r.territorial_id.clone()).collect();
                ids.sort();
                ids.dedup();
                ids.push(format!("positions:{first}-{last}"));
                let target = Target { ght_id: Some(self.ght.clone()), ids, ..Default::default() };
                self.svc.guard.record(&self.ctx, MOVE, Action::Read, &target, "ALLOW", "subscription page").await?;
            }
            let mut sent = Ok(());
            for r in &visible {
                let msg = proto::SubscribeMovementsResponse {
                    cursor: r.movement.mv.position,
                    movement: Some(r.movement.to_proto(&r.territorial_id)),
                };
                sent = send_or_stop(tx, Ok(msg), &mut stopping).await;
                if sent.is_err() {
                    break;
                }
                self.cursor = r.movement.mv.position;
            }
            if sent.is_ok() && visible.last().map(|r| r.movement.mv.position) != Some(last) {
                // Advance the subscriber past movements it may not see.
                let keep_alive = proto::SubscribeMovementsResponse { cursor: last, movement: None };
                sent = send_or_stop(tx, Ok(keep_alive), &mut stopping).await;
                if sent.is_ok() {
                    self.cursor = last;
                }
            }
            match sent {
                Ok(()) => {}
                Err(Halt::Closed) => return Ok(()),
                // The loop's first check ends the stream with the cursor to resume from.
                Err(Halt::Stopping) => continue,
            }
        }
    }

    /// Re-decides the subscription's establishments (a designation may have ended).
    async fn recheck(&mut self) -> AppResult<()> {
        let mut allowed = vec![];
        for e in &self.requested {
            let t = Target::establishment(&self.ght, e);
            if self.svc.guard.evaluate(&self.ctx.principal, MOVE, Action::Read, &t).await?.0.allowed {
                allowed.push(e.clone());
            }
        }
        if allowed.is_empty() {
            let why = "the caller may no longer read these movements";
            self.svc.guard.record(&self.ctx, MOVE, Action::Read, &Target::ght(&self.ght), "DENY", why).await?;
            return Err(AppError::denied("subscription-scope", why));
        }
        self.allowed = allowed;
        Ok(())
    }
}

#[tonic::async_trait]
impl movements_server::Movements for MovementService {
    type PublishMovementsStream = ReceiverStream<Result<proto::MovementAck, Status>>;
    type SubscribeMovementsStream = ReceiverStream<Result<proto::SubscribeMovementsResponse, Status>>;

    async fn publish_movements(
        &self,
        req: Request<Streaming<proto::PublishMovementsRequest>>,
    ) -> Result<Response<Self::PublishMovementsStream>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        let mut inbound = req.into_inner();
        // Decoding runs ahead of committing: the next batch gathers while one commits.
        let (ev_tx, ev_rx) = mpsc::channel(MAX_BATCH_POSTGRES);
        let (ack_tx, ack_rx) = mpsc::channel(MAX_BATCH_POSTGRES);
        tokio::spawn(async move {
            loop {
                // Stops reading when the committing side is done (client gone, hub
                // draining): dropping the request stream closes it.
                let next = tokio::select! {
                    m = inbound.message() => m,
                    _ = ev_tx.closed() => break,
                };
                let item = match next {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => break,
                    Err(s) => Err(s),
                };
                let end = item.is_err();
                if ev_tx.send(item).await.is_err() || end {
                    break;
                }
            }
        });
        tokio::spawn(self.clone().run_publish(ctx, ev_rx, ack_tx));
        Ok(Response::new(ReceiverStream::new(ack_rx)))
    }

    async fn subscribe_movements(
        &self,
        req: Request<proto::SubscribeMovementsRequest>,
    ) -> Result<Response<Self::SubscribeMovementsStream>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(ReceiverStream::new(self.subscribe(ctx, req.into_inner()).await?)))
    }

    async fn get_encounter(
        &self,
        req: Request<proto::GetEncounterRequest>,
    ) -> Result<Response<proto::Encounter>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.get_encounter(ctx, req.into_inner()).await?))
    }

    async fn patient_journey(
        &self,
        req: Request<proto::PatientJourneyRequest>,
    ) -> Result<Response<proto::PatientJourneyResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.journey(ctx, req.into_inner()).await?))
    }
}
