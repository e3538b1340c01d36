//! The `Identity` gRPC service.

use tonic::{Request, Response, Status};

use super::{
    changes::Decision,
    index,
    ins::validate_ins,
    matching::{score, Fields, MatchKeys},
    scope::{authorize_at, read_scope},
    store::{self, IdentityRow},
    types::{birth_date, insee_place, sex_code, validate_identity},
};
use crate::{
    access::{Action, CallCtx, DataClass, Guard, Target},
    db::Db,
    idempotency,
    proto::{self, identity_server},
    time::now_micros,
    validate, AppError, AppResult,
};

const IDENT: DataClass = DataClass::IdentityNominative;

/// Results of a search: default and most.
const SEARCH_DEFAULT: u32 = 20;
const SEARCH_MAX: u32 = 50;
/// Rows examined per blocking key by a search, and the lowest score returned.
const SEARCH_SCAN: i64 = 200;
const SEARCH_MIN_SCORE: f64 = 0.6;

pub struct IdentityService {
    pub db: Db,
    pub guard: Guard,
}

fn local_ref(field: &str, r: &Option<proto::LocalIdentityRef>) -> AppResult<(String, String)> {
    let r = r.as_ref().ok_or_else(|| AppError::invalid(field, "is required"))?;
    Ok((
        validate::finess(&format!("{field}.establishment_id"), &r.establishment_id)?,
        validate::token(&format!("{field}.ipp"), &r.ipp, 64)?,
    ))
}

fn reason(r: &str) -> AppResult<String> {
    validate::text("reason", r, 500)
}

fn audit_ref(k: &(String, String)) -> String {
    format!("{}:{}", k.0, k.1)
}

fn list_limit(limit: u32) -> i64 {
    i64::from(if limit == 0 { 100 } else { limit.min(1000) })
}

impl IdentityService {
    /// The caller's GHT, for GHT-wide calls; a caller without one is refused (and audited).
    async fn caller_ght(&self, ctx: &CallCtx, action: Action) -> AppResult<String> {
        match &ctx.principal.ght_id {
            Some(g) => Ok(g.clone()),
            None => {
                self.guard.authorize(ctx, IDENT, action, &Target::default()).await?;
                Err(AppError::denied("deny-by-default", "the caller's token names no GHT"))
            }
        }
    }

    async fn establishments(&self, ght: &str, only: &str) -> AppResult<Vec<String>> {
        if !only.trim().is_empty() {
            let e = validate::finess("establishment_id", only)?;
            if super::scope::ght_of(&self.db, &e).await? != ght {
                return Err(AppError::invalid("establishment_id", "is not an establishment of the caller's GHT"));
            }
            return Ok(vec![e]);
        }
        Ok(crate::registry::store::list_establishments(&self.db, ght).await?.into_iter().map(|e| e.id).collect())
    }

    async fn upsert(
        &self,
        ctx: CallCtx,
        req: proto::UpsertIdentityRequest,
    ) -> AppResult<proto::UpsertIdentityResponse> {
        let identity = req.identity.as_ref().ok_or_else(|| AppError::invalid("identity", "is required"))?;
        let input = validate_identity("identity", identity, chrono::Utc::now().date_naive())?;
        let key = (input.establishment_id.clone(), input.ipp.clone());
        let ght = authorize_at(&self.guard, &self.db, &ctx, IDENT, Action::Write, &key.0, None, vec![audit_ref(&key)])
            .await?;
        // A short transaction (a dozen statements): on SQLite it runs on the direct
        // writer, on this thread, instead of a round trip to sqlx's worker per statement.
        crate::write_tx!(self.db, |tx| {
            store::lock_index(tx, &ght).await?;
            if let Some(prev) = idempotency::replay(tx, &ctx, &req.request_id).await? {
                return Ok(prev);
            }
            let out = index::upsert(tx, &ght, &input, &ctx.principal.subject, now_micros()).await?;
            let answer = proto::UpsertIdentityResponse {
                identity: Some(out.row.to_proto()),
                created: out.created,
                downgraded: out.transition.downgraded,
                note: out.transition.note.clone(),
                auto_linked: out
                    .auto_linked
                    .iter()
                    .map(|(e, i)| proto::LocalIdentityRef { establishment_id: e.clone(), ipp: i.clone() })
                    .collect(),
                alert_ids: out.alert_ids.clone(),
                candidate_matches: out.candidates,
            };
            idempotency::remember(tx, &ctx, &req.request_id, &answer).await?;
            Ok(answer)
        })
    }

