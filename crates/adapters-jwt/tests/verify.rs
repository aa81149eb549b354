//! Token verification as a caller meets it: which tokens pass, which are refused and why.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use factors_adapters_jwt::{DevTokenMinter, JwtVerifier, MintRequest, RoleClaim, RoleMap};
use factors_application::ports::{AuthError, TokenVerifier};
use factors_domain::{Authentication, Grant, OrgId, Permission, Scope};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const SECRET: &[u8] = b"a-development-secret-of-32-bytes!";
const ISS: &str = "https://factors.test";
const AUD: &str = "factors";

fn now() -> i64 {
    Utc::now().timestamp()
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new(ISS, AUD, Duration::from_secs(5), RoleMap::zitadel_defaults())
        .with_hs256_secret(SECRET)
        .expect("32 bytes")
}

fn claims(overrides: Value) -> Value {
    let mut claims = json!({"iss": ISS, "aud": AUD, "sub": "alice", "iat": now(), "exp": now() + 600,
                            "urn:zitadel:iam:user:resourceowner:id": "org-a"});
    if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), overrides) {
        base.extend(extra);
    }
    claims
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("signs")
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims, None)
}

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).expect("test key present")
}

#[tokio::test]
async fn a_valid_token_gives_the_caller_with_its_org_and_mapped_grants() {
    let token = hs256(&claims(json!({"roles": [{"role": "ORG_USER_READER"}, {"role": "IAM_OWNER"}]})));

    let caller = verifier().verify(&token).await.expect("valid");

    assert_eq!(caller.user_id.as_str(), "alice");
    assert_eq!(caller.org, Some(OrgId::new("org-a").expect("valid")));
    let read_on_org =
        Grant { permission: Permission::UserRead, scope: Scope::Org(OrgId::new("org-a").expect("valid")) };
    assert!(caller.grants.contains(&read_on_org));
    assert!(caller.grants.contains(&Grant { permission: Permission::UserDelete, scope: Scope::Instance }));
}

#[tokio::test]
async fn bad_tokens_are_refused_each_for_its_reason() {
    let tampered = {
        let token = hs256(&claims(json!({})));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(claims(json!({"sub": "admin"})).to_string());
        parts.join(".")
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let cases = [
        (hs256(&claims(json!({"exp": now() - 60}))), AuthError::Expired, "expired"),
        (hs256(&claims(json!({"aud": "someone-else"}))), AuthError::Invalid, "wrong audience"),
        (hs256(&claims(json!({"iss": "https://evil.test"}))), AuthError::Invalid, "wrong issuer"),
        (hs256(&claims(json!({"nbf": now() + 600}))), AuthError::Invalid, "not yet valid"),
        // GHSA-h395-gr6q-cpjc: jsonwebtoken 9 took an `nbf` it could not read as absent.
        (hs256(&claims(json!({"nbf": "9999999999"}))), AuthError::Invalid, "nbf as a string"),
        (hs256(&claims(json!({"nbf": (now() + 600).to_string()}))), AuthError::Invalid, "nbf as a string, soon"),
        (tampered, AuthError::Invalid, "tampered payload"),
        (alg_none, AuthError::Invalid, "alg none"),
        (
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-of-thirty-two-byte"),
                &claims(json!({})),
                None,
            ),
            AuthError::Invalid,
            "other secret",
        ),
        ("not.a.jwt".to_owned(), AuthError::Invalid, "garbage"),
        (hs256(&json!({"iss": ISS, "aud": AUD, "exp": now() + 600})), AuthError::Invalid, "no sub"),
        (hs256(&json!({"iss": ISS, "aud": AUD, "sub": "alice"})), AuthError::Invalid, "no exp"),
    ];
    for (token, expected, case) in cases {
        assert_eq!(verifier().verify(&token).await, Err(expected), "{case}");
    }
}

#[tokio::test]
async fn an_rs256_token_verifies_against_the_public_key_pem() {
    let verifier = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults())
        .with_public_key_pem(Algorithm::RS256, &key_file("rsa-public.pem"), None)
        .expect("RSA public key");
    let token = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(&key_file("rsa-private.pem")).expect("key"),
        &claims(json!({})),
        None,
    );

    assert_eq!(verifier.verify(&token).await.map(|c| c.user_id.into_string()), Ok("alice".to_owned()));
}

