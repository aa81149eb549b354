//! Authentication: which bearer tokens the service refuses (401), on every RPC.

use super::TestApp;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signs `claims` with the service's development secret.
fn signed(app: &TestApp, claims: &Value) -> String {
    let secret = app.settings.auth.hs256_secret.as_ref().expect("dev secret");
    jsonwebtoken::encode(&Header::default(), claims, &EncodingKey::from_secret(secret.expose_secret().as_bytes()))
        .expect("signs")
}

fn claims(app: &TestApp, overrides: Value) -> Value {
    let mut claims = json!({"iss": app.settings.auth.issuer, "aud": app.settings.auth.audience, "sub": "iam",
        "iat": now(), "exp": now() + 600, "roles": [{"role": "IAM_OWNER"}]});
    if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), overrides) {
        base.extend(extra);
    }
    claims
}

/// The bad tokens of docs/CONTRACT.md, rule 1, each with the error id it must get.
fn bad_tokens(app: &TestApp) -> Vec<(Option<String>, &'static str, &'static str)> {
    let good = signed(app, &claims(app, json!({})));
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(claims(app, json!({"sub": "someone-else"})).to_string());
        format!("{}.{forged}.{}", parts[0], parts[2])
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims(app, json!({})).to_string())
    );
    vec![
        (None, "AUTH-MissingToken", "missing"),
        (Some(signed(app, &claims(app, json!({"exp": now() - 120})))), "AUTH-TokenExpired", "expired"),
        (Some(signed(app, &claims(app, json!({"aud": "another-service"})))), "AUTH-InvalidToken", "wrong audience"),
        (
            Some(signed(app, &claims(app, json!({"iss": "https://evil.example.com"})))),
            "AUTH-InvalidToken",
            "wrong issuer",
        ),
        (Some(tampered), "AUTH-InvalidToken", "tampered"),
        (Some(alg_none), "AUTH-InvalidToken", "alg none"),
        (
            Some(signed(app, &claims(app, json!({"amr": ["pwd", "sms"], "auth_time": 4_070_908_800_i64})))),
            "AUTH-InvalidToken",
            "a sign-in in 2099, which would pass any step-up",
        ),
    ]
}

#[tokio::test]
async fn removal_refuses_every_bad_token_with_401_and_keeps_the_authenticator() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;

    for (token, id, case) in bad_tokens(&app) {
        let answer = app.remove_otp_sms(token.as_deref(), "alice", &otp).await;
        assert_eq!(answer.status, 401, "{case}: {}", answer.body);
        answer.assert_error(401, 16, id);
    }
    assert_eq!(app.otp_sms_ids("alice").await, [otp]);
}

#[tokio::test]
async fn every_rpc_answers_401_without_a_valid_token() {
    let app = TestApp::spawn().await;
    let calls = [
        (Method::POST, "/resources/v3alpha/users?organization.orgId=org-a", Some(json!({"schemaId": "human"}))),
        (Method::GET, "/resources/v3alpha/users/alice", None),
        (Method::DELETE, "/resources/v3alpha/users/alice", None),
        (Method::POST, "/resources/v3alpha/users/alice/otp_sms", Some(json!({"number": "+41791234567"}))),
        (Method::POST, "/resources/v3alpha/users/alice/otp_sms/1/_verify", Some(json!("123456"))),
        (Method::DELETE, "/resources/v3alpha/users/alice/otp_sms/1", None),
    ];
    for (method, path, body) in calls {
        app.send(method.clone(), path, None, body.clone()).await.assert_error(401, 16, "AUTH-MissingToken");
        // The service tolerates 30 s of clock skew; this token expired well before that.
        let stale = signed(&app, &claims(&app, json!({"exp": now() - 300})));
        app.send(method, path, Some(&stale), body).await.assert_error(401, 16, "AUTH-TokenExpired");
    }
}