    /// A territorial identity with its local identities and events, as `scope` allows.
    async fn territorial_view(
        &self,
        id: &str,
        allowed: &(dyn Fn(&str) -> bool + Sync),
        locals: &[IdentityRow],
    ) -> AppResult<proto::TerritorialIdentity> {
        let (ght, merged_into, created_at) = store::territorial(&mut self.db.reader(), id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("territorial identity {id}")))?;
        let mut events = store::events_of(&self.db, id).await?;
        for e in &mut events {
            e.identities.retain(|r| allowed(&r.establishment_id));
        }
        Ok(proto::TerritorialIdentity {
            id: id.to_string(),
            ght_id: ght,
            identities: if merged_into.is_none() {
                locals.iter().filter(|l| allowed(&l.establishment_id)).map(IdentityRow::to_proto).collect()
            } else {
                vec![]
            },
            merged_into: merged_into.unwrap_or_default(),
            events,
            created_at: crate::time::to_rfc3339(created_at),
        })
    }

    async fn get(&self, ctx: CallCtx, req: proto::GetIdentityRequest) -> AppResult<proto::GetIdentityResponse> {
        use proto::get_identity_request::Key;
        match req.key {
            Some(Key::Local(r)) => {
                let key = local_ref("local", &Some(r))?;
                let ght =
                    authorize_at(&self.guard, &self.db, &ctx, IDENT, Action::Read, &key.0, None, vec![audit_ref(&key)])
                        .await?;
                let (row, locals) = store::get_with_locals(&self.db, &key.0, &key.1)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("identity {}", audit_ref(&key))))?;
                // The other establishments' identities of this patient, as the policy allows.
                let others: Vec<String> =
                    distinct(locals.iter().map(|l| l.establishment_id.clone()).filter(|e| *e != key.0));
                let mut visible = vec![key.0.clone()];
                if !others.is_empty() {
                    if let Ok(scope) =
                        read_scope(&self.guard, &ctx, IDENT, &ght, &others, Some(&row.territorial_id)).await
                    {
                        visible.extend(scope.allowed.iter().cloned());
                        let ids =
                            locals.iter().filter(|l| scope.allows(&l.establishment_id)).map(IdentityRow::audit_ref);
                        let mut ids: Vec<String> = ids.collect();
                        ids.push(row.territorial_id.clone());
                        scope.record(&self.guard, &ctx, ids).await?;
                    }
                }
                let allowed = |e: &str| visible.iter().any(|v| v == e);
                let territorial = self.territorial_view(&row.territorial_id, &allowed, &locals).await?;
                Ok(proto::GetIdentityResponse { identity: Some(row.to_proto()), territorial: Some(territorial) })
            }
            Some(Key::TerritorialId(t)) => {
                let t = validate::token("territorial_id", &t, 40)?;
                let mut db = self.db.reader();
                let (ght, _, _) = store::territorial(&mut db, &t)
                    .await?
                    .ok_or_else(|| AppError::not_found(format!("territorial identity {t}")))?;
                let live = store::resolve_territorial(&mut db, &t).await?.unwrap_or_else(|| t.clone());
                let locals = store::locals_of(&mut db, &live).await?;
                let ests = distinct(locals.iter().map(|l| l.establishment_id.clone()));
                if ests.is_empty() {
                    return Err(AppError::not_found(format!("territorial identity {t}")));
                }
                let scope = read_scope(&self.guard, &ctx, IDENT, &ght, &ests, Some(&t)).await?;
                let allowed = |e: &str| scope.allows(e);
                let territorial = self.territorial_view(&t, &allowed, &locals).await?;
                let mut ids: Vec<String> =
                    territorial.identities.iter().map(|l| format!("{}:{}", l.establishment_id, l.ipp)).collect();
                ids.push(t.clone());
                scope.record(&self.guard, &ctx, ids).await?;
                Ok(proto::GetIdentityResponse { identity: None, territorial: Some(territorial) })
            }
            None => Err(AppError::invalid("key", "a local reference or a territorial_id is required")),
        }
    }

    async fn search(
        &self,
        ctx: CallCtx,
        req: proto::SearchIdentitiesRequest,
    ) -> AppResult<proto::SearchIdentitiesResponse> {
        use proto::search_identities_request::Query;
        let limit = match req.limit {
            0 => SEARCH_DEFAULT,
            n if n > SEARCH_MAX => return Err(AppError::invalid("limit", format!("at most {SEARCH_MAX}"))),
            n => n,
        } as usize;
        // Validate before deciding, so a bad query costs no audit record.
        enum Q {
            Ins(super::ins::Ins),
            Traits(MatchKeys, Fields),
        }
        let q = match &req.query {
            Some(Query::Ins(i)) => Q::Ins(validate_ins(&i.matricule, &i.oid)?),
            Some(Query::Traits(t)) => {
                let name = validate::text("traits.birth_name", &t.birth_name, 100)?;
                let first =
                    validate::opt_text("traits.first_given_name", &t.first_given_name, 100)?.unwrap_or_default();
                let date = match t.birth_date.trim() {
                    "" => String::new(),
                    d => birth_date("traits.birth_date", d, chrono::Utc::now().date_naive())?,
                };
                let sex = match proto::AdministrativeSex::try_from(t.sex) {
                    Ok(proto::AdministrativeSex::Unspecified) => "",
                    Ok(s) => sex_code(s),
                    Err(_) => return Err(AppError::invalid("traits.sex", format!("unknown enum value {}", t.sex))),
                };
                let place = match t.birth_place_code.trim() {
                    "" => String::new(),
                    p => insee_place("traits.birth_place_code", p)?,
                };
                let fields = Fields {
                    first_name: !first.is_empty(),
                    birth_date: !date.is_empty(),
                    sex: !sex.is_empty(),
                    birth_place: !place.is_empty(),
                };
                Q::Traits(MatchKeys::new(&name, &first, &first, &date, sex, &place), fields)
            }
            None => return Err(AppError::invalid("query", "an INS or traits are required")),
        };
        let ght = self.caller_ght(&ctx, Action::Read).await?;
        let ests = self.establishments(&ght, "").await?;
        let scope = read_scope(&self.guard, &ctx, IDENT, &ght, &ests, None).await?;
        let mut hits: Vec<(f64, IdentityRow)> = vec![];
        if !scope.allowed.is_empty() {
            match &q {
                Q::Ins(ins) => {
                    for r in store::search_ins(&self.db, &ght, ins, &scope.allowed, limit as i64 + 1).await? {
                        hits.push((1.0, r));
                    }
                }
                Q::Traits(keys, fields) => {
                    let rows = if fields.first_name || fields.birth_date {
                        store::blocked_read(&self.db, &ght, keys, Some(&scope.allowed), SEARCH_SCAN).await?
                    } else {
                        store::by_phonetic_name(&self.db, &ght, &keys.birth_name_phon, &scope.allowed, SEARCH_SCAN)
                            .await?
                    };
                    for r in rows {
                        let s = score(keys, &r.keys, *fields).score;
                        if s >= SEARCH_MIN_SCORE {
                            hits.push((s, r));
                        }
                    }
                }
            }
        }
        hits.sort_by(|a, b| {
            b.0.total_cmp(&a.0).then_with(|| (&a.1.establishment_id, &a.1.ipp).cmp(&(&b.1.establishment_id, &b.1.ipp)))
        });
        let truncated = hits.len() > limit;
        hits.truncate(limit);
        let ids = hits.iter().flat_map(|(_, r)| [r.audit_ref(), r.territorial_id.clone()]).collect();
        scope.record(&self.guard, &ctx, ids).await?;
        Ok(proto::SearchIdentitiesResponse {
            hits: hits
                .into_iter()
                .map(|(score, r)| proto::IdentitySearchHit { identity: Some(r.to_proto()), score })
                .collect(),
            truncated,
        })
    }

    /// Authorizes a write on each establishment named (audited), all in one GHT.
    async fn authorize_writes(&self, ctx: &CallCtx, keys: &[(String, String)]) -> AppResult<String> {
        let ids: Vec<String> = keys.iter().map(audit_ref).collect();
        let mut ght: Option<String> = None;
        for e in distinct(keys.iter().map(|k| k.0.clone())) {
            let g = authorize_at(&self.guard, &self.db, ctx, IDENT, Action::Write, &e, None, ids.clone()).await?;
            if ght.as_ref().is_some_and(|x| *x != g) {
                return Err(AppError::invalid("establishment_id", "the identities belong to different GHTs"));
            }
            ght = Some(g);
        }
        ght.ok_or_else(|| AppError::invalid("identities", "at least one is required"))
    }

    /// Runs one index operation in a transaction with idempotent replay.
    async fn index_op(
        &self,
        ctx: &CallCtx,
        ght: &str,
        request_id: &str,
        op: IndexOp,
    ) -> AppResult<proto::IdentityEvent> {
        let by = ctx.principal.subject.as_str();
        crate::write_tx!(self.db, |tx| {
            store::lock_index(tx, ght).await?;
            if let Some(prev) = idempotency::replay(tx, ctx, request_id).await? {
                return Ok(prev);
            }
            let at = now_micros();
            let event = match &op {
                IndexOp::Link(a, b, why) => {
                    index::link(tx, (&a.0, &a.1), (&b.0, &b.1), &Decision { by, at, reason: why }).await?
                }
                IndexOp::Unlink(x, why) => index::unlink(tx, (&x.0, &x.1), &Decision { by, at, reason: why }).await?,
                IndexOp::Merge(s, m, why) => {
                    index::merge(tx, (&s.0, &s.1), (&m.0, &m.1), &Decision { by, at, reason: why }).await?
                }
                IndexOp::Unmerge(id, why) => {
                    // Read again under the index lock: the check and the undo see one state.
                    let merge = store::event(tx, id)
                        .await?
                        .ok_or_else(|| AppError::not_found(format!("identity event {id}")))?;
                    index::unmerge(tx, &merge, &Decision { by, at, reason: why }).await?
                }
            }
            .to_proto();
            idempotency::remember(tx, ctx, request_id, &event).await?;
            Ok(event)
        })
    }

    async fn link(&self, ctx: CallCtx, req: proto::LinkIdentitiesRequest) -> AppResult<proto::IdentityEvent> {
        let a = local_ref("a", &req.a)?;
        let b = local_ref("b", &req.b)?;
        if a == b {
            return Err(AppError::invalid("b", "must differ from a"));
        }
        let why = reason(&req.reason)?;
        let ght = self.authorize_writes(&ctx, &[a.clone(), b.clone()]).await?;
        self.index_op(&ctx, &ght, &req.request_id, IndexOp::Link(a, b, why)).await
    }

    async fn unlink(&self, ctx: CallCtx, req: proto::UnlinkIdentityRequest) -> AppResult<proto::IdentityEvent> {
        let x = local_ref("identity", &req.identity)?;
        let why = reason(&req.reason)?;
        let ght = self.authorize_writes(&ctx, &[x.clone()]).await?;
        self.index_op(&ctx, &ght, &req.request_id, IndexOp::Unlink(x, why)).await
    }

    async fn merge(&self, ctx: CallCtx, req: proto::MergeIdentitiesRequest) -> AppResult<proto::IdentityEvent> {
        let s = local_ref("surviving", &req.surviving)?;
        let m = local_ref("merged", &req.merged)?;
        if s.0 != m.0 {
            return Err(AppError::invalid(
                "merged.establishment_id",
                "must be the surviving identity's establishment: a merge (A40) joins two IPPs of one establishment; \
                 use LinkIdentities across establishments",
            ));
        }
        if s.1 == m.1 {
            return Err(AppError::invalid("merged.ipp", "must differ from surviving.ipp"));
        }
        let why = reason(&req.reason)?;
        let ght = self.authorize_writes(&ctx, &[s.clone(), m.clone()]).await?;
        self.index_op(&ctx, &ght, &req.request_id, IndexOp::Merge(s, m, why)).await
    }

    async fn unmerge(&self, ctx: CallCtx, req: proto::UnmergeIdentitiesRequest) -> AppResult<proto::IdentityEvent> {
        let id = validate::token("merge_event_id", &req.merge_event_id, 40)?;
        let why = reason(&req.reason)?;
        let merge = store::event(&mut self.db.reader(), &id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("identity event {id}")))?;
        let ght = self.authorize_writes(&ctx, &merge.identities).await?;
        self.index_op(&ctx, &ght, &req.request_id, IndexOp::Unmerge(id, why)).await
    }

    async fn list_candidates(
        &self,
        ctx: CallCtx,
        req: proto::ListCandidateMatchesRequest,
    ) -> AppResult<proto::ListCandidateMatchesResponse> {
        let ght = self.caller_ght(&ctx, Action::Read).await?;
        let only = self.establishments(&ght, &req.establishment_id).await?;
        let every = self.establishments(&ght, "").await?;
        let scope = read_scope(&self.guard, &ctx, IDENT, &ght, &every, None).await?;
        // Both sides must be readable: a candidate shows two patients' identities.
        let mut rows =
            store::list_candidates(&self.db, &ght, &scope.allowed, req.include_decided, list_limit(req.limit)).await?;
        rows.retain(|c| only.contains(&c.a.0) || only.contains(&c.b.0));
        let ids =
            rows.iter().flat_map(|c| [c.id.clone(), format!("{}:{}", c.a.0, c.a.1), format!("{}:{}", c.b.0, c.b.1)]);
        scope.record(&self.guard, &ctx, ids.collect()).await?;
        Ok(proto::ListCandidateMatchesResponse { candidates: rows.iter().map(store::CandidateRow::to_proto).collect() })
    }

    async fn reject_candidate(
        &self,
        ctx: CallCtx,
        req: proto::RejectCandidateMatchRequest,
    ) -> AppResult<proto::CandidateMatch> {
        let id = validate::token("candidate_id", &req.candidate_id, 40)?;
        let why = reason(&req.reason)?;
        let c = store::candidate(&mut self.db.reader(), &id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("candidate {id}")))?;
        let ght = self.authorize_writes(&ctx, &[c.a.clone(), c.b.clone()]).await?;
        crate::write_tx!(self.db, |tx| {
            store::lock_index(tx, &ght).await?;
            let c = store::candidate(tx, &id).await?.ok_or_else(|| AppError::not_found(format!("candidate {id}")))?;
            if c.status != "OPEN" {
                return Err(AppError::precondition(format!("candidate {id} is already {}", c.status)));
            }
            let (a, b) = ((c.a.0.as_str(), c.a.1.as_str()), (c.b.0.as_str(), c.b.1.as_str()));
            store::reject_pair(tx, &ght, a, b, c.score, &ctx.principal.subject, &why, now_micros()).await?;
            let updated = store::candidate(tx, &id).await?.ok_or_else(|| AppError::internal("candidate vanished"))?;
            Ok(updated.to_proto())
        })
    }

    async fn list_alerts(
        &self,
        ctx: CallCtx,
        req: proto::ListVigilanceAlertsRequest,
    ) -> AppResult<proto::ListVigilanceAlertsResponse> {
        let ght = self.caller_ght(&ctx, Action::Read).await?;
        let only = self.establishments(&ght, &req.establishment_id).await?;
        let every = self.establishments(&ght, "").await?;
        let scope = read_scope(&self.guard, &ctx, IDENT, &ght, &every, None).await?;
        let mut alerts = store::list_alerts(&self.db, &ght, &scope.allowed, list_limit(req.limit)).await?;
        alerts.retain(|a| a.identities.iter().any(|r| only.contains(&r.establishment_id)));
        let ids = alerts.iter().flat_map(|a| {
            std::iter::once(a.id.clone())
                .chain(a.identities.iter().map(|r| format!("{}:{}", r.establishment_id, r.ipp)))
        });
        scope.record(&self.guard, &ctx, ids.collect()).await?;
        Ok(proto::ListVigilanceAlertsResponse { alerts })
    }
}