#[tokio::test]
async fn algorithm_confusion_with_the_rsa_public_key_as_hmac_secret_is_refused() {
    let public_pem = key_file("rsa-public.pem");
    let verifier = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults())
        .with_public_key_pem(Algorithm::RS256, &public_pem, None)
        .expect("RSA public key");
    let forged = sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem), &claims(json!({})), None);

    assert_eq!(verifier.verify(&forged).await, Err(AuthError::Invalid));
}

#[tokio::test]
async fn es256_from_a_jwks_document_and_eddsa_from_pem_verify_and_kids_select_keys() {
    let jwks = String::from_utf8(key_file("jwks.json")).expect("utf-8");
    let verifier = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults())
        .with_jwks(&jwks)
        .expect("JWKS")
        .with_public_key_pem(Algorithm::EdDSA, &key_file("ed-public.pem"), Some("ed-1".into()))
        .expect("Ed25519 key");
    let ec = EncodingKey::from_ec_pem(&key_file("ec-private.pem")).expect("key");
    let ed = EncodingKey::from_ed_pem(&key_file("ed-private.pem")).expect("key");

    assert!(
        verifier.verify(&sign(Algorithm::ES256, &ec, &claims(json!({})), Some("ec-1"))).await.is_ok(),
        "ES256 by kid"
    );
    assert!(
        verifier.verify(&sign(Algorithm::EdDSA, &ed, &claims(json!({})), Some("ed-1"))).await.is_ok(),
        "EdDSA by kid"
    );
    assert!(verifier.verify(&sign(Algorithm::EdDSA, &ed, &claims(json!({})), None)).await.is_ok(), "EdDSA without kid");
    assert_eq!(
        verifier.verify(&sign(Algorithm::ES256, &ec, &claims(json!({})), Some("ed-1"))).await,
        Err(AuthError::Invalid),
        "a kid of another key"
    );
}

#[tokio::test]
async fn a_jwks_key_marked_for_encryption_does_not_verify_signatures() {
    let mut jwks: Value = serde_json::from_slice(&key_file("jwks.json")).expect("JSON");
    jwks["keys"][0]["use"] = json!("enc");
    let verifier = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults())
        .with_jwks(&jwks.to_string())
        .expect("JWKS");
    let ec = EncodingKey::from_ec_pem(&key_file("ec-private.pem")).expect("key");

    assert!(!verifier.has_keys());
    assert_eq!(
        verifier.verify(&sign(Algorithm::ES256, &ec, &claims(json!({})), Some("ec-1"))).await,
        Err(AuthError::Invalid)
    );
}

#[test]
fn a_jwks_with_a_symmetric_key_is_refused() {
    let jwks = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s","alg":"HS256"}]}"#;
    let result = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults()).with_jwks(jwks);
    let refused = format!("{:#}", result.expect_err("a symmetric key"));
    assert!(refused.contains("symmetric keys do not belong in a JWKS"), "{refused}");
}

#[test]
fn a_jwks_with_a_key_of_an_unknown_type_is_refused() {
    let jwks = r#"{"keys":[{"kty":"AKP","kid":"post-quantum","pub":"AQ"}]}"#;
    let result = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults()).with_jwks(jwks);
    let refused = format!("{:#}", result.expect_err("an unknown key type"));
    assert!(refused.contains("unsupported key type"), "{refused}");
}

#[tokio::test]
async fn a_minted_development_token_verifies_with_its_roles_scoped_as_asked() {
    let minter = DevTokenMinter::new(ISS, AUD, SECRET);
    let token = minter
        .mint(&MintRequest {
            sub: "admin".into(),
            org: Some("org-a".into()),
            roles: vec![
                RoleClaim { role: "ORG_USER_MANAGER".into(), org: Some("org-b".into()) },
                RoleClaim { role: "ORG_USER_READER".into(), org: None },
            ],
            ttl: Duration::from_secs(3600),
            now: now(),
            amr: vec![],
            auth_time: None,
        })
        .expect("minted");

    let caller = verifier().verify(&token).await.expect("valid");

    assert_eq!(caller.authentication, Authentication::default(), "a token minted without amr says nothing");
    let org = |id: &str| Scope::Org(OrgId::new(id).expect("valid"));
    assert!(caller.grants.contains(&Grant { permission: Permission::UserWrite, scope: org("org-b") }));
    assert!(caller.grants.contains(&Grant { permission: Permission::UserRead, scope: org("org-a") }));
    assert!(!caller.grants.contains(&Grant { permission: Permission::UserWrite, scope: org("org-a") }));
}

