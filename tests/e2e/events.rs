//! ListUserEvents (`GET /resources/v3alpha/users/{id}/_events`, factors' own): a user's
//! audit trail, paged, in order, masked, and only for callers with `user.read`.

use factors_api_grpc::pb::factors::user::v1 as pb;
use factors_api_grpc::pb::factors::user::v1::user_events_client::UserEventsClient;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha as users_pb;
use factors_api_grpc::pb::zitadel::resources::user::v3alpha::zitadel_users_client::ZitadelUsersClient;
use factors_e2e::Answer;
use factors_e2e::grpc::{authorized, channel};
use serde_json::{Value, json};

use super::TestApp;

async fn events(app: &TestApp, token: &str, user: &str, query: &str) -> Answer {
    let path = format!("/resources/v3alpha/users/{user}/_events{query}");
    app.send(reqwest::Method::GET, &path, Some(token), None).await
}

/// Alice of org-a, with a contact phone, and five events by three actors:
/// 1 added (iam-admin), 2 an authenticator added and 3 verified (admin-a), 4 another added
/// (iam-admin), 5 the first removed (alice herself).
async fn alice_with_a_history(app: &TestApp) -> String {
    let contact = json!({"phone": {"number": "+41 79 123 45 67", "isVerified": true}});
    let created = app
        .create_user(&app.admin(), "org-a", json!({"schemaId": "human", "userId": "alice", "contact": contact}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let manager = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let (first, code) = app.given_pending_authenticator("alice", "+41791234568").await;
    assert_eq!(app.verify_otp_sms(&manager, "alice", &first, &code).await.status, 200);
    app.given_authenticator("alice", "+41791234569").await;
    let removed = app.remove_otp_sms(Some(&app.token("alice", "org-a", &[])), "alice", &first).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    first
}

#[tokio::test]
async fn a_reader_pages_through_the_trail_in_order_with_actors_and_masked_phones() {
    let app = TestApp::spawn().await;
    let first = alice_with_a_history(&app).await;
    let reader = app.token("reader-a", "org-a", &["ORG_USER_READER"]);

    let mut pages = Vec::new();
    let mut query = "?pageSize=2".to_owned();
    loop {
        let page = events(&app, &reader, "alice", &query).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let next = page.body["nextCursor"].as_str().map(str::to_owned);
        pages.push(page.body);
        match next {
            Some(cursor) => query = format!("?pageSize=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages.len() < 10, "the pages end");
    }

    let sizes: Vec<usize> = pages.iter().map(|p| p["events"].as_array().expect("events").len()).collect();
    assert_eq!(sizes, [2, 2, 1], "three pages of at most two");
    assert!(pages[2].get("nextCursor").is_none(), "no cursor after the last event");
    let all: Vec<&Value> = pages.iter().flat_map(|p| p["events"].as_array().expect("events")).collect();
    let listed: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|e| {
            (
                e["sequence"].as_str().expect("a string"),
                e["type"].as_str().expect("type"),
                e["actor"].as_str().expect("actor"),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("1", "user.human.added", "iam-admin"),
            ("2", "user.human.mfa.otp.sms.added", "admin-a"),
            ("3", "user.human.mfa.otp.sms.verified", "admin-a"),
            ("4", "user.human.mfa.otp.sms.added", "iam-admin"),
            ("5", "user.human.mfa.otp.sms.removed", "alice"),
        ]
    );
    for event in &all {
        assert_eq!(event["creationDate"], event["payload"]["at"], "one time: {event}");
        assert_eq!(event["payload"]["userId"], "alice", "{event}");
    }
    assert_eq!(all[4]["payload"]["otpSmsId"], first.as_str());
    assert_eq!(all[4]["payload"]["phone"], "+41******568", "masked");
    let shown = serde_json::to_string(&pages).expect("JSON");
    for number in ["791234567", "791234568", "791234569"] {
        assert!(!shown.contains(number), "the full number {number} shows: {shown}");
    }

    // The same trail in one page, and the instance-wide owner reads it too.
    let whole = events(&app, &app.admin(), "alice", "").await;
    assert_eq!(whole.body["events"].as_array().map(Vec::len), Some(5), "{}", whole.body);
    assert!(whole.body.get("nextCursor").is_none());
}

#[tokio::test]
async fn who_may_read_the_trail_follows_the_contract() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let cases = [
        (app.token("reader-a", "org-a", &["ORG_USER_READER"]), "alice", 200, ""),
        (app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]), "alice", 200, ""),
        (app.admin(), "alice", 200, ""),
        (app.token("alice", "org-a", &["ORG_USER_READER"]), "alice", 200, ""),
        (app.token("alice", "org-a", &[]), "alice", 403, "AUTHZ-PermissionDenied"),
        (app.token("bob", "org-a", &[]), "alice", 403, "AUTHZ-PermissionDenied"),
        (app.token("bob", "org-a", &[]), "ghost", 403, "AUTHZ-PermissionDenied"),
        (app.token("admin-b", "org-b", &["ORG_USER_MANAGER"]), "alice", 404, "USER-NotFound"),
        (app.token("reader-a", "org-a", &["ORG_USER_READER"]), "ghost", 404, "USER-NotFound"),
    ];
    for (token, user, status, id) in cases {
        let answer = events(&app, &token, user, "").await;
        if status == 200 {
            assert_eq!((answer.status, answer.body["events"][0]["type"].as_str()), (200, Some("user.human.added")));
        } else {
            answer.assert_error(status, if status == 404 { 5 } else { 7 }, id);
        }
    }
    let reader = app.token("reader-a", "org-a", &["ORG_USER_READER"]);
    events(&app, &reader, "alice", "?organization.orgId=org-b").await.assert_error(404, 5, "USER-NotFound");
    events(&app, &reader, "alice", "?instance.id=another").await.assert_error(404, 5, "INSTANCE-NotFound");
    assert_eq!(events(&app, &reader, "alice", "?organization.orgId=org-a").await.status, 200);
}

#[tokio::test]
async fn bad_paging_answers_400_with_its_own_id() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let reader = app.token("reader-a", "org-a", &["ORG_USER_READER"]);

    events(&app, &reader, "alice", "?cursor=garbage").await.assert_error(400, 3, "EVENTS-InvalidCursor");
    events(&app, &reader, "alice", "?pageSize=1001").await.assert_error(400, 3, "EVENTS-InvalidPageSize");
    assert_eq!(events(&app, &reader, "alice", "?pageSize=1000").await.status, 200);
}