/// An index operation a person decides (see `index_op`), with its reason.
enum IndexOp {
    Link((String, String), (String, String), String),
    Unlink((String, String), String),
    Merge((String, String), (String, String), String),
    /// The MERGE event to undo.
    Unmerge(String, String),
}

fn distinct(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.collect();
    v.sort();
    v.dedup();
    v
}

#[tonic::async_trait]
impl identity_server::Identity for IdentityService {
    async fn upsert_identity(
        &self,
        req: Request<proto::UpsertIdentityRequest>,
    ) -> Result<Response<proto::UpsertIdentityResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.upsert(ctx, req.into_inner()).await?))
    }
    async fn get_identity(
        &self,
        req: Request<proto::GetIdentityRequest>,
    ) -> Result<Response<proto::GetIdentityResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.get(ctx, req.into_inner()).await?))
    }
    async fn search_identities(
        &self,
        req: Request<proto::SearchIdentitiesRequest>,
    ) -> Result<Response<proto::SearchIdentitiesResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.search(ctx, req.into_inner()).await?))
    }
    async fn link_identities(
        &self,
        req: Request<proto::LinkIdentitiesRequest>,
    ) -> Result<Response<proto::IdentityEvent>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.link(ctx, req.into_inner()).await?))
    }
    async fn unlink_identity(
        &self,
        req: Request<proto::UnlinkIdentityRequest>,
    ) -> Result<Response<proto::IdentityEvent>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.unlink(ctx, req.into_inner()).await?))
    }
    async fn merge_identities(
        &self,
        req: Request<proto::MergeIdentitiesRequest>,
    ) -> Result<Response<proto::IdentityEvent>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.merge(ctx, req.into_inner()).await?))
    }
    async fn unmerge_identities(
        &self,
        req: Request<proto::UnmergeIdentitiesRequest>,
    ) -> Result<Response<proto::IdentityEvent>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.unmerge(ctx, req.into_inner()).await?))
    }
    async fn list_candidate_matches(
        &self,
        req: Request<proto::ListCandidateMatchesRequest>,
    ) -> Result<Response<proto::ListCandidateMatchesResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list_candidates(ctx, req.into_inner()).await?))
    }
    async fn reject_candidate_match(
        &self,
        req: Request<proto::RejectCandidateMatchRequest>,
    ) -> Result<Response<proto::CandidateMatch>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.reject_candidate(ctx, req.into_inner()).await?))
    }
    async fn list_vigilance_alerts(
        &self,
        req: Request<proto::ListVigilanceAlertsRequest>,
    ) -> Result<Response<proto::ListVigilanceAlertsResponse>, Status> {
        let ctx = CallCtx::from_request(&req)?;
        Ok(Response::new(self.list_alerts(ctx, req.into_inner()).await?))
    }
}