#[tokio::test]
async fn unknown_roles_grant_nothing() {
    let token = hs256(&claims(json!({"roles": [{"role": "SUPER_ADMIN"}]})));
    assert_eq!(verifier().verify(&token).await.map(|c| c.grants.len()), Ok(0));
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_its_exp_has_passed() {
    let strict = JwtVerifier::new(ISS, AUD, Duration::ZERO, RoleMap::zitadel_defaults())
        .with_hs256_secret(SECRET)
        .expect("32 bytes");
    let token = hs256(&claims(json!({"exp": now() + 1})));

    assert_eq!(strict.verify(&token).await.map(|c| c.user_id.into_string()), Ok("alice".to_owned()));
    assert_eq!(strict.verify(&token).await.map(|c| c.user_id.into_string()), Ok("alice".to_owned()), "again");
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    assert_eq!(strict.verify(&token).await, Err(AuthError::Expired));
}

#[tokio::test]
async fn only_the_very_token_that_verified_is_remembered() {
    let verifier = verifier();
    let token = hs256(&claims(json!({})));
    verifier.verify(&token).await.expect("valid");
    let (signed, signature) = token.rsplit_once('.').expect("three parts");
    let mut forged = signature.as_bytes().to_vec();
    forged[0] = if forged[0] == b'A' { b'B' } else { b'A' };
    let forged = format!("{signed}.{}", String::from_utf8(forged).expect("ascii"));
    let other_claims = hs256(&claims(json!({"sub": "mallory"})));

    assert_eq!(verifier.verify(&forged).await, Err(AuthError::Invalid));
    assert_eq!(verifier.verify(&other_claims).await.map(|c| c.user_id.into_string()), Ok("mallory".to_owned()));
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).expect("in range")
}

#[tokio::test]
async fn amr_and_auth_time_say_how_and_when_the_caller_signed_in_also_when_remembered() {
    let verifier = verifier();
    let signed_in = now() - 120;
    let token = hs256(&claims(json!({"amr": ["pwd", "sms"], "auth_time": signed_in})));
    let expected = Authentication { methods: vec!["pwd".into(), "sms".into()], at: Some(at(signed_in)) };

    let first = verifier.verify(&token).await.expect("valid");
    let remembered = verifier.verify(&token).await.expect("valid again");

    assert_eq!(first.authentication, expected);
    assert_eq!(remembered.authentication, expected, "the remembered caller keeps how it signed in");
    assert!(remembered.authentication.is_second_factor_within(TimeDelta::minutes(5), Utc::now()));
    assert!(!remembered.authentication.is_second_factor_within(TimeDelta::minutes(1), Utc::now()));

    let password_only = hs256(&claims(json!({"amr": ["pwd"], "auth_time": signed_in})));
    let caller = verifier.verify(&password_only).await.expect("valid");
    assert_eq!(caller.authentication.methods, ["pwd"]);
    assert!(!caller.authentication.is_second_factor_within(TimeDelta::minutes(5), Utc::now()));
}

#[tokio::test]
async fn without_amr_and_auth_time_the_caller_says_nothing_of_its_sign_in() {
    let caller = verifier().verify(&hs256(&claims(json!({})))).await.expect("valid");
    assert_eq!(caller.authentication, Authentication::default());

    let only_methods = verifier().verify(&hs256(&claims(json!({"amr": ["otp"]})))).await.expect("valid");
    assert_eq!(only_methods.authentication, Authentication { methods: vec!["otp".into()], at: None });
    let only_time = verifier().verify(&hs256(&claims(json!({"auth_time": 1_700_000_000})))).await.expect("valid");
    assert_eq!(only_time.authentication, Authentication { methods: vec![], at: Some(at(1_700_000_000)) });
}

