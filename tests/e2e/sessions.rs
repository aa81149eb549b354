//! Signing in with an OTP SMS authenticator over REST: ZITADEL's session API, every status
//! of its four RPCs, and removal winning over every check that races it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use factors_e2e::Answer;

use super::TestApp;
use serde_json::{Value, json};

const PHONE: &str = "+41791234567";

/// `alice` in org-a with a verified authenticator on [`PHONE`]; its id.
async fn alice(app: &TestApp) -> String {
    app.given_user("alice", "org-a").await;
    app.given_authenticator("alice", PHONE).await
}

fn check_code(code: &str) -> Value {
    json!({"checks": {"otpSms": {"code": code}}})
}

fn token_of(answer: &Answer) -> String {
    answer.body["sessionToken"].as_str().unwrap_or_else(|| panic!("a session token: {}", answer.body)).to_owned()
}

#[tokio::test]
async fn a_user_signs_in_with_a_code_sent_by_sms_and_the_session_shows_both_factors() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let ui = app.login_ui();

    let created =
        app.create_session(&ui, json!({"checks": {"user": {"userId": "alice"}}, "challenges": {"otpSms": {}}})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body["challenges"]["otpSms"].is_null(), "sent, not returned: {}", created.body);
    let details = &created.body["details"];
    assert_eq!(details["resourceOwner"], app.settings.instance.id.as_str(), "{}", created.body);
    assert!(details["changeDate"].as_str().is_some_and(|d| d.ends_with('Z')), "{}", created.body);
    let session = created.body["sessionId"].as_str().expect("sessionId").to_owned();
    let first_token = token_of(&created);
    let codes = app.sms.codes_for(PHONE);
    assert_eq!(codes.len(), 1, "one SMS to the authenticator's number");

    let checked = app.set_session(&ui, &session, check_code(&codes[0])).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    let token = token_of(&checked);
    assert_ne!(token, first_token, "every write hands out a new token");

    let shown = app.get_session(&app.token("nobody", "org-x", &[]), &session, Some(&token)).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let factors = &shown.body["session"]["factors"];
    assert_eq!(
        (factors["user"]["id"].as_str(), factors["user"]["organizationId"].as_str()),
        (Some("alice"), Some("org-a"))
    );
    assert!(factors["otpSms"]["verifiedAt"].as_str().is_some(), "{}", shown.body);
    app.get_session(&app.token("nobody", "org-x", &[]), &session, Some(&first_token)).await.assert_error(
        403,
        7,
        "SESSION-PermissionDenied",
    );

    let again = app.set_session(&ui, &session, check_code(&codes[0])).await;
    again.assert_error(400, 9, "SESSION-NoOtpSmsChallenge");

    let types =
        app.sql.strings("SELECT event_type FROM events WHERE aggregate_type = 'session' ORDER BY sequence").await;
    assert_eq!(
        types,
        [
            "session.added",
            "session.user.checked",
            "session.otp.sms.challenged",
            "session.token.set",
            "session.otp.sms.checked",
            "session.token.set"
        ]
    );
    let challenged = app.events("session.otp.sms.challenged").await;
    assert_eq!(challenged[0]["phone"], "+41******567", "masked: {}", challenged[0]);
    let stored = app.sql.blobs("SELECT token_hash FROM sessions").await;
    assert!(
        !stored.is_empty() && stored.iter().all(|hash| hash.len() == 32 && hash != token.as_bytes()),
        "tokens are kept as hashes"
    );
}

