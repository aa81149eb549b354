//! Bad input never reaches a 5xx: every string and duration the API takes, with NUL and
//! other control characters, far-off times and anything else a generator makes, answers
//! either as the contract says for good input or with a 4xx in the contract's body, and a
//! refused request changes nothing. One property test per input type; each suite runs on
//! both stores, so what one database would take and the other refuse shows here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use factors_api_grpc::pb::zitadel::session::v2 as pb;
use factors_api_grpc::pb::zitadel::session::v2::session_service_client::SessionServiceClient;
use factors_e2e::Answer;
use factors_e2e::grpc::{assert_status, authorized, channel};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{Value, json};
use tonic::Code;

use super::TestApp;

/// How many generated values each property is tried with, besides the hand-picked ones.
const CASES: usize = 24;

/// Strings as a hostile client would send them: any characters, with NUL, other control
/// characters and separators far more often than chance would bring them.
fn hostile_text() -> impl Strategy<Value = String> {
    let tricky = prop_oneof![
        Just('\0'),
        Just('\u{1}'),
        Just('\t'),
        Just('\n'),
        Just('\u{7f}'),
        Just('\u{85}'),
        Just('\u{2028}'),
        Just('/'),
        Just('%'),
        Just('"'),
        Just('\\'),
    ];
    let character = prop_oneof![4 => proptest::char::range('a', 'z'), 2 => tricky, 1 => any::<char>()];
    proptest::collection::vec(character, 0..24).prop_map(String::from_iter)
}

/// Strings a client would send, then `CASES` generated ones; the same on every run, so a
/// failure can be reproduced.
fn samples(strategy: impl Strategy<Value = String>, picked: &[&str]) -> Vec<String> {
    let mut runner = TestRunner::deterministic();
    let generated = (0..CASES).map(|_| strategy.new_tree(&mut runner).expect("a value").current());
    picked.iter().map(|s| (*s).to_owned()).chain(generated).collect()
}

/// Durations in protobuf JSON: whole and fractional seconds of every size a
/// `google.protobuf.Duration` holds, and beyond.
fn durations() -> Vec<String> {
    let seconds = prop_oneof![0i64..1_000, 0i64..315_576_000_000, Just(315_576_000_000i64), Just(315_576_000_001i64)];
    let strategy =
        (any::<bool>(), seconds, proptest::option::of(0u32..1_000_000_000)).prop_map(|(negative, seconds, nanos)| {
            let sign = if negative { "-" } else { "" };
            match nanos {
                Some(nanos) => format!("{sign}{seconds}.{nanos:09}s"),
                None => format!("{sign}{seconds}s"),
            }
        });
    samples(strategy, &["0s", "1s", "315576000000s", "315537897599s", "9223372036854775807s", "-1s", "1e9s", "s", ""])
}

/// A path segment with everything but unreserved characters percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The answer is the contract's: `ok` for a success, else a 4xx with its error body and an
/// id from `ids`. Never a 5xx.
#[track_caller]
fn assert_answered(answer: &Answer, ok: u16, ids: &[&str], input: &str) {
    assert!(answer.status < 500, "{input:?}: a {} answer: {}", answer.status, answer.body);
    if answer.status != ok {
        assert!(ids.contains(&answer.error_id()), "{input:?}: {} {}", answer.status, answer.body);
        answer.assert_error(answer.status, answer.body["code"].as_i64().unwrap_or(-1), answer.error_id());
    }
}

#[tokio::test]
async fn a_nul_or_control_character_in_a_session_metadata_key_answers_400_on_every_protocol() {
    let app = TestApp::spawn().await;
    let ui = app.login_ui();
    let mut grpc = SessionServiceClient::new(channel(&app).await);
    for key in ["a\u{0}b", "\u{0}", "line\nbreak", "bell\u{7}", "del\u{7f}"] {
        let body = json!({"metadata": {key: STANDARD.encode("v")}});
        app.create_session(&ui, body.clone()).await.assert_error(400, 3, "SESSION-MetadataInvalid");
        let created = app.create_session(&ui, json!({})).await;
        let session = created.body["sessionId"].as_str().expect("a session").to_owned();
        app.set_session(&ui, &session, body.clone()).await.assert_error(400, 3, "SESSION-MetadataInvalid");

        let request =
            pb::CreateSessionRequest { metadata: [(key.to_owned(), b"v".to_vec())].into(), ..Default::default() };
        assert_status(
            grpc.create_session(authorized(request, &ui)).await,
            Code::InvalidArgument,
            "SESSION-MetadataInvalid",
        );
        let connect =
            app.send(Method::POST, "/zitadel.session.v2.SessionService/CreateSession", Some(&ui), Some(body)).await;
        assert_eq!((connect.status, &connect.body["code"]), (400, &json!("invalid_argument")), "{}", connect.body);
        let read = app.get_session(&ui, &session, None).await;
        assert_eq!(read.body["session"]["metadata"], Value::Null, "nothing was written: {}", read.body);
    }
}

