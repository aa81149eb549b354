//! The OpenAPI document matches what the service really answers: every status a route
//! gives is documented for it, error bodies are the documented Status, and success bodies
//! carry the documented fields.

use factors_e2e::Answer;

use super::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

/// The schema a `$ref` or inline schema stands for.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

#[track_caller]
fn assert_documented(doc: &Value, method: &str, template: &str, answer: &Answer) {
    let responses = &doc["paths"][template][method]["responses"];
    let documented = &responses[answer.status.to_string()];
    assert!(
        documented.is_object(),
        "{method} {template} answered {} which is not documented: {}",
        answer.status,
        answer.body
    );
    let schema = resolve(doc, &documented["content"]["application/json"]["schema"]);
    let properties =
        schema["properties"].as_object().unwrap_or_else(|| panic!("{method} {template} {}: no schema", answer.status));
    let body = answer.body.as_object().expect("an object body");
    for key in body.keys() {
        assert!(properties.contains_key(key), "{method} {template} {}: field {key} is not documented", answer.status);
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let required = required.as_str().expect("a name");
        assert!(
            body.contains_key(required),
            "{method} {template} {}: documented field {required} missing",
            answer.status
        );
    }
}

#[tokio::test]
async fn every_status_the_service_answers_is_documented_with_its_body() {
    let app = TestApp::spawn().await;
    let doc = app.send(Method::GET, "/openapi.json", None, None).await.body;
    let admin = app.admin();
    let alice = app.token("alice", "org-a", &[]);
    let bob = app.token("bob", "org-a", &[]);
    let users = "/resources/v3alpha/users";
    let user = "/resources/v3alpha/users/{id}";
    let otps = "/resources/v3alpha/users/{id}/otp_sms";
    let otp = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}";
    let verify = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}/_verify";

    let mut calls: Vec<(&str, &str, Answer)> = Vec::new();
    calls.push(("post", users, app.create_user(&admin, "org-a", json!({"schemaId": "h", "userId": "alice"})).await));
    calls.push(("post", users, app.create_user(&admin, "org-a", json!({"schemaId": "h", "userId": "alice"})).await));
    calls.push(("post", users, app.create_user(&admin, "org-a", json!({})).await));
    calls.push(("post", users, app.create_user(&bob, "org-a", json!({"schemaId": "h"})).await));
    calls.push(("post", users, app.send(Method::POST, users, None, Some(json!({}))).await));
    let added = app.add_otp_sms(&admin, "alice", json!({"number": "+41791234567", "returnCode": {}})).await;
    let id = added.body["otpSmsId"].as_str().expect("id").to_owned();
    let code = added.body["verificationCode"].as_str().expect("code").to_owned();
    calls.push(("post", otps, added));
    calls.push(("post", otps, app.add_otp_sms(&admin, "alice", json!({"number": "+41791234567"})).await));
    calls.push(("post", otps, app.add_otp_sms(&admin, "alice", json!({"number": "nope"})).await));
    calls.push((
        "post",
        otps,
        app.add_otp_sms(&alice, "alice", json!({"number": "+41791234568", "isVerified": true})).await,
    ));
    calls.push(("post", otps, app.add_otp_sms(&admin, "ghost", json!({"number": "+41791234568"})).await));
    calls.push(("get", user, app.get_user(&alice, "alice").await));
    calls.push(("get", user, app.get_user(&bob, "alice").await));
    calls.push(("get", user, app.get_user(&admin, "ghost").await));
    calls.push(("post", verify, app.verify_otp_sms(&admin, "alice", &id, "abc").await));
    calls.push(("post", verify, app.verify_otp_sms(&bob, "alice", &id, &code).await));
    calls.push(("post", verify, app.verify_otp_sms(&admin, "alice", "404", &code).await));
    calls.push(("post", verify, app.verify_otp_sms(&admin, "alice", &id, &code).await));
    calls.push(("delete", otp, app.remove_otp_sms(Some(&bob), "alice", &id).await));
    calls.push(("delete", otp, app.remove_otp_sms(None, "alice", &id).await));
    calls.push(("delete", otp, app.remove_otp_sms(Some(&alice), "alice", &id).await));
    calls.push(("delete", otp, app.remove_otp_sms(Some(&alice), "alice", &id).await));
    calls.push(("delete", otp, app.remove_otp_sms(Some(&alice), "alice", &"1".repeat(201)).await));
    let trail = "/resources/v3alpha/users/{id}/_events";
    let read_trail = |token: String, query: &'static str| {
        let path = format!("/resources/v3alpha/users/alice/_events{query}");
        let app = &app;
        async move { app.send(Method::GET, &path, Some(&token), None).await }
    };
    calls.push(("get", trail, read_trail(admin.clone(), "?pageSize=1").await));
    calls.push(("get", trail, read_trail(admin.clone(), "?cursor=nope").await));
    calls.push(("get", trail, read_trail(alice.clone(), "").await));
    calls.push(("get", trail, read_trail(app.token("admin-b", "org-b", &["ORG_USER_MANAGER"]), "").await));
    let instance_policy = "/resources/v3alpha/policies/login";
    let org_policy = "/resources/v3alpha/organizations/{organization_id}/policies/login";
    let org_a_policy = "/resources/v3alpha/organizations/org-a/policies/login";
    let bad_org_policy = format!("/resources/v3alpha/organizations/{}/policies/login", "o".repeat(201));
    let owner = app.token("owner-a", "org-a", &["ORG_OWNER"]);
    let strict = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true});
    calls.push(("get", instance_policy, app.send(Method::GET, instance_policy, Some(&admin), None).await));
    calls.push(("put", instance_policy, app.send(Method::PUT, instance_policy, Some(&admin), Some(strict.clone())).await));
    calls.push(("get", instance_policy, app.send(Method::GET, instance_policy, Some(&admin), None).await));
    let fractional = json!({"selfRemovalStepUpMaxAge": "1.5s"});
    calls.push(("put", instance_policy, app.send(Method::PUT, instance_policy, Some(&admin), Some(fractional)).await));
    calls.push(("put", instance_policy, app.send(Method::PUT, instance_policy, None, Some(strict.clone())).await));
    calls.push(("get", instance_policy, app.send(Method::GET, instance_policy, None, None).await));
    calls.push(("get", instance_policy, app.send(Method::GET, instance_policy, Some(&owner), None).await));
    calls.push(("put", instance_policy, app.send(Method::PUT, instance_policy, Some(&owner), Some(strict.clone())).await));
    calls.push(("get", org_policy, app.send(Method::GET, org_a_policy, Some(&owner), None).await));
    calls.push(("put", org_policy, app.send(Method::PUT, org_a_policy, Some(&owner), Some(strict.clone())).await));
    calls.push(("put", org_policy, app.send(Method::PUT, org_a_policy, Some(&owner), Some(json!({"selfRemovalStepUpMaxAge": "-1s"}))).await));
    calls.push(("put", org_policy, app.send(Method::PUT, org_a_policy, Some(&bob), Some(strict.clone())).await));
    calls.push(("get", org_policy, app.send(Method::GET, org_a_policy, Some(&bob), None).await));
    calls.push(("get", org_policy, app.send(Method::GET, org_a_policy, None, None).await));
    calls.push(("put", org_policy, app.send(Method::PUT, org_a_policy, None, Some(strict.clone())).await));
    calls.push(("get", org_policy, app.send(Method::GET, &bad_org_policy, Some(&owner), None).await));
    calls.push(("put", org_policy, app.send(Method::PUT, &bad_org_policy, Some(&owner), Some(strict)).await));
    calls.push(("delete", user, app.delete_user(&alice, "alice").await));
    calls.push(("delete", user, app.delete_user(&admin, "alice").await));
    calls.push(("delete", user, app.delete_user(&admin, "alice").await));
    calls.push((
        "post",
        "/resources/v3alpha/users/{id}/totp",
        app.send(Method::POST, "/resources/v3alpha/users/x/totp", None, None).await,
    ));

    for (method, template) in
        [("post", users), ("post", otps), ("post", verify), ("put", instance_policy), ("put", org_policy)]
    {
        let content = &doc["paths"][template][method]["requestBody"]["content"];
        assert!(
            content["application/json"].is_object(),
            "{method} {template} takes JSON, as the service does: {content}"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (method, template, answer) in &calls {
        assert_documented(&doc, method, template, answer);
        seen.insert(answer.status);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [200, 201, 400, 401, 403, 404, 409, 501],
        "the calls cover these statuses"
    );
}
