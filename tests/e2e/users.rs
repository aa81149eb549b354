//! CreateUser, GetUser and DeleteUser: every status they answer.

use super::TestApp;
use factors_e2e::Answer;
use serde_json::json;

#[tokio::test]
async fn creating_a_user_answers_201_and_the_user_reads_back_as_given() {
    let app = TestApp::spawn().await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let body = json!({"schema_id": "human", "data": {"givenName": "Ada", "age": 36},
        "contact": {"email": {"address": "ada@example.com", "isVerified": true}, "phone": {"number": "+41 79 123 45 67", "return_code": {}}}});

    let created = app.create_user(&admin, "org-a", body).await;

    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["details"]["id"].as_str().expect("minted id").to_owned();
    assert!(id.parse::<u64>().is_ok(), "a ZITADEL-style decimal id: {id}");
    assert_eq!(created.body["phoneCode"].as_str().map(str::len), Some(6));
    assert!(created.body.get("emailCode").is_none(), "verified at once: no code");
    let user = app.get_user(&admin, &id).await.body["user"].clone();
    assert_eq!(user["data"], json!({"givenName": "Ada", "age": 36}));
    assert_eq!(user["schema"]["id"], "human");
    assert_eq!(
        user["contact"],
        json!({"email": {"address": "ada@example.com", "isVerified": true}, "phone": {"number": "+41791234567", "isVerified": false}})
    );
    assert_eq!(user["state"], "USER_STATE_ACTIVE");
    assert_eq!(user["details"]["owner"], json!({"type": "OWNER_TYPE_ORG", "id": "org-a"}));
    assert_eq!(app.events("user.human.added").await.len(), 1);
}

#[tokio::test]
async fn creating_is_refused_without_write_on_the_org_for_taken_ids_and_bad_input() {
    let app = TestApp::spawn().await;
    app.given_user("taken", "org-a").await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let human = json!({"schemaId": "human"});

    app.create_user(&app.token("reader", "org-a", &["ORG_USER_READER"]), "org-a", human.clone()).await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );
    app.create_user(&admin, "org-b", human.clone()).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    app.create_user(&admin, "org-a", json!({"schemaId": "human", "userId": "taken"})).await.assert_error(
        409,
        6,
        "USER-AlreadyExists",
    );
    app.create_user(&admin, "org-a", json!({"data": {}})).await.assert_error(400, 3, "REQ-MissingField");
    app.create_user(&admin, "org-a", json!({"schemaId": "human", "authenticators": {"password": {"password": "x"}}}))
        .await
        .assert_error(400, 3, "USER-AuthenticatorsNotSupported");
    let unknown_domain = app
        .send(
            reqwest::Method::POST,
            "/resources/v3alpha/users?organization.orgDomain=nope.example.com",
            Some(&admin),
            Some(human),
        )
        .await;
    unknown_domain.assert_error(404, 5, "ORG-NotFound");
    assert_eq!(app.events("user.human.added").await.len(), 1, "only the given user");
}

#[tokio::test]
async fn reading_a_user_is_allowed_to_itself_and_readers_and_hidden_from_others() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;

    assert_eq!(app.get_user(&app.token("alice", "org-a", &[]), "alice").await.status, 200, "self");
    assert_eq!(app.get_user(&app.token("reader", "org-a", &["ORG_USER_READER"]), "alice").await.status, 200, "reader");
    app.get_user(&app.token("bob", "org-a", &[]), "alice").await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    app.get_user(&app.token("reader-b", "org-b", &["ORG_USER_READER"]), "alice").await.assert_error(
        404,
        5,
        "USER-NotFound",
    );
    app.get_user(&app.admin(), "ghost").await.assert_error(404, 5, "USER-NotFound");
    app.get_user(&app.admin(), &"x".repeat(201)).await.assert_error(400, 3, "USER-InvalidId");
}

#[tokio::test]
async fn deleting_a_user_takes_its_authenticators_with_it() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let otp = app.given_authenticator("alice", "+41791234567").await;

    app.delete_user(&app.token("admin-a", "org-a", &["ORG_USER_READER"]), "alice").await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );
    app.delete_user(&app.token("alice", "org-a", &[]), "alice").await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    let deleted = app.delete_user(&app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]), "alice").await;

    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["details"]["id"], "alice");
    app.get_user(&app.admin(), "alice").await.assert_error(404, 5, "USER-NotFound");
    app.delete_user(&app.admin(), "alice").await.assert_error(404, 5, "USER-NotFound");
    app.remove_otp_sms(Some(&app.admin()), "alice", &otp).await.assert_error(404, 5, "USER-NotFound");
    assert_eq!(app.events("user.removed").await.len(), 1);
}

