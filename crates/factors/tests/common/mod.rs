//! What more than one test target of the binary needs.

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
        let created = client
            .post(format!("{base}/resources/v3alpha/users?organization.orgId=org-a"))
            .bearer_auth(admin)
            .json(&serde_json::json!({"schemaId": "human", "userId": user, "data": {}}))
            .send()
            .await
            .expect("answers");
        assert_eq!(created.status().as_u16(), 201);
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
