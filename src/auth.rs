//! Party tokens (JWT, EdDSA) and the tower layer that verifies them on every call.
//!
//! Verification pins the algorithm (EdDSA: `alg: none` and HS256 are refused),
//! requires `exp`, `nbf`, `iss`, `aud` and `sub`, checks issuer and audience, and
//! allows 30 s of clock skew. Several verification keys may be configured, selected
//! by the token's `kid`, so signing keys can be rotated without downtime.
//! With mTLS, the client certificate's common name must equal the token subject.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::{
    access::{policy::Principal, RequestId, Role, RpcPath},
    AppError, AppResult,
};

/// Claims of a party token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ght: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub est: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
}

/// Seconds of clock skew tolerated on exp and nbf.
pub const LEEWAY_SECS: u64 = 30;

/// Checks the claims beyond the JWT registered ones: a known role and the
/// attachments that role needs. Used by the verifier and by the fuzz target.
pub fn principal_from_claims(c: &Claims) -> AppResult<Principal> {
    let role =
        Role::parse(&c.role).ok_or_else(|| AppError::Unauthenticated(format!("token role '{}' is unknown", c.role)))?;
    let clean = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (ght, est, region) = (clean(&c.ght), clean(&c.est), clean(&c.region));
    if c.sub.trim().is_empty() {
        return Err(AppError::Unauthenticated("token subject is empty".into()));
    }
    if role.needs_ght() && ght.is_none() {
        return Err(AppError::Unauthenticated(format!("token of role {role} must name its GHT (claim 'ght')")));
    }
    if role.needs_establishment() && est.is_none() {
        return Err(AppError::Unauthenticated(format!(
            "token of role {role} must name its establishment (claim 'est')"
        )));
    }
    if role.needs_region() && region.is_none() {
        return Err(AppError::Unauthenticated(format!(
            "token of role {role} must name its ARS region (claim 'region')"
        )));
    }
    Ok(Principal { subject: c.sub.clone(), role, ght_id: ght, establishment_id: est, region, expires_at: c.exp })
}

pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    /// Tokens already verified, keyed by the whole token string. A signature check
    /// costs tens of microseconds; a party reuses its token for hours. Time-based
    /// claims are re-checked on every hit, and the cache is bounded.
    verified: std::sync::Mutex<HashMap<String, (Principal, i64)>>,
}

/// Most verified tokens remembered; the cache is emptied when full.
const VERIFIED_CACHE_MAX: usize = 10_000;

impl TokenVerifier {
    /// `keys`: (kid, SPKI PEM of an Ed25519 public key).
    pub fn new(issuer: &str, audience: &str, keys: Vec<(String, Vec<u8>)>) -> AppResult<TokenVerifier> {
        if keys.is_empty() {
            return Err(AppError::invalid("token_verify_key", "at least one verification key is required"));
        }
        let mut map = HashMap::new();
        for (kid, pem) in keys {
            let key = DecodingKey::from_ed_pem(&pem).map_err(|e| {
                AppError::invalid("token_verify_key", format!("key '{kid}' is not an Ed25519 public key PEM: {e}"))
            })?;
            map.insert(kid, key);
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        v.validate_exp = true;
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        Ok(TokenVerifier { keys: map, validation: v, verified: std::sync::Mutex::new(HashMap::new()) })
    }

    pub fn verify(&self, token: &str) -> AppResult<Principal> {
        let now = chrono::Utc::now().timestamp();
        let leeway = LEEWAY_SECS as i64;
        if let Ok(cache) = self.verified.lock() {
            if let Some((p, nbf)) = cache.get(token) {
                if now < p.expires_at + leeway && now + leeway >= *nbf {
                    return Ok(p.clone());
                }
            }
        }
        let (principal, nbf) = self.verify_uncached(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE_MAX {
                cache.clear();
            }
            cache.insert(token.to_string(), (principal.clone(), nbf));
        }
        Ok(principal)
    }

    fn verify_uncached(&self, token: &str) -> AppResult<(Principal, i64)> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AppError::Unauthenticated(format!("malformed token: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AppError::Unauthenticated(format!(
                "token algorithm {:?} is not accepted (EdDSA only)",
                header.alg
            )));
        }
        let candidates: Vec<&DecodingKey> = match &header.kid {
            Some(kid) => vec![self
                .keys
                .get(kid)
                .ok_or_else(|| AppError::Unauthenticated(format!("token key id '{kid}' is unknown")))?],
            None => self.keys.values().collect(),
        };
        let mut last = None;
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return Ok((principal_from_claims(&data.claims)?, data.claims.nbf)),
                Err(e) => last = Some(e),
            }
        }
        let reason = last.map(|e| e.to_string()).unwrap_or_else(|| "no key".into());
        Err(AppError::Unauthenticated(format!("token rejected: {reason}")))
    }
}

/// Issues tokens (development and the CLI's `ghthub token`).
pub struct TokenIssuer {
    key: EncodingKey,
    kid: String,
    pub issuer: String,
    pub audience: String,
}

impl TokenIssuer {
    /// `pem`: PKCS#8 PEM of an Ed25519 private key.
    pub fn new(pem: &[u8], kid: &str, issuer: &str, audience: &str) -> AppResult<TokenIssuer> {
        let key = EncodingKey::from_ed_pem(pem)
            .map_err(|e| AppError::invalid("signing_key", format!("not an Ed25519 PKCS#8 PEM: {e}")))?;
        Ok(TokenIssuer { key, kid: kid.to_string(), issuer: issuer.into(), audience: audience.into() })
    }