#[tokio::test]
async fn malformed_amr_or_auth_time_make_the_token_invalid() {
    let cases = [
        (json!({"amr": "sms"}), "amr a string"),
        (json!({"amr": [1, 2]}), "amr of numbers"),
        (json!({"amr": [["pwd"]]}), "amr of arrays"),
        (json!({"amr": null}), "amr null"),
        (json!({"amr": {"sms": true}}), "amr an object"),
        (json!({"auth_time": "1700000000"}), "auth_time a string"),
        (json!({"auth_time": 1_700_000_000.5}), "auth_time with a fraction"),
        (json!({"auth_time": null}), "auth_time null"),
        (json!({"auth_time": -1}), "auth_time before 1970"),
        (json!({"auth_time": 1_000_000_000_000_000_i64}), "auth_time beyond any calendar"),
        (json!({"auth_time": u64::MAX}), "auth_time beyond 64 signed bits"),
        (json!({"auth_time": 4_070_908_800_i64}), "auth_time in 2099"),
        (json!({"auth_time": now() + 60}), "auth_time a minute ahead, past the leeway (5 s)"),
    ];
    for (overrides, case) in cases {
        let token = hs256(&claims(overrides));
        assert_eq!(verifier().verify(&token).await, Err(AuthError::Invalid), "{case}");
    }
}

#[tokio::test]
async fn an_auth_time_a_little_ahead_of_our_clock_is_skew_within_the_leeway() {
    let ahead = now() + 3;
    let token = hs256(&claims(json!({"amr": ["pwd", "sms"], "auth_time": ahead})));

    let caller = verifier().verify(&token).await.expect("within the 5 s leeway");

    assert_eq!(caller.authentication.at, Some(at(ahead)));
}

#[tokio::test]
async fn a_minted_token_carries_the_amr_and_auth_time_asked_for() {
    let signed_in = now() - 600;
    let token = DevTokenMinter::new(ISS, AUD, SECRET)
        .mint(&MintRequest {
            sub: "alice".into(),
            org: Some("org-a".into()),
            roles: vec![],
            ttl: Duration::from_secs(3600),
            now: now(),
            amr: vec!["pwd".into(), "sms".into()],
            auth_time: Some(signed_in),
        })
        .expect("minted");

    let caller = verifier().verify(&token).await.expect("valid");

    assert_eq!(
        caller.authentication,
        Authentication { methods: vec!["pwd".into(), "sms".into()], at: Some(at(signed_in)) }
    );
}

#[test]
fn a_token_is_not_minted_with_an_auth_time_that_would_not_verify() {
    let refused = DevTokenMinter::new(ISS, AUD, SECRET)
        .mint(&MintRequest {
            sub: "alice".into(),
            org: None,
            roles: vec![],
            ttl: Duration::from_secs(60),
            now: now(),
            amr: vec![],
            auth_time: Some(-1),
        })
        .expect_err("before 1970");
    assert!(refused.to_string().contains("auth_time is before 1970"), "{refused}");
}

#[test]
fn org_owners_set_their_org_s_policy_and_user_managers_do_not() {
    let roles = RoleMap::zitadel_defaults();
    let org_a = OrgId::new("org-a").expect("valid");
    let grants = |role: &str| roles.grants(&[RoleClaim { role: role.into(), org: None }], Some(&org_a));
    let policy = |scope: Scope| {
        [Permission::PolicyRead, Permission::PolicyWrite].map(|permission| Grant { permission, scope: scope.clone() })
    };

    let owner = grants("ORG_OWNER");
    assert!(policy(Scope::Org(org_a.clone())).iter().all(|g| owner.contains(g)), "{owner:?}");
    assert!(owner.contains(&Grant { permission: Permission::UserDelete, scope: Scope::Org(org_a.clone()) }));
    let manager = grants("ORG_USER_MANAGER");
    assert!(manager.iter().all(|g| !matches!(g.permission, Permission::PolicyRead | Permission::PolicyWrite)));
    assert!(manager.contains(&Grant { permission: Permission::UserWrite, scope: Scope::Org(org_a.clone()) }));
    let iam_owner = grants("IAM_OWNER");
    assert!(policy(Scope::Instance).iter().all(|g| iam_owner.contains(g)), "{iam_owner:?}");
}