#[tokio::test]
async fn a_deleted_user_has_no_trail_and_a_new_user_of_its_id_starts_afresh() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.given_authenticator("alice", "+41791234567").await;
    assert_eq!(app.delete_user(&app.admin(), "alice").await.status, 200);

    events(&app, &app.admin(), "alice", "").await.assert_error(404, 5, "USER-NotFound");

    app.given_user("alice", "org-b").await;
    let reader_b = app.token("reader-b", "org-b", &["ORG_USER_READER"]);
    let trail = events(&app, &reader_b, "alice", "").await;
    assert_eq!(trail.status, 200, "{}", trail.body);
    let listed = trail.body["events"].as_array().expect("events");
    assert_eq!(listed.len(), 1, "only the new life's event: {}", trail.body);
    assert_eq!(
        (trail.body["events"][0]["sequence"].as_str(), trail.body["events"][0]["type"].as_str()),
        (Some("4"), Some("user.human.added"))
    );
}

#[tokio::test]
async fn the_trail_is_served_over_grpc_too() {
    let app = TestApp::spawn().await;
    alice_with_a_history(&app).await;
    let channel = channel(&app).await;
    let token = app.token("reader-a", "org-a", &["ORG_USER_READER"]);
    let request = authorized(
        pb::ListUserEventsRequest { id: "alice".into(), page_size: 3, ..pb::ListUserEventsRequest::default() },
        &token,
    );

    let page = UserEventsClient::new(channel).list_user_events(request).await.expect("a page").into_inner();

    let sequences: Vec<u64> = page.events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3]);
    assert!(!page.next_cursor.is_empty(), "more follow");
    assert_eq!(page.events[2].r#type, "user.human.mfa.otp.sms.verified");
}

// ----- the instance's feed (`GET /resources/v3alpha/_events`) -----------------------------

async fn feed(app: &TestApp, token: &str, query: &str) -> Answer {
    app.send(reqwest::Method::GET, &format!("/resources/v3alpha/_events{query}"), Some(token), None).await
}

/// A feed page once it holds `count` events. On PostgreSQL an event shows once every
/// transaction that began before it has ended, on the whole server, and other tests keep
/// the server busy: a page read at once may not hold it yet.
pub(super) async fn feed_holding(app: &TestApp, token: &str, query: &str, count: usize) -> Answer {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = feed(app, token, query).await;
        let held = page.body["events"].as_array().map_or(0, Vec::len);
        if page.status != 200 || held >= count || std::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// (stream, id, sequence, type) of each event of a feed page.
pub(super) fn fed(page: &Value) -> Vec<(String, String, u64, String)> {
    let text = |e: &Value, key: &str| e[key].as_str().unwrap_or_else(|| panic!("{key} in {e}")).to_owned();
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            let sequence = text(e, "sequence").parse().expect("a number");
            (text(e, "aggregateType"), text(e, "aggregateId"), sequence, text(e, "type"))
        })
        .collect()
}

