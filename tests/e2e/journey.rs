//! The newcomer's path: create a user, add an authenticator, verify it with the code
//! from the SMS, read it back, remove it, and find it gone everywhere.

use super::TestApp;
use serde_json::json;

#[tokio::test]
async fn a_user_adds_verifies_reads_and_removes_an_otp_sms_authenticator() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let alice = app.token("alice", "org-a", &[]);

    // Self-service add: the code goes out by SMS, not in the answer.
    let added = app.add_otp_sms(&alice, "alice", json!({"number": "+41 79 123 45 67"})).await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.get("verificationCode").is_none(), "{}", added.body);
    let otp = added.body["otpSmsId"].as_str().expect("id").to_owned();
    let codes = app.sms.codes_for("+41791234567");
    assert_eq!(codes.len(), 1, "one SMS to the normalised number");

    let read = app.get_user(&alice, "alice").await;
    assert_eq!(
        read.body["user"]["authenticators"]["otpSms"],
        json!([{"otpSmsId": otp, "phone": "+41791234567", "isVerified": false}])
    );

    let verified = app.verify_otp_sms(&alice, "alice", &otp, &codes[0]).await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let read = app.get_user(&alice, "alice").await;
    assert_eq!(read.body["user"]["authenticators"]["otpSms"][0]["isVerified"], true);

    let removed = app.remove_otp_sms(Some(&alice), "alice", &otp).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let details = &removed.body["details"];
    assert_eq!(
        (details["id"].as_str(), details["owner"]["type"].as_str(), details["owner"]["id"].as_str()),
        (Some("alice"), Some("OWNER_TYPE_ORG"), Some("org-a"))
    );
    assert_eq!(details["created"], read.body["user"]["details"]["created"], "created is the user's creation");
    assert!(details["changed"].as_str() > read.body["user"]["details"]["changed"].as_str(), "changed moved: {details}");

    assert!(app.otp_sms_ids("alice").await.is_empty());
    let again = app.remove_otp_sms(Some(&alice), "alice", &otp).await;
    again.assert_error(404, 5, "OTPSMS-NotFound");
    let events = app.sql.strings("SELECT event_type FROM events WHERE aggregate_id = 'alice' ORDER BY sequence").await;
    assert_eq!(
        events,
        [
            "user.human.added",
            "user.human.mfa.otp.sms.added",
            "user.human.mfa.otp.sms.verified",
            "user.human.mfa.otp.sms.removed"
        ]
    );
}

#[tokio::test]
async fn timestamps_and_details_follow_protobuf_json() {
    let app = TestApp::spawn().await;
    let created = app.create_user(&app.admin(), "org-a", json!({"schemaId": "human", "userId": "bob"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let stamp = created.body["details"]["created"].as_str().expect("created");
    let fraction = stamp.trim_end_matches('Z').split_once('.').map_or(0, |(_, f)| f.len());
    assert!(stamp.ends_with('Z') && [0, 3, 6, 9].contains(&fraction), "{stamp}");
    assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "{stamp}");
}