#[tokio::test]
async fn create_session_answers_every_status_of_the_contract() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    app.given_user("bob", "org-a").await;
    let ui = app.login_ui();
    let sign_in = |user: &str| json!({"checks": {"user": {"userId": user}}, "challenges": {"otpSms": {}}});

    let anonymous = app.send(reqwest::Method::POST, "/v2/sessions", None, Some(sign_in("alice"))).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let user_admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    app.create_session(&user_admin, sign_in("alice")).await.assert_error(403, 7, "SESSION-PermissionDenied");
    app.create_session(&ui, json!({"checks": {"password": {"password": "x"}}})).await.assert_error(
        400,
        3,
        "SESSION-Unsupported",
    );
    app.create_session(&ui, json!({"checks": {"user": {"loginName": "alice@example.com"}}})).await.assert_error(
        400,
        3,
        "SESSION-LoginNameUnsupported",
    );
    app.create_session(&ui, sign_in("ghost")).await.assert_error(404, 5, "USER-NotFound");
    app.create_session(&ui, sign_in("bob")).await.assert_error(400, 9, "SESSION-NoOtpSms");
    app.create_session(&ui, json!({"challenges": {"otpSms": {}}})).await.assert_error(400, 9, "SESSION-UserNotChecked");
    app.create_session(&ui, json!({"lifetime": "-5s"})).await.assert_error(400, 3, "SESSION-LifetimeInvalid");
    assert_eq!(app.sms.count(), 0, "nothing refused was sent");

    let limit = app.settings.rate_limits.sms_per_user;
    for _ in 0..limit {
        assert_eq!(app.create_session(&ui, sign_in("alice")).await.status, 201);
    }
    let limited = app.create_session(&ui, sign_in("alice")).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.headers.contains_key("retry-after"));

    let fresh = TestApp::spawn().await;
    alice(&fresh).await;
    fresh.sms.fail_from_now_on();
    let failed = fresh.create_session(&fresh.login_ui(), sign_in("alice")).await;
    failed.assert_error(503, 14, "SMS-SendFailed");
    let sessions = fresh.sql.count("sessions").await;
    assert_eq!(sessions, 0, "a failed send stores nothing");

    let metadata = app.create_session(&ui, json!({"metadata": {"device": "cGhvbmU="}, "lifetime": "600s"})).await;
    assert_eq!(metadata.status, 201, "{}", metadata.body);
    let id = metadata.body["sessionId"].as_str().expect("id");
    let shown = app.get_session(&ui, id, None).await;
    assert_eq!(shown.body["session"]["metadata"]["device"], "cGhvbmU=", "{}", shown.body);
    assert!(shown.body["session"]["expirationDate"].as_str().is_some(), "{}", shown.body);
}

#[tokio::test]
async fn set_session_answers_every_status_of_the_contract() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let ui = app.login_ui();
    let (session, _, code) = app.given_challenged_session("alice").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    app.set_session(&ui, "no-such-session", check_code(&code)).await.assert_error(404, 5, "SESSION-NotFound");
    app.set_session(&app.token("alice", "org-a", &[]), &session, check_code(&code)).await.assert_error(
        403,
        7,
        "SESSION-PermissionDenied",
    );
    app.set_session(&ui, &session, check_code("12345")).await.assert_error(400, 3, "SESSION-CodeInvalid");
    app.set_session(&ui, &session, json!({"checks": {"totp": {"code": "123456"}}})).await.assert_error(
        400,
        3,
        "SESSION-Unsupported",
    );
    app.set_session(&ui, &session, json!({"checks": {"user": {"userId": "bob"}}})).await.assert_error(
        404,
        5,
        "USER-NotFound",
    );
    for _ in 0..5 {
        app.set_session(&ui, &session, check_code(wrong)).await.assert_error(400, 3, "SESSION-CodeWrong");
    }
    app.set_session(&ui, &session, check_code(&code)).await.assert_error(400, 3, "SESSION-CodeExhausted");

    let (expiring, _, code) = app.given_challenged_session("alice").await;
    app.sql.expire("session_challenges", "session_id", &expiring).await;
    app.set_session(&ui, &expiring, check_code(&code)).await.assert_error(400, 3, "SESSION-CodeExpired");

    let (lived, _, _) = app.given_challenged_session("alice").await;
    app.sql.expire("sessions", "id", &lived).await;
    app.set_session(&ui, &lived, json!({})).await.assert_error(400, 9, "SESSION-Expired");
}

#[tokio::test]
async fn get_and_delete_session_need_the_permission_or_the_current_token() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let ui = app.login_ui();
    let nobody = app.token("nobody", "org-x", &[]);
    let (session, token, _) = app.given_challenged_session("alice").await;

    assert_eq!(app.get_session(&ui, &session, None).await.status, 200);
    assert_eq!(app.get_session(&nobody, &session, Some(&token)).await.status, 200);
    app.get_session(&nobody, &session, None).await.assert_error(403, 7, "SESSION-PermissionDenied");
    app.get_session(&nobody, &session, Some("forged")).await.assert_error(403, 7, "SESSION-PermissionDenied");
    app.get_session(&nobody, "no-such-session", Some(&token)).await.assert_error(403, 7, "SESSION-PermissionDenied");
    app.get_session(&ui, "no-such-session", None).await.assert_error(404, 5, "SESSION-NotFound");
    let anonymous = app.send(reqwest::Method::GET, &format!("/v2/sessions/{session}"), None, None).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);

    app.delete_session(&nobody, &session, json!({"sessionToken": "forged"})).await.assert_error(
        403,
        7,
        "SESSION-PermissionDenied",
    );
    let deleted = app.delete_session(&nobody, &session, json!({"sessionToken": token})).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["details"]["resourceOwner"], app.settings.instance.id.as_str());
    app.get_session(&ui, &session, None).await.assert_error(404, 5, "SESSION-NotFound");
    app.delete_session(&ui, &session, json!({})).await.assert_error(404, 5, "SESSION-NotFound");
    assert_eq!(app.events("session.terminated").await.len(), 1);
}

