//! Foundation: TLS, health, reflection, party tokens, the registry, errors.

mod common;

use base64::Engine;
use common::{fixture::*, seed_territory, Backend, TestHub};
use ghthub::{
    access::Role,
    auth::Claims,
    cli::client::{connect_channel, HubClient},
    proto::{self, EstablishmentCategory as C, EstablishmentRole as R},
};
use tonic::Code;

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

async fn health_over_tls_and_plaintext_refused(hub: &TestHub) {
    let channel = connect_channel(&hub.url(), &hub.ca_pem(), None).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let r = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(r.into_inner().status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // Reflection lists our services (what grpcurl uses).
    let mut refl = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut stream = refl.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let names: Vec<String> = match resp.message_response.unwrap() {
        tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected {other:?}"),
    };
    assert!(names.contains(&"ghthub.v1.Registry".to_string()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_string()), "{names:?}");

    // Plaintext HTTP/2 to the TLS port fails.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", hub.addr().port()))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(3));
    let result = match plain.connect().await {
        Err(_) => Err(()),
        Ok(ch) => {
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.map(|_| ()).map_err(|_| ())
        }
    };
    assert!(result.is_err(), "a plaintext call must not succeed");

    // An unauthenticated call to a business service is refused.
    let anon = HubClient::from_channel(connect_channel(&hub.url(), &hub.ca_pem(), None).await.unwrap(), None).unwrap();
    assert_eq!(code(anon.registry().list_ghts(proto::ListGhtsRequest::default()).await), Code::Unauthenticated);
}
on_every_backend!(health_tls_reflection, health_over_tls_and_plaintext_refused);

async fn registry_visibility(hub: &TestHub) {
    seed_territory(hub).await;
    let dsi = hub.client(&hub.token(Role::EstablishmentDsi, "dsi-e2", Some(G1), Some(E2), None)).await;
    let list = dsi
        .registry()
        .list_establishments(proto::ListEstablishmentsRequest { ght_id: G1.into() })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = list.establishments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, vec![E1, E2, E3]);
    assert_eq!(list.establishments[0].role, R::Support as i32);

    // A DSI of another GHT sees nothing of G1.
    let other = hub.client(&hub.token(Role::EstablishmentDsi, "dsi-f1", Some(G2), Some(F1), None)).await;
    let ghts = other.registry().list_ghts(proto::ListGhtsRequest::default()).await.unwrap().into_inner().ghts;
    assert_eq!(ghts.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), vec![G2]);
    let denied = other.registry().list_establishments(proto::ListEstablishmentsRequest { ght_id: G1.into() }).await;
    let status = denied.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("est-dsi-registry-read"), "{}", status.message());
    assert_eq!(code(other.registry().get_ght(proto::GetGhtRequest { id: G1.into() }).await), Code::PermissionDenied);

    // An ARS reads the GHTs of its region only.
    let ars = hub.client(&hub.token(Role::Ars, "ars-ge", None, None, Some(R1))).await;
    let ghts = ars.registry().list_ghts(proto::ListGhtsRequest::default()).await.unwrap().into_inner().ghts;
    assert_eq!(ghts.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), vec![G1]);
    assert_eq!(code(ars.registry().get_ght(proto::GetGhtRequest { id: G2.into() }).await), Code::PermissionDenied);

    // An establishment DSI may not create establishments; the GHT DSI may, in its GHT only.
    let new_est = |ght: &str, id: &str| proto::CreateEstablishmentRequest {
        id: id.into(),
        ght_id: ght.into(),
        name: "EHPAD public".into(),
        role: R::Partie as i32,
        category: C::EpMedicoSocial as i32,
        request_id: String::new(),
    };
    assert_eq!(code(dsi.registry().create_establishment(new_est(G1, "540000072")).await), Code::PermissionDenied);
    let ght_dsi = hub.client(&hub.token(Role::GhtDsi, "dsi-ght", Some(G1), None, None)).await;
    ght_dsi.registry().create_establishment(new_est(G1, "540000072")).await.unwrap();
    assert_eq!(code(ght_dsi.registry().create_establishment(new_est(G2, "310000030")).await), Code::PermissionDenied);
}
on_every_backend!(registry_visibility_by_party, registry_visibility);

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn bad_tokens_are_unauthenticated(hub: &TestHub) {
    seed_territory(hub).await;
    let now = chrono::Utc::now().timestamp();
    let base = Claims {
        sub: "dsi-e2".into(),
        role: "ESTABLISHMENT_DSI".into(),
        ght: Some(G1.into()),
        est: Some(E2.into()),
        region: None,
        iss: hub.args.token_issuer.clone(),
        aud: hub.args.token_audience.clone(),
        exp: now + 600,
        nbf: now - 5,
        iat: now,
        jti: "t".into(),
    };
    let good = hub.issuer().sign(&base).unwrap();
    let mut cases: Vec<(&str, String)> = vec![];
    cases.push(("expired", hub.issuer().sign(&Claims { exp: now - 3600, ..base.clone() }).unwrap()));
    cases.push(("future nbf", hub.issuer().sign(&Claims { nbf: now + 3600, ..base.clone() }).unwrap()));
    cases.push(("wrong audience", hub.issuer().sign(&Claims { aud: "other-hub".into(), ..base.clone() }).unwrap()));
    cases.push(("wrong issuer", hub.issuer().sign(&Claims { iss: "evil".into(), ..base.clone() }).unwrap()));
    cases.push(("unknown role", hub.issuer().sign(&Claims { role: "SUPERUSER".into(), ..base.clone() }).unwrap()));
    cases.push(("DSI without establishment", hub.issuer().sign(&Claims { est: None, ..base.clone() }).unwrap()));
    // Missing aud / iss / exp, signed with the right key.
    let pem = std::fs::read(hub.args.dev_paths().token_signing_key()).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("dev".into());
    let full = serde_json::to_value(&base).unwrap();
    for missing in ["aud", "iss", "exp", "nbf"] {
        let mut c = full.clone();
        c.as_object_mut().unwrap().remove(missing);
        cases.push((missing, jsonwebtoken::encode(&header, &c, &key).unwrap()));
    }
    // alg: none.
    let none = format!("{}.{}.", b64(&serde_json::json!({"alg":"none","typ":"JWT"})), b64(&full));
    cases.push(("alg none", none));
    // HS256 with the public key as secret (algorithm confusion).
    let public = std::fs::read(hub.args.dev_paths().token_verify_key()).unwrap();
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &full,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    cases.push(("HS256", hs));
    // Tampered payload: role raised to ADMIN, original signature kept.
    let parts: Vec<&str> = good.split('.').collect();
    let mut raised = full.clone();
    raised["role"] = "ADMIN".into();
    cases.push(("tampered", format!("{}.{}.{}", parts[0], b64(&raised), parts[2])));
    // Signed by another key.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let other_key = jsonwebtoken::EncodingKey::from_ed_pem(other.serialize_pem().as_bytes()).unwrap();
    cases.push(("foreign key", jsonwebtoken::encode(&header, &full, &other_key).unwrap()));
    cases.push(("garbage", "not.a.token".into()));

    for (what, token) in cases {
        let c = hub.client(&token).await;
        let r = c.registry().list_ghts(proto::ListGhtsRequest::default()).await;
        assert_eq!(code(r), Code::Unauthenticated, "{what} must be refused");
    }
    // The well-formed token works.
    let c = hub.client(&good).await;
    c.registry().list_ghts(proto::ListGhtsRequest::default()).await.unwrap();
}
on_every_backend!(bad_tokens, bad_tokens_are_unauthenticated);