#[tokio::test]
async fn a_lifetime_ending_after_the_year_9999_answers_400_on_every_protocol() {
    let app = TestApp::spawn().await;
    let ui = app.login_ui();
    let mut grpc = SessionServiceClient::new(channel(&app).await);
    let ten_thousand_years = "315576000000s";

    app.create_session(&ui, json!({"lifetime": ten_thousand_years})).await.assert_error(
        400,
        3,
        "SESSION-LifetimeInvalid",
    );
    let created = app.create_session(&ui, json!({"lifetime": "3600s"})).await;
    let session = created.body["sessionId"].as_str().expect("a session").to_owned();
    let patch = json!({"lifetime": ten_thousand_years});
    app.set_session(&ui, &session, patch.clone()).await.assert_error(400, 3, "SESSION-LifetimeInvalid");
    let request = pb::SetSessionRequest {
        session_id: session.clone(),
        lifetime: Some(prost_types::Duration { seconds: 315_576_000_000, nanos: 0 }),
        ..Default::default()
    };
    assert_status(grpc.set_session(authorized(request, &ui)).await, Code::InvalidArgument, "SESSION-LifetimeInvalid");
    let mut connect_body = patch;
    connect_body["sessionId"] = json!(session);
    let connect =
        app.send(Method::POST, "/zitadel.session.v2.SessionService/SetSession", Some(&ui), Some(connect_body)).await;
    assert_eq!((connect.status, &connect.body["code"]), (400, &json!("invalid_argument")), "{}", connect.body);

    // The session keeps its hour, and reads back on every protocol.
    let read = app.get_session(&ui, &session, None).await;
    let expiry = read.body["session"]["expirationDate"].as_str().expect("an expiry").to_owned();
    let expiry = chrono::DateTime::parse_from_rfc3339(&expiry).expect("RFC 3339");
    assert!(expiry < chrono::Utc::now() + chrono::TimeDelta::hours(2), "{expiry}");
    let get = json!({"sessionId": session});
    let connect = app.send(Method::POST, "/zitadel.session.v2.SessionService/GetSession", Some(&ui), Some(get)).await;
    assert_eq!(connect.status, 200, "{}", connect.body);
}

#[tokio::test]
async fn property_session_metadata_keys_are_stored_as_given_or_refused() {
    let app = TestApp::spawn().await;
    let ui = app.login_ui();
    for key in samples(hostile_text(), &["", "device", "a\u{0}", &"k".repeat(201)]) {
        let created = app.create_session(&ui, json!({"metadata": {&key: STANDARD.encode([0u8, 1, 255])}})).await;
        assert_answered(&created, 201, &["SESSION-MetadataInvalid"], &key);
        if created.status == 201 {
            let session = created.body["sessionId"].as_str().expect("id");
            let read = app.get_session(&ui, session, None).await;
            assert_eq!(read.body["session"]["metadata"][&key], json!(STANDARD.encode([0u8, 1, 255])), "{key:?}");
        }
    }
    let (metadata, created) = (app.sql.count("sessions").await, app.events("session.metadata.set").await.len());
    assert_eq!(metadata as usize, created, "every stored session set its metadata; refusals stored none");
}

#[tokio::test]
async fn property_session_lifetimes_end_at_a_time_every_protocol_can_write_or_are_refused() {
    let app = TestApp::spawn().await;
    let ui = app.login_ui();
    let mut grpc = SessionServiceClient::new(channel(&app).await);
    for lifetime in durations() {
        let created = app.create_session(&ui, json!({"lifetime": &lifetime})).await;
        assert_answered(&created, 201, &["SESSION-LifetimeInvalid", "REQ-JsonShape"], &lifetime);
        if created.status != 201 {
            continue;
        }
        let session = created.body["sessionId"].as_str().expect("id").to_owned();
        let read = app.get_session(&ui, &session, None).await;
        let expiry = read.body["session"]["expirationDate"].as_str().expect("an expiry");
        assert!(chrono::DateTime::parse_from_rfc3339(expiry).is_ok(), "{lifetime}: {expiry}");
        let over_grpc =
            grpc.get_session(authorized(pb::GetSessionRequest { session_id: session, session_token: None }, &ui)).await;
        assert!(over_grpc.is_ok(), "{lifetime}: {over_grpc:?}");
    }
}