/// Alice's state changed by `manager`: `to` is `lock`, `unlock`, `deactivate` or `activate`.
async fn change_alices_state(app: &TestApp, manager: &str, to: &str) -> Answer {
    app.send(reqwest::Method::POST, &format!("/resources/v3alpha/users/alice/_{to}"), Some(manager), None).await
}

/// Alice's audit trail as `manager` reads it, and its event types in order.
async fn alices_event_types(app: &TestApp, manager: &str) -> (Value, Vec<String>) {
    let trail = app.send(reqwest::Method::GET, "/resources/v3alpha/users/alice/_events", Some(manager), None).await;
    let types = trail.body["events"].as_array().expect("events").iter().filter_map(|e| e["type"].as_str());
    let types = types.map(str::to_owned).collect();
    (trail.body, types)
}

#[tokio::test]
async fn a_locked_user_cannot_sign_in_until_it_is_unlocked_and_both_are_in_its_audit_trail() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let (ui, manager) = (app.login_ui(), app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]));
    let sign_in = json!({"checks": {"user": {"userId": "alice"}}});
    let state_change = |to| change_alices_state(&app, &manager, to);

    let locked = state_change("lock").await;
    assert_eq!(locked.status, 200, "{}", locked.body);
    assert_eq!(locked.body["details"]["id"], "alice", "{}", locked.body);
    app.create_session(&ui, sign_in.clone()).await.assert_error(400, 9, "SESSION-UserInactive");
    assert_eq!(app.get_user(&manager, "alice").await.body["user"]["state"], "USER_STATE_LOCKED");
    state_change("lock").await.assert_error(400, 9, "USER-NotActive");
    let reader = app.token("reader-a", "org-a", &["ORG_USER_READER"]);
    app.send(reqwest::Method::POST, "/resources/v3alpha/users/alice/_unlock", Some(&reader), None).await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );

    let unlocked = state_change("unlock").await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.body);
    let signed_in = app.create_session(&ui, sign_in).await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    state_change("unlock").await.assert_error(400, 9, "USER-NotLocked");
    let (trail, types) = alices_event_types(&app, &manager).await;
    assert!(types.ends_with(&["user.locked".to_owned(), "user.unlocked".to_owned()]), "{trail}");
}

#[tokio::test]
async fn a_deactivated_user_cannot_sign_in_or_be_locked_until_it_is_activated() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let (ui, manager) = (app.login_ui(), app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]));
    let sign_in = json!({"checks": {"user": {"userId": "alice"}}});
    let state_change = |to| change_alices_state(&app, &manager, to);

    let deactivated = state_change("deactivate").await;
    assert_eq!(
        (deactivated.status, &deactivated.body["details"]["id"]),
        (200, &json!("alice")),
        "{}",
        deactivated.body
    );
    app.create_session(&ui, sign_in.clone()).await.assert_error(400, 9, "SESSION-UserInactive");
    let user = app.get_user(&manager, "alice").await;
    assert_eq!(user.body["user"]["state"], "USER_STATE_INACTIVE");
    assert_eq!(user.body["user"]["authenticators"]["otpSms"].as_array().map(Vec::len), Some(1), "{}", user.body);
    state_change("deactivate").await.assert_error(400, 9, "USER-NotActive");
    state_change("lock").await.assert_error(400, 9, "USER-NotActive");
    state_change("unlock").await.assert_error(400, 9, "USER-NotLocked");

    let activated = state_change("activate").await;
    assert_eq!(activated.status, 200, "{}", activated.body);
    let signed_in = app.create_session(&ui, sign_in).await;
    assert_eq!(signed_in.status, 201, "{}", signed_in.body);
    state_change("activate").await.assert_error(400, 9, "USER-NotInactive");
    let (trail, types) = alices_event_types(&app, &manager).await;
    assert!(types.ends_with(&["user.deactivated".to_owned(), "user.reactivated".to_owned()]), "{trail}");
}

