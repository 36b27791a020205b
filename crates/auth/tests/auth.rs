//! The auth crate from the outside: protected routes (401/403/200), the `/auth` token
//! endpoint and JWKS, key persistence, `cli_token`, and the token sources over HTTP.

use std::sync::{Arc, LazyLock};

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
    routing::{get, post},
};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::Value;
use tandem_auth::{
    Authorised, Claims, Issuer, LocalValidator, TokenSpec, TokenValidator, role, roles,
    validator_layer,
};
use tandem_platform::http::{finish, mount_service};
use tower::ServiceExt;

role!(pub ReadNa, [roles::READ_NON_ASSOCIATIONS, roles::NON_ASSOCIATIONS_SYNC]);
role!(pub WriteNa, [roles::WRITE_NON_ASSOCIATIONS], write);

/// One key for most tests: RSA key generation is the slow part.
static ISSUER: LazyLock<Arc<Issuer>> =
    LazyLock::new(|| Arc::new(Issuer::ephemeral().expect("an in-memory issuer")));

async fn read_handler(auth: Authorised<ReadNa>) -> String {
    auth.username().to_string()
}

async fn write_handler(auth: Authorised<WriteNa>) -> String {
    auth.username().to_string()
}

/// A tiny protected app, wrapped as the estate wraps its services.
fn protected_app(validator: Arc<dyn TokenValidator>) -> Router {
    finish(
        Router::new()
            .route("/things", get(read_handler))
            .route("/things", post(write_handler)),
    )
    .layer(validator_layer(validator))
}