    pub fn issue(&self, p: &Principal, ttl_secs: i64) -> AppResult<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: p.subject.clone(),
            role: p.role.as_str().to_string(),
            ght: p.ght_id.clone(),
            est: p.establishment_id.clone(),
            region: p.region.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl_secs,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        // Claims must make a valid principal: refuse to mint a token the hub would refuse.
        principal_from_claims(&claims).map_err(|e| AppError::invalid("claims", e.to_string()))?;
        self.sign(&claims)
    }

    pub fn sign(&self, claims: &Claims) -> AppResult<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| AppError::internal(format!("signing: {e}")))
    }
}

/// Calls that need no token: health checks (probes) and reflection (tooling).
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

pub struct AuthConfig {
    pub verifier: TokenVerifier,
    /// With mTLS: the client certificate CN must equal the token subject.
    pub require_client_cert: bool,
    /// Per-party limits (None = unlimited).
    pub limits: PartyLimits,
}

/// Per-party abuse limits: a token bucket of calls per second, and a cap on calls
/// (streams included) in flight at once. One party cannot starve the others.
pub struct PartyLimits {
    rate: Option<governor::DefaultKeyedRateLimiter<String>>,
    rate_per_sec: u32,
    max_in_flight: usize,
    in_flight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl PartyLimits {
    /// `rate_per_sec` 0 disables the rate limit; `max_in_flight` 0 disables the cap.
    pub fn new(rate_per_sec: u32, burst: u32, max_in_flight: usize) -> PartyLimits {
        let rate = std::num::NonZeroU32::new(rate_per_sec).map(|r| {
            let burst = std::num::NonZeroU32::new(burst.max(rate_per_sec)).unwrap_or(r);
            governor::RateLimiter::keyed(governor::Quota::per_second(r).allow_burst(burst))
        });
        PartyLimits { rate, rate_per_sec, max_in_flight, in_flight: std::sync::Mutex::new(HashMap::new()) }
    }

    pub fn unlimited() -> PartyLimits {
        PartyLimits::new(0, 0, 0)
    }

    /// Admits one call of `subject`, or says which limit refuses it. The permit is held
    /// until the response (stream) ends.
    fn admit(&self, subject: &str) -> AppResult<Option<tokio::sync::OwnedSemaphorePermit>> {
        if let Some(rate) = &self.rate {
            if rate.check_key(&subject.to_string()).is_err() {
                return Err(AppError::ResourceExhausted(format!(
                    "rate limit of {} calls/s for party '{subject}' exceeded; retry later",
                    self.rate_per_sec
                )));
            }
        }
        if self.max_in_flight == 0 {
            return Ok(None);
        }
        let sem = {
            let mut map = self.in_flight.lock().map_err(|_| AppError::internal("limits lock poisoned"))?;
            map.entry(subject.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.max_in_flight)))
                .clone()
        };
        sem.try_acquire_owned().map(Some).map_err(|_| {
            AppError::ResourceExhausted(format!(
                "party '{subject}' already has {} calls or streams open; close some first",
                self.max_in_flight
            ))
        })
    }
}

/// A response body that holds the party's in-flight permit until the body ends.
struct PermitBody {
    inner: tonic::body::Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for PermitBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The tower layer: verifies the party token and inserts the [`Principal`],
/// the [`RequestId`] and the [`RpcPath`] into the request's extensions.
#[derive(Clone)]
pub struct AuthLayer {
    cfg: Arc<AuthConfig>,
}

impl AuthLayer {
    pub fn new(cfg: AuthConfig) -> Self {
        AuthLayer { cfg: Arc::new(cfg) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, cfg: self.cfg.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    cfg: Arc<AuthConfig>,
}

fn peer_common_name<B>(req: &http::Request<B>) -> Option<String> {
    let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs()?;
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

impl AuthConfig {
    fn authenticate<B>(&self, req: &http::Request<B>) -> AppResult<Principal> {
        let header = req.headers().get(http::header::AUTHORIZATION).ok_or_else(|| {
            AppError::Unauthenticated("missing 'authorization: Bearer <party token>' metadata".into())
        })?;
        let value =
            header.to_str().map_err(|_| AppError::Unauthenticated("authorization metadata is not ASCII".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| AppError::Unauthenticated("authorization must be 'Bearer <party token>'".into()))?;
        let principal = self.verifier.verify(token.trim())?;
        if self.require_client_cert {
            match peer_common_name(req) {
                Some(cn) if cn == principal.subject => {}
                Some(cn) => {
                    return Err(AppError::Unauthenticated(format!(
                        "client certificate CN '{cn}' does not match token subject '{}'",
                        principal.subject
                    )))
                }
                None => return Err(AppError::Unauthenticated("a client certificate is required".into())),
            }
        }
        Ok(principal)
    }
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        if is_public(&path) {
            return Box::pin(self.inner.call(req));
        }
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(String::from)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let admitted = self.cfg.authenticate(&req).and_then(|p| {
            let permit = self.cfg.limits.admit(&p.subject)?;
            Ok((p, permit))
        });
        match admitted {
            Ok((principal, permit)) => {
                tracing::debug!(subject = %principal.subject, role = %principal.role, %path, "authenticated");
                req.extensions_mut().insert(principal);
                req.extensions_mut().insert(RequestId(request_id));
                req.extensions_mut().insert(RpcPath(path));
                // Swap in a fresh clone so the service we polled ready is the one we call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let resp = inner.call(req).await?;
                    Ok(match permit {
                        Some(permit) => resp.map(|inner| tonic::body::Body::new(PermitBody { inner, _permit: permit })),
                        None => resp,
                    })
                })
            }
            Err(e) => {
                tracing::info!(%path, reason = %e, "call refused before reaching a service");
                let status: tonic::Status = e.into();
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