#[tokio::test]
async fn deleting_the_user_ends_its_sessions() {
    let app = TestApp::spawn().await;
    alice(&app).await;
    let (session, token, code) = app.given_challenged_session("alice").await;

    assert_eq!(app.delete_user(&app.admin(), "alice").await.status, 200);

    app.get_session(&app.login_ui(), &session, None).await.assert_error(404, 5, "SESSION-NotFound");
    app.get_session(&app.token("nobody", "org-x", &[]), &session, Some(&token)).await.assert_error(
        403,
        7,
        "SESSION-PermissionDenied",
    );
    app.set_session(&app.login_ui(), &session, check_code(&code)).await.assert_error(404, 5, "SESSION-NotFound");
}

#[tokio::test]
async fn after_a_removal_the_next_check_fails_and_no_new_challenge_is_sent() {
    let app = TestApp::spawn().await;
    let otp = alice(&app).await;
    let ui = app.login_ui();
    let (session, _, code) = app.given_challenged_session("alice").await;

    assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);

    app.set_session(&ui, &session, check_code(&code)).await.assert_error(400, 9, "SESSION-NoOtpSmsChallenge");
    app.set_session(&ui, &session, json!({"challenges": {"otpSms": {"returnCode": true}}})).await.assert_error(
        400,
        9,
        "SESSION-NoOtpSms",
    );
    let pending = app.sql.count("session_challenges").await;
    assert_eq!(pending, 0, "the removal voided the challenge in its own write");
}

/// With `policy.revoke_sessions_on_removal`, a session verified by a removed authenticator
/// no longer shows the factor; without it, the check stands.
#[tokio::test]
async fn revoking_sessions_on_removal_takes_the_factor_away() {
    for revoke in [false, true] {
        let app = TestApp::spawn_with(|settings| settings.policy.revoke_sessions_on_removal = revoke).await;
        let otp = alice(&app).await;
        let ui = app.login_ui();
        let (session, _, code) = app.given_challenged_session("alice").await;
        assert_eq!(app.set_session(&ui, &session, check_code(&code)).await.status, 200);

        assert_eq!(app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.status, 200);

        let shown = app.get_session(&ui, &session, None).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        let factor = &shown.body["session"]["factors"]["otpSms"]["verifiedAt"];
        assert_eq!(factor.is_string(), !revoke, "revoke_sessions_on_removal = {revoke}: {}", shown.body);
    }
}

/// Many sessions wait for codes of the same authenticators; checks start at spread-out
/// moments while the authenticators are removed, and more start once each removal
/// answered. A check that started after its removal answered 200 never succeeds, and
/// every check that succeeded started before.
#[tokio::test]
async fn no_check_succeeds_after_its_removal_answered() {
    const USERS: usize = 6;
    const RACING: usize = 4;
    const LATE: usize = 2;
    let app = Arc::new(TestApp::spawn().await);
    let ui = app.login_ui();
    let mut races = Vec::new();
    for u in 0..USERS {
        let user = format!("racer-{u}");
        app.given_user(&user, "org-a").await;
        let otp = app.given_authenticator(&user, &format!("+4179123450{u}")).await;
        let mut sessions = Vec::new();
        for _ in 0..RACING + LATE {
            sessions.push(app.given_challenged_session(&user).await);
        }
        races.push((user, otp, sessions));
    }

    let check = |app: Arc<TestApp>, ui: String, session: String, code: String, delay: Duration| async move {
        tokio::time::sleep(delay).await;
        let started = Instant::now();
        let answer = app.set_session(&ui, &session, check_code(&code)).await;
        (started, answer)
    };
    let mut users = Vec::new();
    for (u, (user, otp, mut sessions)) in races.into_iter().enumerate() {
        let late = sessions.split_off(RACING);
        let racing: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(s, (session, _, code))| {
                let delay = Duration::from_millis(12 * s as u64 + u as u64);
                tokio::spawn(check(app.clone(), ui.clone(), session, code, delay))
            })
            .collect();
        let (app, ui, check) = (app.clone(), ui.clone(), check);
        users.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 + 3 * u as u64)).await;
            let answer = app.remove_otp_sms(Some(&app.admin()), &user, &otp).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let removed_at = Instant::now();
            let mut outcomes = Vec::new();
            for (session, _, code) in late {
                outcomes.push(check(app.clone(), ui.clone(), session, code, Duration::ZERO).await);
            }
            for racing in racing {
                outcomes.push(racing.await.expect("the check ran"));
            }
            (removed_at, outcomes)
        }));
    }
    let (mut succeeded, mut started_after) = (0, 0);
    for user in users {
        let (removed_at, outcomes) = user.await.expect("the race ran");
        for (started, answer) in outcomes {
            if started > removed_at {
                started_after += 1;
                answer.assert_error(400, 9, "SESSION-NoOtpSmsChallenge");
            } else if answer.status == 200 {
                succeeded += 1;
            } else {
                answer.assert_error(400, 9, "SESSION-NoOtpSmsChallenge");
            }
        }
    }
    assert!(started_after >= USERS * LATE, "{succeeded} checks won their race, {started_after} came after");
    let pending = app.sql.count("session_challenges").await;
    assert_eq!(pending, 0, "every challenge is used up or void");
}