/// The `/auth` service mounted as `tandem up` mounts it.
fn auth_app(issuer: Arc<Issuer>) -> Router {
    let validator: Arc<dyn TokenValidator> = Arc::new(LocalValidator::new(issuer.clone()));
    finish(mount_service(tandem_auth::service(issuer))).layer(validator_layer(validator))
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.expect("infallible router");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

fn with_bearer(method: &str, uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

fn assert_error_response(a: &Answer, status: StatusCode, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.body["status"], status.as_u16(), "{}", a.text);
    let msg = a.body["userMessage"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "expected '{needle}' in '{msg}'");
    assert!(a.body["developerMessage"].is_string(), "{}", a.text);
}

fn token(issuer: &Issuer, authorities: &[&str], scopes: &[&str]) -> String {
    issuer
        .mint(
            &TokenSpec::client(
                "test-client",
                authorities.iter().map(|s| s.to_string()).collect(),
            )
            .with_scopes(scopes.iter().map(|s| s.to_string()).collect()),
        )
        .expect("mint")
}

fn local_validator(issuer: &Arc<Issuer>) -> Arc<dyn TokenValidator> {
    Arc::new(LocalValidator::new(issuer.clone()))
}

mod protected {
    use super::*;

    fn app() -> Router {
        protected_app(local_validator(&ISSUER))
    }

    #[tokio::test]
    async fn no_header_is_401() {
        let a = send(&app(), with_bearer("GET", "/things", None)).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "Authorization: Bearer");
    }

    #[tokio::test]
    async fn non_bearer_header_is_401() {
        let req = Request::builder()
            .uri("/things")
            .header(header::AUTHORIZATION, "Basic dTpw")
            .body(Body::empty())
            .unwrap();
        let a = send(&app(), req).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "bearer");
    }

    #[tokio::test]
    async fn garbage_token_is_401() {
        let a = send(&app(), with_bearer("GET", "/things", Some("not-a-jwt"))).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "not valid");
    }

    #[tokio::test]
    async fn expired_token_is_401_saying_so() {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "test-client".into(),
            authorities: vec![roles::READ_NON_ASSOCIATIONS.into()],
            scope: vec!["read".into()],
            client_id: Some("test-client".into()),
            user_name: None,
            iss: ISSUER.name().into(),
            iat: now - 7200,
            exp: now - 3600,
            jti: None,
        };
        let t = ISSUER.sign(&claims).unwrap();
        let a = send(&app(), with_bearer("GET", "/things", Some(&t))).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "expired");
        assert_eq!(
            ISSUER_VALIDATOR.validate(&t),
            Err(tandem_auth::AuthError::Expired)
        );
    }

    static ISSUER_VALIDATOR: LazyLock<LocalValidator> =
        LazyLock::new(|| LocalValidator::new(ISSUER.clone()));

    #[tokio::test]
    async fn token_from_another_key_is_401() {
        let other = Issuer::ephemeral().unwrap();
        assert_ne!(other.kid(), ISSUER.kid());
        let t = token(&other, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        let a = send(&app(), with_bearer("GET", "/things", Some(&t))).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "signature");
    }

    #[tokio::test]
    async fn token_from_another_issuer_name_is_401() {
        let renamed = Issuer::ephemeral()
            .unwrap()
            .with_name("https://elsewhere/auth");
        let t = token(&renamed, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        // right key, wrong iss
        let v = LocalValidator::new(Arc::new(Issuer::ephemeral().unwrap()));
        assert!(v.validate(&t).is_err());
        let own = LocalValidator::new(Arc::new(renamed));
        assert!(own.validate(&t).is_ok());
        let mut claims = own.validate(&t).unwrap();
        claims.iss = "someone-else".into();
        let forged = ISSUER.sign(&claims).unwrap();
        let a = send(&app(), with_bearer("GET", "/things", Some(&forged))).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "iss");
    }

    #[tokio::test]
    async fn hs256_token_is_401() {
        // Algorithm confusion: an HMAC token keyed with public material must not pass.
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": "x", "authorities": [roles::READ_NON_ASSOCIATIONS], "scope": ["read"],
            "iss": ISSUER.name(), "iat": now, "exp": now + 600,
        });
        let key = jsonwebtoken::EncodingKey::from_secret(ISSUER.jwks().keys[0].n.as_bytes());
        let t = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
        let a = send(&app(), with_bearer("GET", "/things", Some(&t))).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "RS256");
    }

    #[tokio::test]
    async fn tampered_claims_are_401() {
        let t = token(&ISSUER, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["authorities"] = serde_json::json!([roles::WRITE_NON_ASSOCIATIONS]);
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64.encode(claims.to_string()),
            parts[2]
        );
        let a = send(&app(), with_bearer("POST", "/things", Some(&forged))).await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "signature");
    }

    #[tokio::test]
    async fn wrong_role_is_403_naming_the_roles() {
        let t = token(&ISSUER, &[roles::MIGRATE_NOMIS_SYSCON], &["read", "write"]);
        let a = send(&app(), with_bearer("GET", "/things", Some(&t))).await;
        assert_error_response(&a, StatusCode::FORBIDDEN, roles::READ_NON_ASSOCIATIONS);
        assert!(
            a.body["userMessage"]
                .as_str()
                .unwrap()
                .contains(roles::NON_ASSOCIATIONS_SYNC)
        );
    }

    #[tokio::test]
    async fn write_without_write_scope_is_403() {
        let t = token(&ISSUER, &[roles::WRITE_NON_ASSOCIATIONS], &["read"]);
        let a = send(&app(), with_bearer("POST", "/things", Some(&t))).await;
        assert_error_response(&a, StatusCode::FORBIDDEN, "write scope");
    }

    #[tokio::test]
    async fn right_role_is_200() {
        // either of the read roles will do, and the read endpoint does not need `write`
        for role in [roles::READ_NON_ASSOCIATIONS, roles::NON_ASSOCIATIONS_SYNC] {
            let t = token(&ISSUER, &[role], &["read"]);
            let a = send(&app(), with_bearer("GET", "/things", Some(&t))).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            assert_eq!(a.text, "test-client");
        }
        let t = token(
            &ISSUER,
            &[roles::WRITE_NON_ASSOCIATIONS],
            &["read", "write"],
        );
        let a = send(&app(), with_bearer("POST", "/things", Some(&t))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }

    #[tokio::test]
    async fn user_tokens_name_the_user() {
        let t = ISSUER
            .mint(
                &TokenSpec::client("ui", vec![roles::READ_NON_ASSOCIATIONS.into()])
                    .with_user("JSMITH_GEN"),
            )
            .unwrap();
        let a = send(&app(), with_bearer("GET", "/things", Some(&t))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.text, "JSMITH_GEN");
    }

    #[tokio::test]
    async fn space_separated_scope_claim_is_understood() {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": "svc", "client_id": "svc", "authorities": [roles::WRITE_NON_ASSOCIATIONS],
            "scope": "read write", "iss": ISSUER.name(), "iat": now, "exp": now + 600,
        });
        // a string scope deserialises into the list the role checks use
        let c: Claims = serde_json::from_value(claims).unwrap();
        assert_eq!(c.scope, vec!["read", "write"]);
        let t = ISSUER.sign(&c).unwrap();
        let a = send(&app(), with_bearer("POST", "/things", Some(&t))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }
}