async fn bad_input_is_precise_and_writes_nothing(hub: &TestHub) {
    seed_territory(hub).await;
    let admin = hub.admin().await;
    let mut reg = admin.registry();
    let req = |id: &str, name: &str, role: i32, category: i32| proto::CreateEstablishmentRequest {
        id: id.into(),
        ght_id: G1.into(),
        name: name.into(),
        role,
        category,
        request_id: String::new(),
    };
    let e = reg.create_establishment(req("540000080", "   ", R::Partie as i32, C::Ch as i32)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("name"), "{}", e.message());
    let e = reg.create_establishment(req("540000080", "CH X", 99, C::Ch as i32)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("role"), "{}", e.message());
    let e = reg.create_establishment(req("540000080", "CH X", 0, C::Ch as i32)).await.unwrap_err();
    assert!(e.message().contains("role") && e.message().contains("UNSPECIFIED"), "{}", e.message());
    let e = reg.create_establishment(req("54-bad", "CH X", R::Partie as i32, C::Ch as i32)).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("id"), "{}", e.message());
    let e = reg.create_establishment(req(E2, "CH X", R::Partie as i32, C::Ch as i32)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert!(e.message().contains(E2));
    let e = reg.create_establishment(req("540000080", "CH X", R::Support as i32, C::Ch as i32)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "a second support");
    let e = reg
        .create_ght(proto::CreateGhtRequest {
            id: G1.into(),
            name: "dup".into(),
            ars_region: R1.into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = reg
        .create_ght(proto::CreateGhtRequest {
            id: "570000017".into(),
            name: "".into(),
            ars_region: R1.into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().contains("name"));

    // Nothing was written by any refused call.
    let list =
        reg.list_establishments(proto::ListEstablishmentsRequest { ght_id: G1.into() }).await.unwrap().into_inner();
    assert_eq!(list.establishments.len(), 3);
    assert_eq!(reg.list_ghts(proto::ListGhtsRequest::default()).await.unwrap().into_inner().ghts.len(), 2);

    // A retry with the same request id returns the first answer and writes once.
    let mut r = req("540000080", "CH de Toul", R::Partie as i32, C::Ch as i32);
    r.request_id = "retry-1".into();
    let first = reg.create_establishment(r.clone()).await.unwrap().into_inner();
    let second = reg.create_establishment(r).await.unwrap().into_inner();
    assert_eq!(first, second);
    let list =
        reg.list_establishments(proto::ListEstablishmentsRequest { ght_id: G1.into() }).await.unwrap().into_inner();
    assert_eq!(list.establishments.len(), 4);

    // Oversize message: refused by the size limit, not processed.
    let e = reg
        .create_ght(proto::CreateGhtRequest {
            id: "570000017".into(),
            name: "x".repeat(17 * 1024 * 1024),
            ars_region: R1.into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::ResourceExhausted | Code::OutOfRange | Code::Internal | Code::Unavailable),
        "{e:?}"
    );
}
on_every_backend!(bad_input, bad_input_is_precise_and_writes_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_binds_certificate_to_token_subject() {
    let hub = TestHub::start_with(Backend::Sqlite, |a| a.require_client_cert = true).await;
    let paths = hub.args.dev_paths();
    let (cert, key) = ghthub::pki::issue_client_cert(&paths, "admin").unwrap();
    let identity = tonic::transport::Identity::from_pem(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap());
    let admin_token = hub.token(Role::Admin, "admin", None, None, None);

    // With the matching certificate: accepted.
    let ch = connect_channel(&hub.url(), &hub.ca_pem(), Some(identity.clone())).await.unwrap();
    let c = HubClient::from_channel(ch, Some(&admin_token)).unwrap();
    c.registry().list_ghts(proto::ListGhtsRequest::default()).await.unwrap();

    // Same certificate, token of another subject: refused.
    let other = hub.token(Role::Admin, "someone-else", None, None, None);
    let c2 = c.with_token(&other).unwrap();
    assert_eq!(code(c2.registry().list_ghts(proto::ListGhtsRequest::default()).await), Code::Unauthenticated);

    // No client certificate at all: the TLS handshake or the call fails.
    let r = match connect_channel(&hub.url(), &hub.ca_pem(), None).await {
        Err(_) => Err(()),
        Ok(ch) => HubClient::from_channel(ch, Some(&admin_token))
            .unwrap()
            .registry()
            .list_ghts(proto::ListGhtsRequest::default())
            .await
            .map(|_| ())
            .map_err(|_| ()),
    };
    assert!(r.is_err());
    hub.stop().await;
}