/// Guesses sent all at once are compared no more often than one after another: of a burst
/// of wrong guesses at one challenge with the right code sent in the midst of them, at
/// most five are compared (answer "wrong", or succeed for the right code); the others
/// find no try left.
#[tokio::test]
async fn concurrent_guesses_get_no_more_tries_than_sequential_ones() {
    const WRONG: u32 = 40;
    // Each challenge's own five tries, apart from the user's budget (tested below).
    let app = Arc::new(TestApp::spawn_with(|settings| settings.codes.max_failures_per_user = 1_000).await);
    alice(&app).await;
    for round in 0..6 {
        let (session, _, code) = app.given_challenged_session("alice").await;
        let answers = factors_e2e::guess_burst(&code, WRONG, |guess| {
            let (app, ui, session) = (app.clone(), app.login_ui(), session.clone());
            async move { app.set_session(&ui, &session, check_code(&guess)).await }
        })
        .await;

        let compared = answers.iter().filter(|a| a.status == 200 || a.error_id() == "SESSION-CodeWrong").count();
        assert!(compared <= 5, "round {round}: {compared} guesses were compared");
        for answer in answers.iter().filter(|a| a.status != 200) {
            let expected =
                ["SESSION-CodeWrong", "SESSION-CodeExhausted", "SESSION-Contended", "SESSION-NoOtpSmsChallenge"];
            assert!(expected.contains(&answer.error_id()), "{}", answer.body);
        }
    }
}