mod token_endpoint {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    fn token_request(auth: Option<String>, form: &str) -> Request<Body> {
        let mut b = Request::builder()
            .method("POST")
            .uri("/auth/oauth/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::from(form.to_string())).unwrap()
    }

    #[tokio::test]
    async fn good_basic_credentials_get_a_token_with_the_clients_authorities() {
        let app = auth_app(ISSUER.clone());
        let (id, secret) = ISSUER.dev_client().unwrap();
        let a = send(
            &app,
            token_request(Some(basic(&id, &secret)), "grant_type=client_credentials"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["token_type"], "bearer");
        assert_eq!(a.body["scope"], "read write");
        assert_eq!(a.body["expires_in"], 1200);
        assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
        let t = a.body["access_token"].as_str().unwrap();
        let claims = LocalValidator::new(ISSUER.clone()).validate(t).unwrap();
        assert_eq!(
            claims.client_id.as_deref(),
            Some(tandem_auth::DEV_CLIENT_ID)
        );
        assert_eq!(claims.sub, tandem_auth::DEV_CLIENT_ID);
        let expected: Vec<String> = roles::ALL_ROLES.iter().map(|r| r.to_string()).collect();
        assert_eq!(claims.authorities, expected);
        assert_eq!(claims.scope, vec!["read", "write"]);
        // and the token opens a protected endpoint
        let b = send(
            &protected_app(local_validator(&ISSUER)),
            with_bearer("POST", "/things", Some(t)),
        )
        .await;
        assert_eq!(b.status, StatusCode::OK, "{}", b.text);
    }

    #[tokio::test]
    async fn service_client_gets_only_its_authorities() {
        let issuer = Arc::new(Issuer::ephemeral().unwrap());
        let secret = issuer
            .ensure_client(
                "non-associations-api",
                &[roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW],
            )
            .unwrap();
        let app = auth_app(issuer.clone());
        let a = send(
            &app,
            token_request(
                Some(basic("non-associations-api", &secret)),
                "grant_type=client_credentials",
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let claims = LocalValidator::new(issuer)
            .validate(a.body["access_token"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            claims.authorities,
            vec![roles::NOMIS_PRISONER_API_SYNCHRONISATION_RW]
        );
    }

    #[tokio::test]
    async fn form_credentials_are_accepted() {
        let app = auth_app(ISSUER.clone());
        let (id, secret) = ISSUER.dev_client().unwrap();
        let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
        let a = send(&app, token_request(None, &form)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    }

    #[tokio::test]
    async fn wrong_secret_is_401() {
        let app = auth_app(ISSUER.clone());
        let (id, _) = ISSUER.dev_client().unwrap();
        let a = send(
            &app,
            token_request(Some(basic(&id, "wrong")), "grant_type=client_credentials"),
        )
        .await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "Bad client credentials");
        assert!(a.headers.contains_key(header::WWW_AUTHENTICATE));
        let a = send(
            &app,
            token_request(Some(basic("nobody", "x")), "grant_type=client_credentials"),
        )
        .await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "Bad client credentials");
        let a = send(
            &app,
            token_request(Some("Basic %%%".into()), "grant_type=client_credentials"),
        )
        .await;
        assert_error_response(&a, StatusCode::UNAUTHORIZED, "Basic");
    }

    #[tokio::test]
    async fn no_credentials_is_401() {
        let app = auth_app(ISSUER.clone());
        let a = send(&app, token_request(None, "grant_type=client_credentials")).await;
        assert_error_response(
            &a,
            StatusCode::UNAUTHORIZED,
            "Client authentication is required",
        );
    }

    #[tokio::test]
    async fn missing_or_unsupported_grant_type_is_400() {
        let app = auth_app(ISSUER.clone());
        let (id, secret) = ISSUER.dev_client().unwrap();
        let a = send(&app, token_request(Some(basic(&id, &secret)), "")).await;
        assert_error_response(&a, StatusCode::BAD_REQUEST, "grant_type is required");
        let a = send(
            &app,
            token_request(Some(basic(&id, &secret)), "grant_type=password"),
        )
        .await;
        assert_error_response(
            &a,
            StatusCode::BAD_REQUEST,
            "Unsupported grant_type 'password'",
        );
        let a = send(
            &app,
            token_request(
                Some(basic(&id, &secret)),
                "grant_type=client_credentials&grant_type=client_credentials",
            ),
        )
        .await;
        assert_error_response(&a, StatusCode::BAD_REQUEST, "more than once");
    }

    #[tokio::test]
    async fn scope_can_be_narrowed_but_not_widened() {
        let app = auth_app(ISSUER.clone());
        let (id, secret) = ISSUER.dev_client().unwrap();
        let a = send(
            &app,
            token_request(
                Some(basic(&id, &secret)),
                "grant_type=client_credentials&scope=read",
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["scope"], "read");
        let claims = LocalValidator::new(ISSUER.clone())
            .validate(a.body["access_token"].as_str().unwrap())
            .unwrap();
        assert_eq!(claims.scope, vec!["read"]);
        let a = send(
            &app,
            token_request(
                Some(basic(&id, &secret)),
                "grant_type=client_credentials&scope=read+admin",
            ),
        )
        .await;
        assert_error_response(&a, StatusCode::BAD_REQUEST, "Invalid scope 'admin'");
    }

    #[tokio::test]
    async fn jwks_is_public_and_validates_tokens() {
        let app = auth_app(ISSUER.clone());
        let a = send(
            &app,
            with_bearer("GET", "/auth/.well-known/jwks.json", None),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let key = &a.body["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["kid"], ISSUER.kid());
        assert_eq!(key["e"], "AQAB");
        assert!(!key["n"].as_str().unwrap().contains('='));
        // a validator that knows only this document
        let doc: tandem_auth::Jwks = serde_json::from_value(a.body.clone()).unwrap();
        let v = tandem_auth::JwksValidator::from_jwks(&doc, tandem_auth::DEFAULT_ISSUER).unwrap();
        let t = token(&ISSUER, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        assert_eq!(
            v.validate(&t).unwrap().authorities,
            vec![roles::READ_NON_ASSOCIATIONS]
        );
        let other = token(
            &Issuer::ephemeral().unwrap(),
            &[roles::READ_NON_ASSOCIATIONS],
            &["read"],
        );
        match v.validate(&other) {
            Err(tandem_auth::AuthError::Invalid(m)) => assert!(m.contains("kid"), "{m}"),
            x => panic!("expected Invalid, got {x:?}"),
        }
    }

    #[tokio::test]
    async fn openapi_documents_both_endpoints() {
        let app = auth_app(ISSUER.clone());
        let a = send(&app, with_bearer("GET", "/auth/v3/api-docs", None)).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert!(
            a.body["paths"]["/oauth/token"]["post"].is_object(),
            "{}",
            a.text
        );
        assert!(
            a.body["paths"]["/.well-known/jwks.json"]["get"].is_object(),
            "{}",
            a.text
        );
        assert!(
            a.body["components"]["securitySchemes"]["client-basic"].is_object(),
            "{}",
            a.text
        );
    }
}

mod persistence {
    use super::*;

    #[tokio::test]
    async fn a_restarted_issuer_accepts_earlier_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let first = Arc::new(Issuer::load_or_create(dir.path()).unwrap());
        let t = token(&first, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        let (id, secret) = first.dev_client().unwrap();
        drop(first);
        let second = Arc::new(Issuer::load_or_create(dir.path()).unwrap());
        assert!(LocalValidator::new(second.clone()).validate(&t).is_ok());
        // the dev client survives too, with the same secret
        assert_eq!(second.dev_client().unwrap(), (id.clone(), secret.clone()));
        assert!(second.authenticate_client(&id, &secret).unwrap().is_some());
    }

    #[tokio::test]
    async fn cli_token_is_accepted_by_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let running = Arc::new(Issuer::load_or_create(dir.path()).unwrap());
        let t = tandem_auth::cli_token(
            dir.path(),
            &[
                "read_non_associations".to_string(),
                "ROLE_NON_ASSOCIATIONS_SYNC".to_string(),
            ],
            Some("JSMITH_GEN"),
            &["read".to_string()],
        )
        .unwrap();
        let claims = LocalValidator::new(running.clone()).validate(&t).unwrap();
        assert_eq!(
            claims.authorities,
            vec![roles::READ_NON_ASSOCIATIONS, roles::NON_ASSOCIATIONS_SYNC]
        );
        assert_eq!(claims.user_name.as_deref(), Some("JSMITH_GEN"));
        assert_eq!(
            claims.client_id.as_deref(),
            Some(tandem_auth::CLI_CLIENT_ID)
        );
        assert_eq!(claims.scope, vec!["read"]);
        assert!(claims.exp - claims.iat >= 3600);
        let a = send(
            &protected_app(local_validator(&running)),
            with_bearer("GET", "/things", Some(&t)),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.text, "JSMITH_GEN");
        // read scope only: the write endpoint refuses it
        let t2 = tandem_auth::cli_token(
            dir.path(),
            &["WRITE_NON_ASSOCIATIONS".into()],
            None,
            &["read".into()],
        )
        .unwrap();
        let a = send(
            &protected_app(local_validator(&running)),
            with_bearer("POST", "/things", Some(&t2)),
        )
        .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    }

    #[tokio::test]
    async fn cli_token_creates_the_instance_keys_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let t = tandem_auth::cli_token(dir.path(), &[], None, &[]).unwrap();
        let later = Arc::new(Issuer::load_or_create(dir.path()).unwrap());
        let claims = LocalValidator::new(later).validate(&t).unwrap();
        assert_eq!(claims.authorities.len(), roles::ALL_ROLES.len());
        assert_eq!(claims.scope, vec!["read", "write"]);
    }
}

/// Over real sockets: what services in other processes do.
mod over_http {
    use super::*;
    use tandem_platform::client::TokenSource;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn jwks_validator_fetches_and_validates() {
        let base = serve(auth_app(ISSUER.clone())).await;
        let url = format!("{base}/auth/.well-known/jwks.json");
        let v = tandem_auth::JwksValidator::fetch(&url, tandem_auth::DEFAULT_ISSUER)
            .await
            .unwrap();
        assert_eq!(v.kids(), vec![ISSUER.kid().to_string()]);
        let t = token(&ISSUER, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        assert!(v.validate(&t).is_ok());
        assert_eq!(v.refresh().await.unwrap(), 1);
        // the validator protects a router like the local one does
        let app = protected_app(Arc::new(v));
        let a = send(&app, with_bearer("GET", "/things", Some(&t))).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        // a wrong URL is an error naming it
        let e = tandem_auth::JwksValidator::fetch(&format!("{base}/nope"), "x")
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nope"), "{e}");
    }

    #[tokio::test]
    async fn client_credentials_source_gets_and_caches_tokens() {
        let base = serve(auth_app(ISSUER.clone())).await;
        let (id, secret) = ISSUER.dev_client().unwrap();
        let src = tandem_auth::ClientCredentialsTokenSource::new(
            format!("{base}/auth/oauth/token"),
            id.clone(),
            secret,
        );
        let t1 = src.bearer().await.unwrap();
        let t2 = src.bearer().await.unwrap();
        assert_eq!(t1, t2, "the second call uses the cached token");
        let claims = LocalValidator::new(ISSUER.clone()).validate(&t1).unwrap();
        assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));

        let narrowed = tandem_auth::ClientCredentialsTokenSource::new(
            format!("{base}/auth/oauth/token"),
            id.clone(),
            ISSUER.dev_client().unwrap().1,
        )
        .with_scopes(vec!["read".into()]);
        let claims = LocalValidator::new(ISSUER.clone())
            .validate(&narrowed.bearer().await.unwrap())
            .unwrap();
        assert_eq!(claims.scope, vec!["read"]);

        let bad = tandem_auth::ClientCredentialsTokenSource::new(
            format!("{base}/auth/oauth/token"),
            id,
            "wrong",
        );
        match bad.bearer().await {
            Err(tandem_platform::client::PeerError::Token(m)) => assert!(m.contains("401"), "{m}"),
            x => panic!("expected a token error, got {x:?}"),
        }
    }

    #[tokio::test]
    async fn jwks_validator_picks_up_a_rotated_key() {
        use std::sync::RwLock;
        let published = Arc::new(RwLock::new(ISSUER.jwks()));
        let doc = published.clone();
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let doc = doc.read().unwrap().clone();
                async move { axum::Json(doc) }
            }),
        );
        let base = serve(app).await;
        let v =
            tandem_auth::JwksValidator::fetch(&format!("{base}/jwks"), tandem_auth::DEFAULT_ISSUER)
                .await
                .unwrap()
                .with_min_refetch_interval(std::time::Duration::ZERO);
        let rotated = Issuer::ephemeral().unwrap();
        *published.write().unwrap() = rotated.jwks();
        let t = token(&rotated, &[roles::READ_NON_ASSOCIATIONS], &["read"]);
        // the first sight of the new kid is refused, and starts a re-fetch
        assert!(matches!(
            v.validate(&t),
            Err(tandem_auth::AuthError::Invalid(_))
        ));
        let mut accepted = false;
        for _ in 0..100 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if v.validate(&t).is_ok() {
                accepted = true;
                break;
            }
        }
        assert!(accepted, "the rotated key was not fetched");
        assert_eq!(v.kids(), vec![rotated.kid().to_string()]);
    }
}
