//! Removal under the login policy (docs/GUIDE.md, Removal policies): the last factor while MFA is
//! forced, step-up for self-service, and the notice an SMS tells the removed number.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::TestApp;

/// Two verified factors of alice's (org-a), and the ids.
async fn alice_with_two_factors(app: &TestApp) -> (String, String) {
    app.given_user("alice", "org-a").await;
    let a1 = app.given_authenticator("alice", "+41791234567").await;
    let a2 = app.given_authenticator("alice", "+41791234568").await;
    (a1, a2)
}

async fn removal_events(app: &TestApp) -> Vec<serde_json::Value> {
    app.sql.payloads("user.human.mfa.otp.sms.removed").await
}

#[tokio::test]
async fn a_user_keeps_its_last_verified_factor_while_mfa_is_forced_and_an_administrator_may_remove_it() {
    let app = TestApp::spawn().await;
    let (a1, a2) = alice_with_two_factors(&app).await;
    app.given_login_policy(Some("org-a"), json!({"forceMfa": true})).await;
    let alice = app.token("alice", "org-a", &[]);

    // Not the last one: allowed, and the event says so.
    assert_eq!(app.remove_otp_sms(Some(&alice), "alice", &a1).await.status, 200);
    // The last verified one: refused, nothing changed.
    let refused = app.remove_otp_sms(Some(&alice), "alice", &a2).await;
    refused.assert_error(400, 9, "OTPSMS-LastFactor");
    assert!(refused.body["message"].as_str().is_some_and(|m| m.contains("administrator")), "{}", refused.body);
    assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&a2));

    // An abandoned enrolment is always the user's to remove.
    let (pending, _) = app.given_pending_authenticator("alice", "+41791234569").await;
    assert_eq!(app.remove_otp_sms(Some(&alice), "alice", &pending).await.status, 200);

    // An administrator removes the last one (lockout recovery); the event tells.
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    assert_eq!(app.remove_otp_sms(Some(&admin), "alice", &a2).await.status, 200);
    assert!(app.otp_sms_ids("alice").await.is_empty());
    let flags: Vec<_> =
        removal_events(&app).await.iter().map(|e| (e["actor"].clone(), e["lastFactor"].clone())).collect();
    assert_eq!(
        flags,
        [(json!("alice"), json!(false)), (json!("alice"), json!(false)), (json!("admin-a"), json!(true))],
        "a1, the abandoned enrolment, then the last factor"
    );
}

#[tokio::test]
async fn of_two_concurrent_self_service_removals_of_the_last_two_factors_only_one_lands() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.given_login_policy(None, json!({"forceMfa": true})).await;
    let alice = app.token("alice", "org-a", &[]);
    for round in 0..8 {
        let a1 = app.given_authenticator("alice", "+41791234567").await;
        let a2 = app.given_authenticator("alice", "+41791234568").await;

        let (first, second) = tokio::join!(
            app.remove_otp_sms(Some(&alice), "alice", &a1),
            app.remove_otp_sms(Some(&alice), "alice", &a2)
        );

        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "round {round}: {} / {}", first.body, second.body);
        let refused = if first.status == 400 { &first } else { &second };
        refused.assert_error(400, 9, "OTPSMS-LastFactor");
        let left = app.otp_sms_ids("alice").await;
        assert_eq!(left.len(), 1, "round {round}: one verified factor kept");
        // Start the next round from none.
        let admin = app.admin();
        assert_eq!(app.remove_otp_sms(Some(&admin), "alice", &left[0]).await.status, 200);
    }
}

#[tokio::test]
async fn removing_ones_own_factor_needs_a_recent_second_factor_sign_in_when_the_policy_asks() {
    let app = TestApp::spawn().await;
    let (a1, a2) = alice_with_two_factors(&app).await;
    app.given_login_policy(Some("org-a"), json!({"selfRemovalStepUpMaxAge": "300s"})).await;
    let now = Utc::now();
    let cases = [
        (app.token("alice", "org-a", &[]), "no amr or auth_time"),
        (app.token_signed_in("alice", "org-a", &["pwd"], now), "a password only"),
        (app.token_signed_in("alice", "org-a", &["pwd", "sms"], now - TimeDelta::minutes(10)), "too long ago"),
    ];
    for (token, case) in cases {
        let refused = app.remove_otp_sms(Some(&token), "alice", &a1).await;
        refused.assert_error(403, 7, "AUTHZ-StepUpRequired");
        let message = refused.body["message"].as_str().unwrap_or_default();
        assert!(message.contains("re-authenticate") && message.contains("300 seconds"), "{case}: {message}");
    }
    assert_eq!(app.otp_sms_ids("alice").await.len(), 2, "nothing removed");

    let stepped_up = app.token_signed_in("alice", "org-a", &["pwd", "sms"], now - TimeDelta::seconds(30));
    assert_eq!(app.remove_otp_sms(Some(&stepped_up), "alice", &a1).await.status, 200);
    // Administrators acting on others are not asked.
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    assert_eq!(app.remove_otp_sms(Some(&admin), "alice", &a2).await.status, 200);
}