/// Each challenge brings five tries of its own, but the user's failed checks across all its
/// challenges and registrations are budgeted (ten in fifteen minutes by default, in the
/// store): past it every check, the right code too, answers 429 until the window passes.
#[tokio::test]
async fn failed_checks_across_sessions_and_registrations_lock_the_users_code_checks_for_a_while() {
    use factors_api_grpc::pb::zitadel::session::v2 as pb;
    use factors_api_grpc::pb::zitadel::session::v2::session_service_client::SessionServiceClient;
    use factors_e2e::grpc::{assert_status, authorized, channel};

    let app = TestApp::spawn().await;
    alice(&app).await;
    let ui = app.login_ui();
    let wrong = |code: &str| if code == "000000" { "111111".to_owned() } else { "000000".to_owned() };

    // Four wrong codes on a registration, then six on two sign-in challenges: ten.
    let (pending, registration_code) = app.given_pending_authenticator("alice", "+41791234568").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    for _ in 0..4 {
        let answer = app.verify_otp_sms(&admin, "alice", &pending, &wrong(&registration_code)).await;
        answer.assert_error(400, 3, "OTPSMS-CodeWrong");
    }
    let mut last = (String::new(), String::new());
    for _ in 0..2 {
        let (session, _, code) = app.given_challenged_session("alice").await;
        for _ in 0..3 {
            app.set_session(&ui, &session, check_code(&wrong(&code))).await.assert_error(400, 3, "SESSION-CodeWrong");
        }
        last = (session, code);
    }

    // The eleventh check is refused uncompared, even with the right code, on every path.
    let (session, code) = last;
    let locked = app.set_session(&ui, &session, check_code(&code)).await;
    locked.assert_error(429, 8, "USER-CodeChecksLocked");
    let retry_after: u64 = locked.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((800..=900).contains(&retry_after), "the rest of the 15-minute window: {retry_after}");
    let (fresh, _, fresh_code) = app.given_challenged_session("alice").await;
    app.set_session(&ui, &fresh, check_code(&fresh_code)).await.assert_error(429, 8, "USER-CodeChecksLocked");
    let verify = app.verify_otp_sms(&admin, "alice", &pending, &registration_code).await;
    verify.assert_error(429, 8, "USER-CodeChecksLocked");
    let mut grpc = SessionServiceClient::new(channel(&app).await);
    let request = pb::SetSessionRequest {
        session_id: fresh.clone(),
        checks: Some(pb::Checks { otp_sms: Some(pb::CheckOtp { code: fresh_code.clone() }), ..Default::default() }),
        ..Default::default()
    };
    assert_status(
        grpc.set_session(authorized(request, &ui)).await,
        tonic::Code::ResourceExhausted,
        "USER-CodeChecksLocked",
    );
    let read = app.get_session(&ui, &fresh, None).await;
    assert!(read.body["session"]["factors"]["otpSms"].is_null(), "no factor was checked: {}", read.body);

    // Operators see it; other users are not affected.
    let metrics = reqwest::get(format!("{}/metrics", app.address)).await.expect("answers").text().await.expect("text");
    assert!(metrics.contains(r#"factors_code_checks_locked_total{purpose="sign_in"} 3"#), "{metrics}");
    assert!(metrics.contains(r#"factors_code_checks_locked_total{purpose="registration"} 1"#), "{metrics}");
    app.given_user("bob", "org-a").await;
    app.given_authenticator("bob", "+41791234570").await;
    let (bobs, _, bobs_code) = app.given_challenged_session("bob").await;
    assert_eq!(app.set_session(&ui, &bobs, check_code(&bobs_code)).await.status, 200);
}

/// Right codes are no failures: a user who signs in again and again is never locked.
#[tokio::test]
async fn right_codes_do_not_use_up_the_budget_and_it_resets_once_its_window_passes() {
    let app = TestApp::spawn_with(|settings| {
        settings.codes.max_failures_per_user = 3;
        settings.codes.failure_window = Duration::from_secs(3);
    })
    .await;
    alice(&app).await;
    let ui = app.login_ui();
    for round in 0..5 {
        let (session, _, code) = app.given_challenged_session("alice").await;
        assert_eq!(app.set_session(&ui, &session, check_code(&code)).await.status, 200, "sign-in {round}");
    }

    let (session, _, code) = app.given_challenged_session("alice").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let started = Instant::now();
    for _ in 0..3 {
        app.set_session(&ui, &session, check_code(wrong)).await.assert_error(400, 3, "SESSION-CodeWrong");
    }
    let locked = app.set_session(&ui, &session, check_code(&code)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "the failures fell in one window");
    locked.assert_error(429, 8, "USER-CodeChecksLocked");

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(200)).await;
    assert_eq!(app.set_session(&ui, &session, check_code(&code)).await.status, 200, "the window has passed");
}

/// The budget holds under concurrency too: a burst of wrong guesses spread over three
/// challenges, with the right codes in the midst of them, gets at most ten comparisons.
#[tokio::test]
async fn a_burst_over_several_challenges_gets_no_more_comparisons_than_the_budget() {
    const WRONG: u32 = 12;
    let app = Arc::new(TestApp::spawn().await);
    alice(&app).await;
    let mut bursts = Vec::new();
    for _ in 0..3 {
        let (session, _, code) = app.given_challenged_session("alice").await;
        let app = app.clone();
        bursts.push(async move {
            factors_e2e::guess_burst(&code, WRONG, |guess| {
                let (app, ui, session) = (app.clone(), app.login_ui(), session.clone());
                async move { app.set_session(&ui, &session, check_code(&guess)).await }
            })
            .await
        });
    }
    let answers: Vec<Answer> = futures::future::join_all(bursts).await.into_iter().flatten().collect();

    let compared = answers.iter().filter(|a| a.status == 200 || a.error_id() == "SESSION-CodeWrong").count();
    let wrong = answers.iter().filter(|a| a.error_id() == "SESSION-CodeWrong").count();
    assert!(wrong <= 10, "{wrong} wrong guesses were compared");
    assert!(compared <= 13, "at most the budget, and each challenge's right code once: {compared}");
    for answer in answers.iter().filter(|a| a.status != 200) {
        let expected = [
            "SESSION-CodeWrong",
            "SESSION-CodeExhausted",
            "SESSION-Contended",
            "SESSION-NoOtpSmsChallenge",
            "USER-CodeChecksLocked",
        ];
        assert!(expected.contains(&answer.error_id()), "{}", answer.body);
    }
}