#[tokio::test]
async fn a_siem_paging_the_feed_while_removals_land_sees_every_event_once_in_order_masked() {
    const USERS: usize = 12;
    let app = TestApp::spawn().await;
    let mut authenticators = Vec::new();
    for n in 0..USERS {
        let user = format!("fed-{n}");
        app.given_user(&user, "org-a").await;
        authenticators.push((user.clone(), app.given_authenticator(&user, &format!("+417912{n:05}")).await));
    }
    let siem = app.admin();

    // Removals from four clients; meanwhile the SIEM reads pages of five, keeping the cursor.
    let removals = |lane: usize| {
        let app = &app;
        let mine: Vec<(String, String)> = authenticators.iter().skip(lane).step_by(4).cloned().collect();
        async move {
            for (user, otp) in mine {
                let removed = app.remove_otp_sms(Some(&app.admin()), &user, &otp).await;
                assert_eq!(removed.status, 200, "{}", removed.body);
            }
        }
    };
    let consumer = async {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut payloads = Vec::new();
        // Every user's three events: created, added, removed.
        while seen.len() < USERS * 3 {
            let page = feed(&app, &siem, &format!("?pageSize=5&cursor={cursor}")).await;
            assert_eq!(page.status, 200, "{}", page.body);
            let next = page.body["nextCursor"].as_str().expect("always a cursor").to_owned();
            // On PostgreSQL even the first page may be empty: events wait for transactions
            // open anywhere on the server. Asked without a cursor, it hands back the
            // beginning's.
            if fed(&page.body).is_empty() {
                assert!(cursor.is_empty() || next == cursor, "an empty page hands back the cursor asked with");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            payloads.extend(page.body["events"].as_array().expect("events").iter().map(|e| e["payload"].to_string()));
            seen.extend(fed(&page.body));
            cursor = next;
        }
        (seen, cursor, payloads)
    };
    let ((seen, cursor, payloads), (), (), (), ()) =
        tokio::join!(consumer, removals(0), removals(1), removals(2), removals(3));

    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "each event once: {seen:?}");
    for (user, _) in &authenticators {
        let of_user: Vec<(u64, &str)> =
            seen.iter().filter(|(_, id, _, _)| id == user).map(|(_, _, n, kind)| (*n, kind.as_str())).collect();
        assert_eq!(
            of_user,
            [(1, "user.human.added"), (2, "user.human.mfa.otp.sms.added"), (3, "user.human.mfa.otp.sms.removed")],
            "{user}'s events, in order"
        );
    }
    let after = feed(&app, &siem, &format!("?cursor={cursor}")).await;
    assert_eq!(fed(&after.body), [], "nothing was left behind the cursor");
    assert!(payloads.iter().any(|p| p.contains("+41*")), "numbers appear masked");
    // Whole numbers, not a run of their digits: the flake ids in the payloads are digits
    // too, and some hours' ids hold any given six of them.
    for n in 0..USERS {
        let whole = format!("417912{n:05}");
        assert!(!payloads.iter().any(|p| p.contains(&whole)), "and never whole: {payloads:?}");
    }
}

#[tokio::test]
async fn the_feed_needs_events_read_instance_wide_and_refuses_bad_paging() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    for roles in [&["ORG_USER_READER"][..], &["ORG_OWNER"], &["IAM_LOGIN_CLIENT"], &[]] {
        let refused = feed(&app, &app.token("someone", "org-a", roles), "").await;
        refused.assert_error(403, 7, "AUTHZ-PermissionDenied");
    }
    let first = feed_holding(&app, &app.admin(), "?pageSize=1", 1).await;
    assert_eq!(fed(&first.body), [("user".into(), "alice".into(), 1, "user.human.added".into())]);
    // A user trail's cursor (after its first event) is not the feed's.
    for query in ["?cursor=not-a-cursor", "?cursor=AQAAAAAAAAAB"] {
        feed(&app, &app.admin(), query).await.assert_error(400, 3, "EVENTS-InvalidCursor");
    }
    feed(&app, &app.admin(), "?pageSize=1001").await.assert_error(400, 3, "EVENTS-InvalidPageSize");
}