#[tokio::test]
async fn a_user_another_org_made_with_the_callers_id_is_not_the_caller() {
    let app = TestApp::spawn().await;
    // Org B's manager makes, in org B, a user whose id is the `sub` of a user of org A.
    let manager_b = app.token("manager-b", "org-b", &["ORG_USER_MANAGER"]);
    let planted = app.create_user(&manager_b, "org-b", json!({"schemaId": "human", "userId": "alice"})).await;
    assert_eq!(planted.status, 201, "{}", planted.body);
    let kept = app.add_otp_sms(&manager_b, "alice", json!({"number": "+41791234567", "isVerified": true})).await;
    let kept = kept.body["otpSmsId"].as_str().expect("added").to_owned();
    let pending = app.add_otp_sms(&manager_b, "alice", json!({"number": "+41791234568", "returnCode": {}})).await;
    let (pending, code) = (
        pending.body["otpSmsId"].as_str().expect("added").to_owned(),
        pending.body["verificationCode"].as_str().expect("returned").to_owned(),
    );
    let events_before = app.sql.count("events").await;
    let alice_of_a = app.token("alice", "org-a", &[]);

    // The answer a stranger without permissions gets, for every operation.
    app.get_user(&alice_of_a, "alice").await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    app.add_otp_sms(&alice_of_a, "alice", json!({"number": "+41791234569"})).await.assert_error(
        403,
        7,
        "AUTHZ-PermissionDenied",
    );
    app.verify_otp_sms(&alice_of_a, "alice", &pending, &code).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    app.remove_otp_sms(Some(&alice_of_a), "alice", &kept).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    app.delete_user(&alice_of_a, "alice").await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    // ... and the answer it gets for an id that does not exist at all.
    app.get_user(&app.token("ghost", "org-a", &[]), "ghost").await.assert_error(403, 7, "AUTHZ-PermissionDenied");

    assert_eq!(app.sql.count("events").await, events_before, "nothing was written");
    assert_eq!(app.sms.count(), 0, "nothing was sent");
    let user = app.get_user(&manager_b, "alice").await.body["user"].clone();
    let held: Vec<_> = user["authenticators"]["otpSms"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|a| (a["otpSmsId"].as_str().expect("id").to_owned(), a["isVerified"].as_bool().expect("flag")))
        .collect();
    assert_eq!(held, [(kept, true), (pending, false)]);
}

/// A service whose instance id and organization domain are not the defaults a caller could
/// guess, for the selector cases.
async fn with_secret_selectors() -> TestApp {
    TestApp::spawn_with(|settings| {
        settings.instance.id = "inst-7c1d".into();
        settings.instance.organizations = vec![factors::settings::OrganizationSettings {
            id: "org-a".into(),
            domains: vec!["acme.example.com".into()],
        }];
    })
    .await
}