#[tokio::test]
async fn property_user_ids_and_schema_ids_are_kept_as_given_or_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    for id in samples(hostile_text(), &["", ".", "_verify", "a\u{0}b", "tab\t", "ok-id"]) {
        let body = json!({"schemaId": &id, "userId": &id});
        let created = app.create_user(&admin, "org-a", body).await;
        assert_answered(&created, 201, &["USER-InvalidId", "SCHEMA-InvalidId"], &id);
        if created.status == 201 {
            let read = app.get_user(&admin, &segment(&id)).await;
            assert_eq!((read.status, &read.body["user"]["schema"]["id"]), (200, &json!(id)), "{id:?}");
        }
    }
    let stored = app.sql.count("users").await;
    assert_eq!(stored as usize, app.events("user.human.added").await.len(), "refusals stored nothing");
}

#[tokio::test]
async fn property_user_data_strings_are_kept_as_given_or_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    for (n, text) in samples(hostile_text(), &["\u{0}", "a\u{0}b", "\u{1f}", "\u{ffff}"]).into_iter().enumerate() {
        let id = format!("u{n}");
        let data = json!({"name": &text, &text: [&text, {"nested": &text}]});
        let created =
            app.create_user(&admin, "org-a", json!({"schemaId": "human", "userId": &id, "data": &data})).await;
        assert_answered(&created, 201, &["USER-DataNulCharacter"], &text);
        if created.status == 201 {
            assert_eq!(app.get_user(&admin, &id).await.body["user"]["data"], data, "{text:?}");
        } else {
            assert_eq!(app.get_user(&admin, &id).await.status, 404, "{text:?}: nothing stored");
        }
    }
}

#[tokio::test]
async fn property_contact_emails_are_kept_as_given_or_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    let picked = ["a@b", "a\u{0}@b", "a@b\u{0}", "\u{0}", "a b@c", &format!("{}@b", "a".repeat(260))];
    let local = hostile_text().prop_map(|s| format!("{s}@example.com"));
    for (n, address) in samples(local, &picked).into_iter().enumerate() {
        let id = format!("u{n}");
        let body = json!({"schemaId": "human", "userId": &id, "contact": {"email": {"address": &address}}});
        let created = app.create_user(&admin, "org-a", body).await;
        assert_answered(&created, 201, &["EMAIL-Malformed", "EMAIL-TooLong"], &address);
        let read = app.get_user(&admin, &id).await;
        if created.status == 201 {
            assert_eq!(read.body["user"]["contact"]["email"]["address"], json!(address.trim()), "{address:?}");
        } else {
            assert_eq!(read.status, 404, "{address:?}: nothing stored");
        }
    }
}

#[tokio::test]
async fn property_phone_numbers_are_stored_in_e164_or_refused() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let admin = app.admin();
    let digits = hostile_text().prop_map(|s| format!("+41 79 {s} 45 67"));
    let picked = ["+41791234567\u{0}", "+41 79\u{0}123 45 67", "\u{0}", "+", "+1 (415) 555-0100"];
    for number in samples(digits, &picked) {
        let added = app.add_otp_sms(&admin, "alice", json!({"number": &number, "isVerified": true})).await;
        let ids = ["PHONE-Empty", "PHONE-TooLong", "PHONE-NotInternational", "PHONE-NotValid", "OTPSMS-AlreadyExists"];
        assert_answered(&added, 200, &ids, &number);
    }
    let read = app.get_user(&admin, "alice").await;
    for stored in read.body["user"]["authenticators"]["otpSms"].as_array().expect("a list") {
        let phone = stored["phone"].as_str().expect("a number");
        assert!(phone.starts_with('+') && phone[1..].bytes().all(|b| b.is_ascii_digit()), "E.164: {phone}");
    }
}

