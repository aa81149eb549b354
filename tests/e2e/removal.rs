//! RemoveOTPSMSAuthenticator: who may remove what (docs/CONTRACT.md, rule 4), what a removal
//! leaves behind, and what happens under concurrency.

use super::TestApp;

#[tokio::test]
async fn who_may_remove_follows_the_contract() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let cases = [
        (app.token("alice", "org-a", &[]), 200, "", "the user itself"),
        (app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]), 200, "", "org admin of the user's org"),
        (app.token("owner-a", "org-b", &["ORG_OWNER:org-a"]), 200, "", "org owner granted on the user's org"),
        (app.token("iam", "org-x", &["IAM_OWNER"]), 200, "", "instance admin"),
        (app.token("admin-b", "org-b", &["ORG_USER_MANAGER"]), 404, "USER-NotFound", "org admin of another org"),
        (app.token("reader-a", "org-a", &["ORG_USER_READER"]), 403, "AUTHZ-PermissionDenied", "read-only caller"),
        (app.token("bob", "org-a", &[]), 403, "AUTHZ-PermissionDenied", "plain user acting on someone else"),
    ];
    for (token, status, id, case) in cases {
        let otp = app.given_authenticator("alice", "+41791234567").await;
        let answer = app.remove_otp_sms(Some(&token), "alice", &otp).await;
        assert_eq!(answer.status, status, "{case}: {}", answer.body);
        if status == 200 {
            assert!(app.otp_sms_ids("alice").await.is_empty(), "{case}: gone");
        } else {
            answer.assert_error(status, if status == 404 { 5 } else { 7 }, id);
            assert_eq!(app.otp_sms_ids("alice").await, std::slice::from_ref(&otp), "{case}: nothing changed");
            let cleanup = app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await;
            assert_eq!(cleanup.status, 200);
        }
    }
}

#[tokio::test]
async fn existence_is_not_revealed_to_callers_without_user_permissions() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let bob = app.token("bob", "org-a", &[]);

    // Existing user and authenticator, missing authenticator, missing user: all the same.
    for (user, id) in [("alice", otp.as_str()), ("alice", "999"), ("ghost", "999")] {
        app.remove_otp_sms(Some(&bob), user, id).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    }
    // A caller with permissions somewhere gets NOT_FOUND for what lies outside its scope.
    let admin_b = app.token("admin-b", "org-b", &["ORG_USER_MANAGER"]);
    for (user, id) in [("alice", otp.as_str()), ("ghost", "999")] {
        app.remove_otp_sms(Some(&admin_b), user, id).await.assert_error(404, 5, "USER-NotFound");
    }
}

#[tokio::test]
async fn an_authenticator_of_another_user_or_a_missing_one_is_not_found() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.given_user("bob", "org-a").await;
    let bobs = app.given_authenticator("bob", "+41791234567").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);

    app.remove_otp_sms(Some(&admin), "alice", &bobs).await.assert_error(404, 5, "OTPSMS-NotFound");
    app.remove_otp_sms(Some(&admin), "alice", "12345").await.assert_error(404, 5, "OTPSMS-NotFound");
    app.remove_otp_sms(Some(&admin), "ghost", &bobs).await.assert_error(404, 5, "USER-NotFound");
    assert_eq!(app.otp_sms_ids("bob").await, [bobs]);
}

