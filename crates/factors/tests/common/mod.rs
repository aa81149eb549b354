//! What more than one test target of the binary needs. Each target uses a part of it.
#![allow(dead_code)]

use std::time::Duration;

use factors::Settings;
use factors_adapters_jwt::{DevTokenMinter, MintRequest, RoleClaim};
use secrecy::ExposeSecret;

/// An instance administrator's token (`IAM_OWNER`, sub `admin-a` of `org-a`), signed with
/// the settings' development secret.
pub fn admin_token(settings: &Settings) -> String {
    let secret = settings.auth.hs256_secret.as_ref().expect("the test secret");
    DevTokenMinter::new(&settings.auth.issuer, &settings.auth.audience, secret.expose_secret().as_bytes())
        .mint(&MintRequest {
            sub: "admin-a".into(),
            org: Some("org-a".into()),
            roles: vec![RoleClaim { role: "IAM_OWNER".into(), org: None }],
            ttl: Duration::from_secs(600),
            now: chrono::Utc::now().timestamp(),
            amr: vec![],
            auth_time: None,
        })
        .expect("minted")
}

/// Creates user `user` in `org-a` through the REST API at `base`.
pub async fn create_user(client: &reqwest::Client, base: &str, admin: &str, user: &str) {
    let created = client
        .post(format!("{base}/resources/v3alpha/users?organization.orgId=org-a"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"schemaId": "human", "userId": user, "data": {}}))
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status().as_u16(), 201);
}

/// Creates the users `user-0` to `user-{count - 1}` in `org-a` through the REST API at `base`,
/// each with a verified SMS factor, and returns every user's id with its factor's id.
pub async fn users_with_an_otp_sms(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    count: usize,
) -> Vec<(String, String)> {
    let mut removals = Vec::new();
    for n in 0..count {
        let user = format!("user-{n}");
        create_user(client, base, admin, &user).await;
        let added: serde_json::Value = client
            .post(format!("{base}/resources/v3alpha/users/{user}/otp_sms"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"number": "+41791234567", "isVerified": true}))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON");
        removals.push((user, added["otpSmsId"].as_str().expect("an id").to_owned()));
    }
    removals
}
