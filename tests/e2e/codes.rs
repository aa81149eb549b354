//! AddOTPSMSAuthenticator and VerifyOTPSMSRegistration: phones, codes and their rules.

use std::time::Duration;

use super::TestApp;
use serde_json::json;

#[tokio::test]
async fn adding_answers_each_status_and_refusals_change_nothing() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let alice = app.token("alice", "org-a", &[]);
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);

    let sent = app.add_otp_sms(&alice, "alice", json!({"number": "+41791234567", "sendCode": {}})).await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let returned = app.add_otp_sms(&admin, "alice", json!({"number": "+41791234568", "returnCode": {}})).await;
    assert_eq!(returned.body["verificationCode"].as_str().map(str::len), Some(6), "{}", returned.body);
    let verified = app.add_otp_sms(&admin, "alice", json!({"number": "+41791234569", "is_verified": true})).await;
    assert_eq!(verified.status, 200);
    assert_eq!(app.otp_sms_ids("alice").await.len(), 3, "a user may hold several");
    assert_eq!(app.sms.count(), 1, "only the first was sent");

    app.add_otp_sms(&alice, "alice", json!({"number": "+41 79 123 45 67"})).await.assert_error(
        409,
        6,
        "OTPSMS-AlreadyExists",
    );
    app.add_otp_sms(&alice, "alice", json!({"number": "+41791230000", "returnCode": {}})).await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );
    app.add_otp_sms(&alice, "alice", json!({"number": "+41791230000", "isVerified": true})).await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );
    app.add_otp_sms(&app.token("r", "org-a", &["ORG_USER_READER"]), "alice", json!({"number": "+41791230000"}))
        .await
        .assert_error(403, 7, "AUTHZ-PermissionDenied");
    app.add_otp_sms(&admin, "ghost", json!({"number": "+41791230000"})).await.assert_error(404, 5, "USER-NotFound");
    app.add_otp_sms(&admin, "alice", json!({"number": "079 123 00 00"})).await.assert_error(
        400,
        3,
        "PHONE-NotInternational",
    );
    app.add_otp_sms(&admin, "alice", json!({"number": "+41 12"})).await.assert_error(400, 3, "PHONE-NotValid");
    app.add_otp_sms(&admin, "alice", json!({})).await.assert_error(400, 3, "REQ-MissingField");
    assert_eq!(app.otp_sms_ids("alice").await.len(), 3, "refusals changed nothing");
    assert_eq!(app.events("user.human.mfa.otp.sms.added").await.len(), 3);
}

#[tokio::test]
async fn when_the_sms_cannot_be_sent_nothing_stays_behind() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.sms.fail_from_now_on();

    let answer = app.add_otp_sms(&app.token("alice", "org-a", &[]), "alice", json!({"number": "+41791234567"})).await;

    answer.assert_error(503, 14, "SMS-SendFailed");
    assert!(app.otp_sms_ids("alice").await.is_empty());
}

#[tokio::test]
async fn verifying_answers_each_status_and_the_right_code_verifies_once() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let alice = app.token("alice", "org-a", &[]);
    let added = app.add_otp_sms(&alice, "alice", json!({"number": "+41791234567"})).await;
    let otp = added.body["otpSmsId"].as_str().expect("id").to_owned();
    let code = app.sms.codes_for("+41791234567").pop().expect("sent");
    let wrong = if code == "000000" { "111111" } else { "000000" };

    app.verify_otp_sms(&alice, "alice", &otp, wrong).await.assert_error(400, 3, "OTPSMS-CodeWrong");
    app.verify_otp_sms(&alice, "alice", &otp, "12ab56").await.assert_error(400, 3, "OTPSMS-CodeFormat");
    app.verify_otp_sms(&app.token("bob", "org-a", &[]), "alice", &otp, &code).await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );
    app.verify_otp_sms(&alice, "alice", "404", &code).await.assert_error(404, 5, "OTPSMS-NotFound");
    assert_eq!(app.verify_otp_sms(&alice, "alice", &otp, &code).await.status, 200);
    app.verify_otp_sms(&alice, "alice", &otp, &code).await.assert_error(400, 9, "OTPSMS-AlreadyVerified");
}

#[tokio::test]
async fn five_wrong_codes_void_the_code_even_the_right_one_after() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let (otp, code) = app.given_pending_authenticator("alice", "+41791234567").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    for _ in 0..5 {
        app.verify_otp_sms(&admin, "alice", &otp, wrong).await.assert_error(400, 3, "OTPSMS-CodeWrong");
    }
    app.verify_otp_sms(&admin, "alice", &otp, &code).await.assert_error(400, 9, "OTPSMS-CodeExhausted");
    assert_eq!(app.events("user.human.mfa.otp.sms.verified").await.len(), 0);
}

#[tokio::test]
async fn an_expired_code_is_refused_with_its_own_id() {
    let app = TestApp::spawn_with(|settings| settings.codes.ttl = Duration::from_secs(1)).await;
    app.given_user("alice", "org-a").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let (otp, code) = app.given_pending_authenticator("alice", "+41791234567").await;

    tokio::time::sleep(Duration::from_millis(1200)).await;

    app.verify_otp_sms(&admin, "alice", &otp, &code).await.assert_error(400, 3, "OTPSMS-CodeExpired");
}

/// Guesses sent all at once get no more comparisons than sequential ones: of a burst of
/// wrong codes with the right one sent in the midst of them, at most five are compared
/// (answer "wrong", or verify for the right code); the others find no try left.
#[tokio::test]
async fn concurrent_guesses_at_a_registration_code_get_no_more_tries_than_sequential_ones() {
    const WRONG: u32 = 40;
    // Each code's own five tries, apart from the user's budget (tests in `sessions`).
    let app = std::sync::Arc::new(TestApp::spawn_with(|settings| settings.codes.max_failures_per_user = 1_000).await);
    app.given_user("alice", "org-a").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    for round in 0..6 {
        let (otp, code) = app.given_pending_authenticator("alice", &format!("+4179123456{round}")).await;
        let answers = factors_e2e::guess_burst(&code, WRONG, |guess| {
            let (app, admin, otp) = (app.clone(), admin.clone(), otp.clone());
            async move { app.verify_otp_sms(&admin, "alice", &otp, &guess).await }
        })
        .await;

        let compared = answers.iter().filter(|a| a.status == 200 || a.error_id() == "OTPSMS-CodeWrong").count();
        assert!(compared <= 5, "round {round}: {compared} guesses were compared");
        for answer in answers.iter().filter(|a| a.status != 200) {
            let expected = ["OTPSMS-CodeWrong", "OTPSMS-CodeExhausted", "USER-Contended", "OTPSMS-AlreadyVerified"];
            assert!(expected.contains(&answer.error_id()), "{}", answer.body);
        }
    }
}