#[tokio::test]
async fn property_ids_in_paths_are_found_or_refused() {
    let app = TestApp::spawn().await;
    let (admin, ui) = (app.admin(), app.login_ui());
    for id in samples(hostile_text(), &["\u{0}", "a\u{0}", " ", "..", "%00"]) {
        let path = segment(&id);
        let answers = [
            (app.get_user(&admin, &path).await, 200),
            (app.remove_otp_sms(Some(&admin), "nobody", &path).await, 200),
            (app.send(Method::GET, &format!("/v2/sessions/{path}"), Some(&ui), None).await, 200),
            (
                app.send(
                    Method::GET,
                    &format!("/resources/v3alpha/organizations/{path}/policies/login"),
                    Some(&admin),
                    None,
                )
                .await,
                200,
            ),
        ];
        for (answer, ok) in answers {
            let ids = [
                "USER-InvalidId",
                "USER-NotFound",
                "OTPSMS-InvalidId",
                "SESSION-InvalidId",
                "SESSION-NotFound",
                "ORG-InvalidId",
                "REQ-UnknownPath",
                "REQ-InvalidPath",
            ];
            assert_answered(&answer, ok, &ids, &id);
        }
    }
}

#[tokio::test]
async fn property_selectors_session_tokens_and_login_names_are_matched_or_refused() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let (admin, ui) = (app.admin(), app.login_ui());
    let created = app.create_session(&ui, json!({})).await;
    let session = created.body["sessionId"].as_str().expect("a session").to_owned();
    for text in samples(hostile_text(), &["\u{0}", "localhost\u{0}", "org-a\u{0}"]) {
        for selector in ["organization.orgId", "organization.orgDomain", "instance.id", "instance.domain"] {
            let query = url_query(&[(selector, &text)]);
            let read = app.get_user(&admin, &format!("alice?{query}")).await;
            let ids = [
                "ORG-InvalidId",
                "ORG-NotFound",
                "INSTANCE-InvalidId",
                "INSTANCE-NotFound",
                "USER-NotFound",
                "REQ-InvalidQuery",
            ];
            assert_answered(&read, 200, &ids, &text);
        }
        let query = url_query(&[("sessionToken", &text)]);
        let nobody = app.token("nobody", "org-x", &[]);
        let read = app.send(Method::GET, &format!("/v2/sessions/{session}?{query}"), Some(&nobody), None).await;
        assert_answered(&read, 200, &["SESSION-PermissionDenied", "REQ-InvalidQuery"], &text);
        let login_name = app.create_session(&ui, json!({"checks": {"user": {"loginName": &text}}})).await;
        assert_answered(&login_name, 201, &["SESSION-LoginNameUnsupported"], &text);
    }
}

#[tokio::test]
async fn property_policy_ages_are_whole_seconds_in_range_or_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    for age in durations() {
        let set = app
            .send(
                Method::PUT,
                "/resources/v3alpha/organizations/org-a/policies/login",
                Some(&admin),
                Some(json!({"selfRemovalStepUpMaxAge": &age})),
            )
            .await;
        assert_answered(&set, 200, &["POLICY-InvalidStepUpAge"], &age);
        if set.status == 200 {
            assert_eq!(set.body["policy"]["selfRemovalStepUpMaxAge"], json!(age), "{age}");
        }
    }
}

#[tokio::test]
async fn property_typed_codes_cursors_and_page_sizes_are_checked_or_refused() {
    let app = TestApp::spawn_with(|settings| settings.codes.max_failures_per_user = 1_000).await;
    app.given_user("alice", "org-a").await;
    app.given_authenticator("alice", "+41791234567").await;
    let (admin, ui) = (app.admin(), app.login_ui());
    let (session, _, _) = app.given_challenged_session("alice").await;
    for text in samples(hostile_text(), &["\u{0}", "12345\u{0}", " 123456 ", "１２３４５６"]) {
        let check = app.set_session(&ui, &session, json!({"checks": {"otpSms": {"code": &text}}})).await;
        let ids = ["SESSION-CodeInvalid", "SESSION-CodeWrong", "SESSION-CodeExhausted", "SESSION-NoOtpSmsChallenge"];
        assert_answered(&check, 200, &ids, &text);
        let query: String = url_query(&[("cursor", &text), ("pageSize", &text)]);
        let page =
            app.send(Method::GET, &format!("/resources/v3alpha/users/alice/_events?{query}"), Some(&admin), None).await;
        assert_answered(&page, 200, &["EVENTS-InvalidCursor", "EVENTS-InvalidPageSize", "REQ-InvalidQuery"], &text);
    }
}

/// A query string of `pairs`, each value percent-encoded.
fn url_query(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(name, value)| format!("{name}={}", segment(value))).collect::<Vec<_>>().join("&")
}