#[tokio::test]
async fn the_feed_is_served_over_grpc_too() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    app.given_authenticator("alice", "+41791234567").await;
    let mut client = UserEventsClient::new(channel(&app).await);

    // Both events readable (see `feed_holding`), then over gRPC.
    feed_holding(&app, &app.admin(), "", 2).await;
    let request = authorized(pb::ListEventsRequest { page_size: 1, cursor: String::new() }, &app.admin());
    let first = client.list_events(request).await.expect("a page").into_inner();
    assert_eq!(first.events.len(), 1);
    assert_eq!((first.events[0].aggregate_id.as_str(), first.events[0].sequence), ("alice", 1));
    assert_eq!(first.next_cursor, first.events[0].cursor);
    let request = authorized(pb::ListEventsRequest { page_size: 10, cursor: first.next_cursor }, &app.admin());
    let rest = client.list_events(request).await.expect("a page").into_inner();
    assert_eq!(rest.events.iter().map(|e| e.r#type.as_str()).collect::<Vec<_>>(), ["user.human.mfa.otp.sms.added"]);

    let reader = app.token("reader-a", "org-a", &["ORG_USER_READER"]);
    let refused = client.list_events(authorized(pb::ListEventsRequest::default(), &reader)).await;
    factors_e2e::grpc::assert_status(refused, tonic::Code::PermissionDenied, "AUTHZ-PermissionDenied");
}

/// Every event's payload, from the feed, once it holds `count` of them.
async fn every_payload(app: &TestApp, count: usize) -> Vec<(String, Value)> {
    let page = feed_holding(app, &app.admin(), "?pageSize=1000", count).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let events = page.body["events"].as_array().expect("events");
    events.iter().map(|e| (e["type"].as_str().expect("type").to_owned(), e["payload"].clone())).collect()
}

#[tokio::test]
async fn every_kind_of_event_records_the_client_behind_the_trusted_proxy_its_user_agent_and_request() {
    let mut app = TestApp::spawn_with(|settings| settings.server.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    // The client says it is 198.51.100.1; the proxy (this test, on loopback) saw 203.0.113.7.
    app.send_headers_always(reqwest::header::HeaderMap::from_iter([
        (reqwest::header::USER_AGENT, "console/2.1 (siem-e2e)".parse().expect("a value")),
        ("x-forwarded-for".parse().expect("a name"), "198.51.100.1, 203.0.113.7".parse().expect("a value")),
    ]));
    let signed_in = chrono::Utc::now().timestamp();
    let admin = app.token_with(factors_e2e::Claims {
        amr: &["pwd", "otp"],
        auth_time: Some(signed_in),
        ..factors_e2e::Claims::of("iam-admin", Some("org-admin"), &["IAM_OWNER"])
    });
    let ok = |answer: Answer, what: &str| assert!(answer.status < 300, "{what}: {} {}", answer.status, answer.body);

    // Policies: added and changed, of the instance and of an organization.
    for (path, force) in [("/resources/v3alpha/policies/login", false), ("/resources/v3alpha/policies/login", true)]
        .into_iter()
        .chain([("/resources/v3alpha/organizations/org-a/policies/login", false)])
        .chain([("/resources/v3alpha/organizations/org-a/policies/login", true)])
    {
        ok(app.send(reqwest::Method::PUT, path, Some(&admin), Some(json!({"forceMfa": force}))).await, path);
    }
    // A user's life: added, factors added and verified, its states, a session, removals.
    ok(app.create_user(&admin, "org-a", json!({"schemaId": "human", "userId": "alice"})).await, "create");
    let pending = app.add_otp_sms(&admin, "alice", json!({"number": "+41791234567", "returnCode": {}})).await;
    let otp = pending.body["otpSmsId"].as_str().unwrap_or_else(|| panic!("{}", pending.body)).to_owned();
    let code = pending.body["verificationCode"].as_str().expect("the code").to_owned();
    ok(app.verify_otp_sms(&admin, "alice", &otp, &code).await, "verify");
    let second = app.add_otp_sms(&admin, "alice", json!({"number": "+41791234568", "isVerified": true})).await;
    let second = second.body["otpSmsId"].as_str().expect("an id").to_owned();
    for to in ["lock", "unlock", "deactivate", "activate"] {
        let path = format!("/resources/v3alpha/users/alice/_{to}");
        if to == "deactivate" {
            // Over Connect, from another client behind the same proxy.
            let deactivated = reqwest::Client::new()
                .post(format!("{}/zitadel.resources.user.v3alpha.ZITADELUsers/DeactivateUser", app.address))
                .header("content-type", "application/json")
                .header("user-agent", "connect-es/2.0")
                .header("x-forwarded-for", "203.0.113.9")
                .bearer_auth(&admin)
                .body(json!({"id": "alice"}).to_string())
                .send()
                .await
                .expect("answers");
            assert_eq!(deactivated.status(), 200, "{:?}", deactivated.text().await);
        } else {
            ok(app.send(reqwest::Method::POST, &path, Some(&admin), None).await, to);
        }
    }
    let ui = app.login_ui();
    let created = app
        .create_session(
            &ui,
            json!({"checks": {"user": {"userId": "alice"}}, "challenges": {"otpSms": {"returnCode": true}},
                   "metadata": {"device": "cGhvbmU="}, "lifetime": "600s"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let session = created.body["sessionId"].as_str().expect("an id").to_owned();
    let code = created.body["challenges"]["otpSms"].as_str().expect("the code").to_owned();
    ok(app.set_session(&ui, &session, json!({"checks": {"otpSms": {"code": code}}})).await, "check");
    ok(app.delete_session(&ui, &session, json!({})).await, "terminate");
    ok(app.remove_otp_sms(Some(&admin), "alice", &otp).await, "remove");
    // Over gRPC too, through the same proxy.
    let mut users = ZitadelUsersClient::new(channel(&app).await);
    let mut request = authorized(
        users_pb::RemoveOtpsmsAuthenticatorRequest {
            id: "alice".into(),
            otp_sms_id: second.clone(),
            ..Default::default()
        },
        &admin,
    );
    request.metadata_mut().insert("x-forwarded-for", "198.51.100.1, 203.0.113.8".parse().expect("a value"));
    users.remove_otpsms_authenticator(request).await.expect("removed over gRPC");
    ok(app.delete_user(&admin, "alice").await, "delete");

    let payloads = every_payload(&app, 24).await;
    let mut kinds: Vec<&str> = payloads.iter().map(|(kind, _)| kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "instance.policy.login.added",
            "instance.policy.login.changed",
            "org.policy.login.added",
            "org.policy.login.changed",
            "session.added",
            "session.lifetime.set",
            "session.metadata.set",
            "session.otp.sms.challenged",
            "session.otp.sms.checked",
            "session.terminated",
            "session.token.set",
            "session.user.checked",
            "user.deactivated",
            "user.human.added",
            "user.human.mfa.otp.sms.added",
            "user.human.mfa.otp.sms.removed",
            "user.human.mfa.otp.sms.verified",
            "user.locked",
            "user.reactivated",
            "user.removed",
            "user.unlocked",
        ],
        "an event of every kind"
    );
    for (kind, payload) in &payloads {
        let origin = &payload["origin"];
        let grpc = payload["otpSmsId"] == second.as_str() && kind == "user.human.mfa.otp.sms.removed";
        let agent = origin["userAgent"].as_str().unwrap_or_else(|| panic!("{kind}: a user agent in {payload}"));
        if grpc {
            assert_eq!(origin["clientAddress"], "203.0.113.8", "{kind}: {payload}");
            assert!(agent.contains("tonic"), "the gRPC client's own: {agent}");
        } else if kind == "user.deactivated" {
            assert_eq!((&origin["clientAddress"], agent), (&json!("203.0.113.9"), "connect-es/2.0"), "Connect");
        } else {
            assert_eq!(origin["clientAddress"], "203.0.113.7", "{kind}: {payload}");
            assert_eq!(agent, "console/2.1 (siem-e2e)", "{kind}");
        }
        assert!(origin["requestId"].as_str().is_some_and(|id| !id.is_empty()), "{kind}: {payload}");
        let by_admin = payload["actor"] == "iam-admin";
        assert_eq!(origin["amr"] == json!(["pwd", "otp"]), by_admin, "{kind}: the caller's amr, {payload}");
    }
    assert!(payloads.iter().any(|(_, p)| p["origin"]["clientAddress"] == "203.0.113.8"), "the gRPC removal is there");
}

#[tokio::test]
async fn without_trusted_proxies_the_address_is_the_peers_whatever_the_client_forwards() {
    let mut app = TestApp::spawn().await;
    app.send_headers_always(reqwest::header::HeaderMap::from_iter([(
        "x-forwarded-for".parse().expect("a name"),
        "198.51.100.1".parse().expect("a value"),
    )]));
    app.given_user("alice", "org-a").await;
    let payloads = every_payload(&app, 1).await;
    assert_eq!(payloads[0].1["origin"]["clientAddress"], "127.0.0.1", "{:?}", payloads[0]);
    assert!(payloads[0].1["origin"].get("userAgent").is_none(), "none was sent: {:?}", payloads[0]);
}