/// Waits until `count` notices were handed to the SMS provider (or a few seconds passed).
async fn notices_after(app: &TestApp, count: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        if app.sms.notices().len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.sms.notices()
}

#[tokio::test]
async fn a_removed_verified_number_gets_one_notice_after_the_removal_and_nothing_else_does() {
    let app = TestApp::spawn().await;
    let (a1, _) = alice_with_two_factors(&app).await;
    let (pending, _) = app.given_pending_authenticator("alice", "+41791234569").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);

    // Without the policy: no notice.
    app.given_user("bob", "org-b").await;
    let bobs = app.given_authenticator("bob", "+41791234570").await;
    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "bob", &bobs).await.status, 200);

    app.given_login_policy(Some("org-a"), json!({"notifyOnRemoval": true})).await;
    // Refused removals (missing authenticator, a caller who may not) leave no notice.
    assert_eq!(app.remove_otp_sms(Some(&admin), "alice", "999").await.status, 404);
    let bob = app.token("bob", "org-a", &[]);
    assert_eq!(app.remove_otp_sms(Some(&bob), "alice", &a1).await.status, 403);
    // An abandoned enrolment's number was never proven to be alice's: no notice to it.
    assert_eq!(app.remove_otp_sms(Some(&admin), "alice", &pending).await.status, 200);

    let removed = app.remove_otp_sms(Some(&admin), "alice", &a1).await;
    assert_eq!(removed.status, 200);

    let notices = notices_after(&app, 1).await;
    let sequence = removal_events(&app).await.len();
    assert!(sequence > 0);
    assert_eq!(notices.len(), 1, "{notices:?}");
    let (id, to) = &notices[0];
    assert_eq!(to, "+41791234567");
    assert!(id.contains("/alice/"), "named by the instance and the removal: {id}");
    // Sent once and gone from the outbox, with its full number.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sms.notices().len(), 1, "no second send");
    assert_eq!(app.sql.count("notice_outbox").await, 0);
}

#[tokio::test]
async fn a_notice_the_provider_refused_is_sent_once_it_takes_it() {
    let app = TestApp::spawn_with(|settings| {
        settings.notices.first_retry = Duration::from_millis(200);
        settings.notices.poll_interval = Duration::from_millis(100);
    })
    .await;
    let (a1, _) = alice_with_two_factors(&app).await;
    app.given_login_policy(Some("org-a"), json!({"notifyOnRemoval": true})).await;
    app.sms.fail_from_now_on();

    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &a1).await.status, 200, "the removal does not wait");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(app.sms.notices().is_empty());
    assert_eq!(app.sql.count("notice_outbox").await, 1, "kept for the next try");

    app.sms.succeed_from_now_on();
    let notices = notices_after(&app, 1).await;
    assert_eq!(notices.iter().map(|(_, to)| to.as_str()).collect::<Vec<_>>(), ["+41791234567"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sms.notices().len(), 1);
    assert_eq!(app.sql.count("notice_outbox").await, 0);
}

#[tokio::test]
async fn notices_count_against_the_numbers_sms_limit_so_a_stranger_is_not_texted_without_end() {
    use factors_api_grpc::pb::zitadel::resources::user::v3alpha as pb;
    use factors_api_grpc::pb::zitadel::resources::user::v3alpha::zitadel_users_client::ZitadelUsersClient;
    use factors_e2e::grpc::{authorized, channel};

    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.given_login_policy(Some("org-a"), json!({"notifyOnRemoval": true})).await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let mut grpc = ZitadelUsersClient::new(channel(&app).await);
    let stranger = "+41791234599";

    // An administrator stores a stranger's number as verified (no code, no SMS) and removes
    // it, seven times: over REST, then over gRPC.
    for round in 0..7 {
        let otp = app.given_authenticator("alice", stranger).await;
        if round % 2 == 0 {
            assert_eq!(app.remove_otp_sms(Some(&admin), "alice", &otp).await.status, 200);
        } else {
            let request =
                pb::RemoveOtpsmsAuthenticatorRequest { id: "alice".into(), otp_sms_id: otp, ..Default::default() };
            grpc.remove_otpsms_authenticator(authorized(request, &admin)).await.expect("removed");
        }
    }

    // The per-number limit (5 in 10 minutes) holds for notices too: five go out, the other
    // two wait in the outbox for the window to have room.
    for _ in 0..100 {
        if app.sms.notices().len() >= 5 && app.sql.count("notice_outbox").await == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = app.sms.notices();
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert!(sent.iter().all(|(_, to)| to == stranger));
    assert_eq!(app.sql.count("notice_outbox").await, 2, "put off until the window has room, not lost");
    // And a code to that number now waits for the window too.
    let added = app.add_otp_sms(&admin, "alice", json!({"number": stranger})).await;
    added.assert_error(429, 8, "SMS-RateLimitedPhone");
}
