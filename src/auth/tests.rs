use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn settings_with(tokens: &[(&str, Role, &str)]) -> AuthSettings {
    AuthSettings {
        tokens: tokens
            .iter()
            .map(|(name, role, token)| StaticToken {
                name: (*name).into(),
                role: *role,
                sha256: to_hex(&hash_token(token)),
            })
            .collect(),
        ..AuthSettings::default()
    }
}

fn now() -> u64 {
    u64::try_from(crate::now_ms() / 1000).unwrap_or(0)
}

#[test]
fn role_grants() {
    use Role::*;
    assert!(Admin.grants(Ingest) && Admin.grants(Read) && Admin.grants(Admin));
    assert!(Operator.grants(Read) && Operator.grants(Operator));
    assert!(!Operator.grants(Admin) && !Operator.grants(Ingest));
    assert!(Read.grants(Read) && !Read.grants(Operator) && !Read.grants(Ingest));
    assert!(Ingest.grants(Ingest) && !Ingest.grants(Read));
}

#[test]
fn static_and_bootstrap_tokens() {
    let s = settings_with(&[
        ("flume", Role::Ingest, "flume-token-123"),
        ("ops", Role::Operator, "ops-token-4567"),
    ]);
    let mut s = s;
    s.admin_token = Some(Secret("bootstrap-admin-token".into()));
    let a = Authenticator::new(&s).expect("auth");
    assert!(
        !format!("{s:?}").contains("bootstrap-admin-token"),
        "Debug hides the token"
    );
    assert_eq!(
        a.verify("flume-token-123").map(|p| p.role),
        Ok(Role::Ingest)
    );
    let ops = a.verify("ops-token-4567").expect("ops");
    assert_eq!(
        (ops.name.as_str(), ops.role, ops.kind),
        ("ops", Role::Operator, PrincipalKind::Static)
    );
    let boot = a.verify("bootstrap-admin-token").expect("bootstrap");
    assert_eq!(
        (boot.role, boot.kind),
        (Role::Admin, PrincipalKind::Bootstrap)
    );
    assert_eq!(a.verify("ops-token-4568"), Err(AuthError::UnknownToken));
    assert_eq!(a.verify(""), Err(AuthError::UnknownToken));
    s.admin_token = Some(Secret("short".into()));
    assert!(Authenticator::new(&s).is_err());
    assert_eq!(s.problems()[0].0, "auth.admin_token");
}

#[test]
fn stored_tokens_follow_revocation() {
    let a = Authenticator::new(&AuthSettings::default()).expect("auth");
    assert!(!a.has_configured_credentials());
    let row = |id, revoked_at| crate::storage::TokenRow {
        id,
        name: format!("t{id}"),
        role: "read".into(),
        token_hash: to_hex(&hash_token(&format!("token-{id}"))),
        created_by: "test".into(),
        created_at: 0,
        revoked_at,
    };
    a.set_stored(&[row(1, None), row(2, Some(5))]);
    assert_eq!(
        a.verify("token-1").map(|p| p.kind),
        Ok(PrincipalKind::Stored)
    );
    assert_eq!(a.verify("token-2"), Err(AuthError::UnknownToken));
    a.set_stored(&[row(1, Some(9))]);
    assert_eq!(a.verify("token-1"), Err(AuthError::UnknownToken));
    // Revoked here: a refresh from rows read before the revocation does not bring it back.
    a.set_stored(&[row(3, None)]);
    assert!(a.verify("token-3").is_ok());
    a.revoke_stored(&row(3, None).token_hash);
    assert_eq!(a.verify("token-3"), Err(AuthError::UnknownToken));
    a.set_stored(&[row(3, None)]);
    assert_eq!(a.verify("token-3"), Err(AuthError::UnknownToken));
}