#[tokio::test]
async fn selectors_answer_only_callers_that_hold_user_permissions() {
    let app = with_secret_selectors().await;
    app.given_user("alice", "org-a").await;
    let (bob, alice) = (app.token("bob", "org-a", &[]), app.token("alice", "org-a", &[]));
    let manager = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let get = async |token: &str, selector: &str| {
        app.send(reqwest::Method::GET, &format!("/resources/v3alpha/users/alice?{selector}"), Some(token), None).await
    };
    let cases = [
        (&bob, "instance.id=guess", 403, "AUTHZ-PermissionDenied", "a plain user guessing the instance"),
        (&bob, "instance.id=inst-7c1d", 403, "AUTHZ-PermissionDenied", "a plain user naming it"),
        (
            &bob,
            "organization.orgDomain=nope.example.com",
            403,
            "AUTHZ-PermissionDenied",
            "a plain user guessing a domain",
        ),
        (&bob, "organization.orgDomain=acme.example.com", 403, "AUTHZ-PermissionDenied", "a plain user naming one"),
        (&alice, "instance.id=guess", 403, "AUTHZ-PermissionDenied", "the user guessing the instance"),
        (
            &alice,
            "organization.orgDomain=nope.example.com",
            403,
            "AUTHZ-PermissionDenied",
            "the user guessing a domain",
        ),
        (&manager, "instance.id=guess", 404, "INSTANCE-NotFound", "a manager guessing the instance"),
        (&manager, "organization.orgDomain=nope.example.com", 404, "ORG-NotFound", "a manager guessing a domain"),
    ];
    for (token, selector, status, id, case) in cases {
        let answer = get(token, selector).await;
        assert_eq!((answer.status, answer.error_id()), (status, id), "{case}: {}", answer.body);
        answer.assert_error(status, if status == 403 { 7 } else { 5 }, id);
    }
    for selector in ["instance.id=inst-7c1d", "organization.orgDomain=acme.example.com"] {
        let read = get(&alice, selector).await;
        assert_eq!(read.status, 200, "the user selecting itself rightly, {selector}: {}", read.body);
    }

    // CreateUser: a caller that may create users nowhere learns nothing; a writer does.
    let reader = app.token("reader", "org-a", &["ORG_USER_READER"]);
    let create = async |token: &str, selector: &str| {
        let path = format!("/resources/v3alpha/users?{selector}");
        app.send(reqwest::Method::POST, &path, Some(token), Some(json!({"schemaId": "human"}))).await
    };
    for selector in ["instance.id=guess", "organization.orgDomain=nope.example.com"] {
        create(&reader, selector).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    }
    create(&manager, "instance.id=guess").await.assert_error(404, 5, "INSTANCE-NotFound");
    create(&manager, "organization.orgDomain=nope.example.com").await.assert_error(404, 5, "ORG-NotFound");
    assert_eq!(app.events("user.human.added").await.len(), 1, "only the given user");
}

#[tokio::test]
async fn data_holding_a_nul_character_is_refused_on_both_stores() {
    let app = TestApp::spawn().await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let cases = [
        (json!({"a\u{0}b": 1}), "in a key"),
        (json!({"name": "Ada\u{0}"}), "in a value"),
        (json!({"n": {"deep": ["x", "\u{0}"]}}), "nested"),
    ];
    for (data, case) in cases {
        let answer = app.create_user(&admin, "org-a", json!({"schemaId": "human", "data": data})).await;
        assert_eq!(answer.status, 400, "{case}: {}", answer.body);
        answer.assert_error(400, 3, "USER-DataNulCharacter");
    }
    // The JSON escape as sent on the wire, and over Connect.
    let escaped = reqwest::Client::new()
        .post(format!("{}/resources/v3alpha/users?organization.orgId=org-a", app.address))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"schemaId": "human", "data": {"name": "\u0000"}}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(escaped.status().as_u16(), 400);
    let connect = reqwest::Client::new()
        .post(format!("{}/zitadel.resources.user.v3alpha.ZITADELUsers/CreateUser", app.address))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"organization": {"orgId": "org-a"}, "user": {"schemaId": "human", "data": {"name": "\u0000"}}}"#)
        .send()
        .await
        .expect("answers");
    assert_eq!(connect.status().as_u16(), 400);
    let body: serde_json::Value = connect.json().await.expect("JSON");
    assert_eq!(body["details"][0]["debug"]["id"], "USER-DataNulCharacter", "{body}");
    assert_eq!(app.sql.count("users").await, 0, "nothing was stored");
}

#[tokio::test]
async fn ids_a_rest_path_cannot_reach_are_refused_at_creation() {
    let app = TestApp::spawn().await;
    let admin = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    for id in [".", "..", "_search", "_verify", "a/b", "a\\b", "a?b", "a#b", "a%2Fb"] {
        app.create_user(&admin, "org-a", json!({"schemaId": "human", "userId": id})).await.assert_error(
            400,
            3,
            "USER-InvalidId",
        );
    }
    assert_eq!(app.sql.count("users").await, 0, "none was created");

    // What may be chosen is reachable on every route.
    for id in ["a.b", "...", "a_b", "ñandú"] {
        let created = app.create_user(&admin, "org-a", json!({"schemaId": "human", "userId": id})).await;
        assert_eq!(created.status, 201, "{id}: {}", created.body);
        let read = app.get_user(&admin, &id.replace('ñ', "%C3%B1").replace('ú', "%C3%BA")).await;
        assert_eq!((read.status, read.body["user"]["details"]["id"].as_str()), (200, Some(id)), "{id}: {}", read.body);
        let added = app.add_otp_sms(&admin, id, json!({"number": "+41791234567", "isVerified": true})).await;
        assert_eq!(added.status, 200, "{id}: {}", added.body);
        let deleted = app.delete_user(&admin, id).await;
        assert_eq!(deleted.status, 200, "{id}: {}", deleted.body);
    }
}