#[tokio::test]
async fn the_removal_is_audited_and_voids_the_pending_code() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let (otp, code) = app.given_pending_authenticator("alice", "+41791234567").await;

    let removed = app.remove_otp_sms(Some(&admin), "alice", &otp).await;
    assert_eq!(removed.status, 200, "{}", removed.body);

    let events = app.events("user.human.mfa.otp.sms.removed").await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(
        (event["actor"].as_str(), event["userId"].as_str(), event["otpSmsId"].as_str()),
        (Some("admin-a"), Some("alice"), Some(otp.as_str()))
    );
    assert_eq!(event["phone"], "+41******567", "masked, never the full number");
    assert_eq!(event["at"], removed.body["details"]["changed"]);
    let pending = app.sql.count("otp_sms_codes").await;
    assert_eq!(pending, 0);
    // The code that was issued for it can never be used.
    app.verify_otp_sms(&admin, "alice", &otp, &code).await.assert_error(404, 5, "OTPSMS-NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_removals_give_one_success_forty_nine_not_found_and_one_event() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let token = app.token("alice", "org-a", &[]);

    let removals = (0..50).map(|_| app.remove_otp_sms(Some(&token), "alice", &otp));
    let answers = futures::future::join_all(removals).await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 49, "{statuses:?}");
    for answer in answers.iter().filter(|a| a.status == 404) {
        answer.assert_error(404, 5, "OTPSMS-NotFound");
    }
    assert_eq!(app.events("user.human.mfa.otp.sms.removed").await.len(), 1);
}

#[tokio::test]
async fn bad_inputs_answer_400_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;
    let admin = app.admin();
    let long = "9".repeat(201);

    app.remove_otp_sms(Some(&admin), "alice", &long).await.assert_error(400, 3, "OTPSMS-InvalidId");
    app.remove_otp_sms(Some(&admin), &long, &otp).await.assert_error(400, 3, "USER-InvalidId");
    let both = app
        .send(
            reqwest::Method::DELETE,
            &format!("/resources/v3alpha/users/alice/otp_sms/{otp}?instance.id=factors&instance.domain=localhost"),
            Some(&admin),
            None,
        )
        .await;
    both.assert_error(400, 3, "REQ-OneOf");
    assert_eq!(app.otp_sms_ids("alice").await, [otp]);
}

#[tokio::test]
async fn instance_and_organization_selectors_narrow_the_lookup() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let admin = app.admin();
    let path = |otp: &str, query: &str| format!("/resources/v3alpha/users/alice/otp_sms/{otp}?{query}");

    let otp = app.given_authenticator("alice", "+41791234567").await;
    let cases = [
        ("instance.id=another", 404, "INSTANCE-NotFound"),
        ("instance.domain=evil.example.com", 404, "INSTANCE-NotFound"),
        ("organization.orgId=org-b", 404, "USER-NotFound"),
        ("organization.org_domain=unknown.example.com", 404, "ORG-NotFound"),
    ];
    for (query, status, id) in cases {
        app.send(reqwest::Method::DELETE, &path(&otp, query), Some(&admin), None).await.assert_error(status, 5, id);
    }
    let matching = app
        .send(
            reqwest::Method::DELETE,
            &path(&otp, "instance.domain=LOCALHOST&organization.org_id=org-a"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(matching.status, 200, "{}", matching.body);
}

#[tokio::test]
async fn replicas_whose_own_snapshots_are_behind_still_answer_every_removal_rightly() {
    // No Redis: each replica decides on the snapshots it keeps itself, which the other
    // replica's writes leave behind.
    let one = TestApp::spawn().await;
    let other = one.replica().await;
    one.given_user("alice", "org-a").await;
    let admin = one.admin();

    for round in 0..5 {
        // The other replica keeps alice as she is now, before the add...
        assert!(other.otp_sms_ids("alice").await.is_empty(), "round {round}");
        let otp = one.given_authenticator("alice", "+41791234567").await;
        // ...so it decides on a state without the authenticator, and must look again.
        let removed = other.remove_otp_sms(Some(&admin), "alice", &otp).await;
        assert_eq!(removed.status, 200, "round {round}: {}", removed.body);
        // The first replica keeps the state its add left, with the authenticator in it:
        // its decision is refused by the store, and the store's state says it is gone.
        let again = one.remove_otp_sms(Some(&admin), "alice", &otp).await;
        again.assert_error(404, 5, "OTPSMS-NotFound");
    }
    assert_eq!(one.events("user.human.mfa.otp.sms.removed").await.len(), 5, "one removal event each");
}