#[test]
fn generated_tokens_are_random_and_hash_round_trips() {
    let (t1, t2) = (generate_token().expect("t1"), generate_token().expect("t2"));
    assert!(t1.starts_with("flt_") && t1.len() == 47, "{t1}");
    assert_ne!(t1, t2);
    let hex = to_hex(&hash_token(&t1));
    assert_eq!(parse_hex_sha256(&hex), Some(hash_token(&t1)));
    assert_eq!(parse_hex_sha256(&hex.to_uppercase()), Some(hash_token(&t1)));
    assert_eq!(parse_hex_sha256("abc"), None);
    assert_eq!(parse_hex_sha256(&"g".repeat(64)), None);
    // sha256("abc"), the FIPS 180-2 example.
    assert_eq!(
        to_hex(&hash_token("abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

fn hs256_auth(tweak: impl FnOnce(&mut JwtSettings)) -> Authenticator {
    let mut s = AuthSettings::default();
    s.jwt.algorithm = "HS256".into();
    s.jwt.secret_env = "TEST_JWT_SECRET".into();
    tweak(&mut s.jwt);
    let v = JwtVerifier::new(&s.jwt, |name| {
        (name == "TEST_JWT_SECRET").then(|| SECRET.to_string())
    })
    .expect("verifier");
    Authenticator {
        fixed: Vec::new(),
        stored: RwLock::new(Stored::default()),
        jwt: v,
    }
}

fn hs256(claims: serde_json::Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("encode")
}

#[test]
fn jwt_hs256_roles_expiry_issuer_audience() {
    let a = hs256_auth(|j| {
        j.issuer = "https://idp.example".into();
        j.audience = "faultline".into();
    });
    let ok = json!({"sub": "alice", "role": "operator", "exp": now() + 600, "iss": "https://idp.example", "aud": "faultline"});
    let p = a.verify(&hs256(ok.clone())).expect("valid");
    assert_eq!(
        (p.name.as_str(), p.role, p.kind),
        ("jwt:alice", Role::Operator, PrincipalKind::Jwt)
    );

    let mut arr = ok.clone();
    arr["role"] = json!(["viewer", "read", "admin"]);
    assert_eq!(a.verify(&hs256(arr)).map(|p| p.role), Ok(Role::Admin));

    let mut expired = ok.clone();
    expired["exp"] = json!(now() - 3600);
    assert!(matches!(a.verify(&hs256(expired)), Err(AuthError::Jwt(_))));
    let mut iss = ok.clone();
    iss["iss"] = json!("https://evil.example");
    assert!(matches!(a.verify(&hs256(iss)), Err(AuthError::Jwt(_))));
    let mut aud = ok.clone();
    aud["aud"] = json!("other");
    assert!(matches!(a.verify(&hs256(aud)), Err(AuthError::Jwt(_))));
    for claim in ["aud", "sub"] {
        let mut missing = ok.clone();
        missing.as_object_mut().expect("object").remove(claim);
        assert!(
            matches!(a.verify(&hs256(missing)), Err(AuthError::Jwt(_))),
            "{claim} is required"
        );
    }
    let mut wrong_type = ok.clone();
    wrong_type["aud"] = json!(123);
    assert!(matches!(
        a.verify(&hs256(wrong_type)),
        Err(AuthError::Jwt(_))
    ));
    let mut no_iss = ok.clone();
    no_iss.as_object_mut().expect("object").remove("iss");
    assert!(
        matches!(a.verify(&hs256(no_iss)), Err(AuthError::Jwt(_))),
        "iss is configured"
    );
    // Subjects that are not plain names get a digest: two of them never share a name.
    let mut jose = ok.clone();
    jose["sub"] = json!("José");
    let mut jos = ok.clone();
    jos["sub"] = json!("Jos!");
    let (n1, n2) = (
        a.verify(&hs256(jose)).expect("ok").name,
        a.verify(&hs256(jos)).expect("ok").name,
    );
    assert!(n1.starts_with("jwt:~") && n1 != n2, "{n1} {n2}");
    let mut no_exp = ok.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    assert!(
        matches!(a.verify(&hs256(no_exp)), Err(AuthError::Jwt(_))),
        "exp is required"
    );
    let mut early = ok.clone();
    early["nbf"] = json!(now() + 3600);
    assert!(
        matches!(a.verify(&hs256(early)), Err(AuthError::Jwt(_))),
        "not before"
    );
    let mut norole = ok.clone();
    norole["role"] = json!("viewer");
    assert_eq!(
        a.verify(&hs256(norole)),
        Err(AuthError::NoRole("role".into()))
    );
    // Signed with another secret.
    let forged = encode(
        &Header::default(),
        &ok,
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .expect("encode");
    assert!(matches!(a.verify(&forged), Err(AuthError::Jwt(_))));
    // `alg: none` is refused.
    let none = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(ok.to_string().as_bytes())
    );
    assert!(matches!(a.verify(&none), Err(AuthError::Jwt(_))));
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[test]
fn jwt_rs256_and_algorithm_confusion() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let mut s = AuthSettings::default();
    s.jwt.algorithm = "RS256".into();
    s.jwt.public_key_file = dir.join("rs256-public.pem").display().to_string();
    s.jwt.audience = "faultline".into();
    let a = Authenticator::new(&s).expect("auth");
    let claims = json!({"sub": "bob", "role": "read", "aud": "faultline", "exp": now() + 600});
    let sign = |file: &str| {
        let pem = std::fs::read(dir.join(file)).expect("pem");
        encode(
            &Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&pem).expect("key"),
        )
        .expect("encode")
    };
    assert_eq!(
        a.verify(&sign("rs256-private.pem")).map(|p| p.role),
        Ok(Role::Read)
    );
    assert!(matches!(
        a.verify(&sign("other-private.pem")),
        Err(AuthError::Jwt(_))
    ));
    // HS256 signed with the public key as the secret (the classic confusion) is refused.
    let public = std::fs::read(dir.join("rs256-public.pem")).expect("pem");
    let confused = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&public),
    )
    .expect("encode");
    assert!(matches!(a.verify(&confused), Err(AuthError::Jwt(_))));
}

#[test]
fn settings_problems() {
    let mut s = settings_with(&[("a", Role::Read, "x"), ("a", Role::Admin, "y")]);
    s.tokens.push(StaticToken {
        name: " ".into(),
        role: Role::Read,
        sha256: "nothex".into(),
    });
    s.jwt.algorithm = "ES256".into();
    let keys: Vec<String> = s.problems().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "auth.tokens[1].name",
            "auth.tokens[2].name",
            "auth.tokens[2].sha256",
            "auth.jwt.algorithm",
            "auth.jwt.audience"
        ]
    );
    assert!(AuthSettings::default().problems().is_empty());
    let r = RateLimitSettings {
        per_ip_per_minute: 0,
        ..RateLimitSettings::default()
    };
    assert_eq!(r.problems().len(), 1);
    let hs = JwtSettings {
        algorithm: "HS256".into(),
        ..JwtSettings::default()
    };
    assert!(JwtVerifier::new(&hs, |_| Some("short".into())).is_err());
    assert!(JwtVerifier::new(&hs, |_| None).is_err());
    let no_aud = JwtSettings {
        audience: String::new(),
        ..hs.clone()
    };
    assert!(JwtVerifier::new(&no_aud, |_| Some(SECRET.into())).is_err());
    let s = AuthSettings {
        jwt: no_aud,
        ..AuthSettings::default()
    };
    assert_eq!(s.problems()[0].0, "auth.jwt.audience");
}