/// SearchUsers over REST as `token` with `body`: the answer.
async fn search(app: &TestApp, token: &str, body: serde_json::Value) -> Answer {
    app.send(reqwest::Method::POST, "/resources/v3alpha/users/_search", Some(token), Some(body)).await
}

/// The ids of a search's page, in order.
fn found(answer: &Answer) -> Vec<&str> {
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body["result"].as_array().expect("result").iter().filter_map(|u| u["details"]["id"].as_str()).collect()
}

#[tokio::test]
async fn a_search_shows_each_caller_the_users_it_may_see_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    for (id, org) in [("carol", "org-a"), ("alice", "org-a"), ("bob", "org-b"), ("dave", "org-a")] {
        app.given_user(id, org).await;
    }
    let manager_a = app.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
    let locked = app.send(reqwest::Method::POST, "/resources/v3alpha/users/carol/_lock", Some(&manager_a), None).await;
    assert_eq!(locked.status, 200, "{}", locked.body);

    let everyone = search(&app, &app.admin(), json!({})).await;
    assert_eq!(found(&everyone), ["alice", "bob", "carol", "dave"]);
    assert_eq!(everyone.body["details"]["totalResult"], "4");
    assert_eq!(everyone.body["details"]["appliedLimit"], "100");
    assert_eq!(everyone.body["result"][0], app.get_user(&app.admin(), "alice").await.body["user"], "as GetUser shows it");

    let reader_a = app.token("reader-a", "org-a", &["ORG_USER_READER"]);
    let page = search(&app, &reader_a, json!({"query": {"offset": "1", "limit": 1, "desc": true}})).await;
    assert_eq!((found(&page), &page.body["details"]["totalResult"]), (vec!["carol"], &json!("3")), "org A only");
    let in_b = search(&app, &reader_a, json!({"filters": [{"organizationIdFilter": {"id": "org-b"}}]})).await;
    assert_eq!((found(&in_b), &in_b.body["details"]["totalResult"]), (vec![], &json!("0")), "nothing outside org A");

    let locked_ones = json!({"filters": [{"stateFilter": {"state": "USER_STATE_LOCKED"}}]});
    assert_eq!(found(&search(&app, &app.admin(), locked_ones).await), ["carol"]);
    let by_change = json!({"sortingColumn": "FIELD_NAME_CHANGE_DATE", "query": {"desc": true, "limit": 1}});
    assert_eq!(found(&search(&app, &app.admin(), by_change).await), ["carol"], "locked last");
    let one = json!({"filters": [{"andFilter": {"queries": [{"userIdFilter": {"id": "bob"}}]}}]});
    assert_eq!(found(&search(&app, &app.admin(), one).await), ["bob"]);
}

#[tokio::test]
async fn a_search_is_refused_to_callers_without_user_permissions_and_for_what_factors_cannot_search_by() {
    let app = TestApp::spawn().await;
    app.given_user("alice", "org-a").await;
    let events_before = app.sql.count("events").await;

    search(&app, &app.token("alice", "org-a", &[]), json!({})).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    let admin = app.admin();
    search(&app, &admin, json!({"filters": [{"emailFilter": {"address": "alice@example.com"}}]}))
        .await
        .assert_error(400, 3, "USER-SearchUnsupported");
    search(&app, &admin, json!({"sortingColumn": "FIELD_NAME_PHONE"})).await.assert_error(
        400,
        3,
        "USER-SearchUnsupported",
    );
    search(&app, &admin, json!({"filters": [{"stateFilter": {"state": 7}}]})).await.assert_error(
        400,
        3,
        "USER-SearchInvalid",
    );
    let unknown_instance =
        app.send(reqwest::Method::POST, "/resources/v3alpha/users/_search?instance.id=other", Some(&admin), None).await;
    unknown_instance.assert_error(404, 5, "INSTANCE-NotFound");
    assert_eq!(app.sql.count("events").await, events_before, "a search writes nothing");
}
