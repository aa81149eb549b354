//! Login policies (`/resources/v3alpha/policies/login` and
//! `/resources/v3alpha/organizations/{organization_id}/policies/login`, factors' own): the
//! instance default and an organization's own, who may read and set them, what a bad age
//! answers, and the events a change leaves.

use factors_api_grpc::pb::factors::policy::v1 as pb;
use factors_api_grpc::pb::factors::policy::v1::login_policies_client::LoginPoliciesClient;
use factors_e2e::Answer;
use factors_e2e::grpc::{authorized, channel};
use reqwest::Method;
use serde_json::{Value, json};

use super::TestApp;

const INSTANCE: &str = "/resources/v3alpha/policies/login";

fn of_org(org: &str) -> String {
    format!("/resources/v3alpha/organizations/{org}/policies/login")
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> Answer {
    app.send(Method::GET, path, token, None).await
}

async fn put(app: &TestApp, token: Option<&str>, path: &str, policy: Value) -> Answer {
    app.send(Method::PUT, path, token, Some(policy)).await
}

fn strict() -> Value {
    json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true})
}

fn org_owner(app: &TestApp, org: &str) -> String {
    app.token(&format!("owner-{org}"), org, &["ORG_OWNER"])
}

#[tokio::test]
async fn the_iam_owner_sets_the_instance_default_and_an_organization_without_its_own_inherits_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin();

    let built_in = get(&app, Some(&admin), INSTANCE).await;
    assert_eq!(
        (built_in.status, &built_in.body),
        (
            200,
            &json!({"policy": {"forceMfa": false, "selfRemovalStepUpMaxAge": "0s", "notifyOnRemoval": false},
                    "source": "POLICY_SOURCE_BUILT_IN"})
        ),
        "nothing stored yet: everything off, no details"
    );

    let set = put(&app, Some(&admin), INSTANCE, strict()).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!((&set.body["policy"], &set.body["source"]), (&strict(), &json!("POLICY_SOURCE_INSTANCE")));
    let details = &set.body["details"];
    assert_eq!(details["sequence"], "1");
    assert_eq!(details["created"], details["changed"], "first set: {details}");
    let instance_owner = json!({"type": "OWNER_TYPE_INSTANCE", "id": app.settings.instance.id});
    assert_eq!(details["owner"], instance_owner);

    let inherited = get(&app, Some(&org_owner(&app, "org-b")), &of_org("org-b")).await;
    assert_eq!(inherited.status, 200, "{}", inherited.body);
    assert_eq!(inherited.body["source"], "POLICY_SOURCE_INSTANCE", "org-b set none: {}", inherited.body);
    assert_eq!(inherited.body["policy"], strict());
    assert_eq!(inherited.body["details"], set.body["details"], "the default's version, the instance as owner");
    assert_eq!(get(&app, Some(&admin), INSTANCE).await.body, set.body, "read back as set");
}

#[tokio::test]
async fn an_org_owner_sets_its_organizations_own_policy_and_reads_it_back() {
    let app = TestApp::spawn().await;
    let owner = org_owner(&app, "org-a");
    assert_eq!(put(&app, Some(&app.admin()), INSTANCE, strict()).await.status, 200);

    let own = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "600s"});
    let set = put(&app, Some(&owner), &of_org("org-a"), own).await;
    assert_eq!(set.status, 200, "{}", set.body);
    let expected = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "600s", "notifyOnRemoval": false});
    assert_eq!(set.body["policy"], expected, "a whole replacement: what is left out is off, not inherited");
    assert_eq!(set.body["source"], "POLICY_SOURCE_ORGANIZATION");
    assert_eq!(set.body["details"]["owner"], json!({"type": "OWNER_TYPE_ORG", "id": "org-a"}));
    assert_eq!(set.body["details"]["sequence"], "1", "org-a's own first version");
    assert_eq!(get(&app, Some(&owner), &of_org("org-a")).await.body, set.body, "read back as set");

    let changed = put(&app, Some(&owner), &of_org("org-a"), json!({"selfRemovalStepUpMaxAge": "0s"})).await;
    assert_eq!((changed.status, &changed.body["details"]["sequence"]), (200, &json!("2")), "{}", changed.body);
    assert_eq!(changed.body["details"]["created"], set.body["details"]["created"], "created stays");
    assert_eq!(
        changed.body["policy"],
        json!({"forceMfa": false, "selfRemovalStepUpMaxAge": "0s", "notifyOnRemoval": false})
    );
    let again = put(&app, Some(&owner), &of_org("org-a"), json!({})).await;
    assert_eq!(again.body, changed.body, "setting what is stored writes nothing");

    // The instance default changing does not reach an organization with its own policy.
    assert_eq!(put(&app, Some(&app.admin()), INSTANCE, json!({"forceMfa": true})).await.status, 200);
    let read = get(&app, Some(&app.admin()), &of_org("org-a")).await;
    assert_eq!(
        (read.body["source"].as_str(), read.body["details"]["sequence"].as_str()),
        (Some("POLICY_SOURCE_ORGANIZATION"), Some("2"))
    );
}

#[tokio::test]
async fn who_may_read_and_set_policies_follows_the_contract_and_a_refusal_writes_nothing() {
    let app = TestApp::spawn().await;
    let owner_a = org_owner(&app, "org-a");
    let manager_a = app.token("manager-a", "org-a", &["ORG_USER_MANAGER"]);
    let reader_a = app.token("reader-a", "org-a", &["ORG_USER_READER"]);
    let cases = [
        (&owner_a, of_org("org-b"), "ORG_OWNER of org-a on org-b"),
        (&owner_a, INSTANCE.to_owned(), "ORG_OWNER of org-a on the instance default"),
        (&manager_a, of_org("org-a"), "ORG_USER_MANAGER on its own organization"),
        (&reader_a, of_org("org-a"), "ORG_USER_READER on its own organization"),
    ];
    for (token, path, case) in &cases {
        get(&app, Some(token), path).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
        let refused = put(&app, Some(token), path, strict()).await;
        assert_eq!(refused.error_id(), "AUTHZ-PermissionDenied", "{case}: {}", refused.body);
        refused.assert_error(403, 7, "AUTHZ-PermissionDenied");
    }
    get(&app, None, INSTANCE).await.assert_error(401, 16, "AUTH-MissingToken");
    put(&app, None, &of_org("org-a"), strict()).await.assert_error(401, 16, "AUTH-MissingToken");

    assert_eq!(app.sql.count("login_policies").await, 0, "no refusal stored a policy");
    let policy_events =
        app.sql.strings("SELECT event_type FROM events WHERE aggregate_type IN ('instance', 'org')").await;
    assert_eq!(policy_events, Vec::<String>::new(), "nor left an event");

    // A grant scoped to another organization holds there, and only there.
    let owner_of_b = app.token("consultant", "org-a", &["ORG_OWNER:org-b"]);
    assert_eq!(put(&app, Some(&owner_of_b), &of_org("org-b"), strict()).await.status, 200);
    get(&app, Some(&owner_of_b), &of_org("org-c")).await.assert_error(403, 7, "AUTHZ-PermissionDenied");
    // The IAM_OWNER reads and sets every organization's.
    assert_eq!(get(&app, Some(&app.admin()), &of_org("org-b")).await.body["source"], "POLICY_SOURCE_ORGANIZATION");
    assert_eq!(put(&app, Some(&app.admin()), &of_org("org-c"), strict()).await.status, 200);
}

#[tokio::test]
async fn a_bad_step_up_age_answers_400_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = org_owner(&app, "org-a");
    let before = put(&app, Some(&owner), &of_org("org-a"), strict()).await;
    assert_eq!(before.status, 200, "{}", before.body);

    let ages = [json!("5m"), json!("1.5s"), json!("-300s"), json!("31622401s"), json!(300), json!("")];
    for age in ages {
        let body = json!({"forceMfa": false, "selfRemovalStepUpMaxAge": age, "notifyOnRemoval": false});
        put(&app, Some(&owner), &of_org("org-a"), body).await.assert_error(400, 3, "POLICY-InvalidStepUpAge");
    }

    assert_eq!(get(&app, Some(&owner), &of_org("org-a")).await.body, before.body, "the policy is unchanged");
    assert_eq!(app.events("org.policy.login.changed").await, Vec::<Value>::new(), "no change was recorded");

    let bad_id = of_org(&"o".repeat(201));
    get(&app, Some(&owner), &bad_id).await.assert_error(400, 3, "ORG-InvalidId");
    put(&app, Some(&owner), &bad_id, strict()).await.assert_error(400, 3, "ORG-InvalidId");
    let year = put(&app, Some(&app.admin()), INSTANCE, json!({"selfRemovalStepUpMaxAge": "31622400s"})).await;
    assert_eq!(
        (year.status, &year.body["policy"]["selfRemovalStepUpMaxAge"]),
        (200, &json!("31622400s")),
        "366 days is the longest"
    );
}

#[tokio::test]
async fn every_change_leaves_an_event_of_its_owner_with_who_set_what() {
    let app = TestApp::spawn().await;
    let admin = app.admin();
    assert_eq!(put(&app, Some(&admin), INSTANCE, strict()).await.status, 200);
    assert_eq!(put(&app, Some(&admin), INSTANCE, json!({"notifyOnRemoval": true})).await.status, 200);
    let owner = org_owner(&app, "org-a");
    assert_eq!(put(&app, Some(&owner), &of_org("org-a"), json!({"forceMfa": true})).await.status, 200);

    let logged = app
        .sql
        .strings(
            "SELECT aggregate_type || ' ' || aggregate_id || ' ' || CAST(sequence AS TEXT) || ' ' || event_type || ' ' || creator \
             FROM events WHERE aggregate_type IN ('instance', 'org') ORDER BY position",
        )
        .await;
    let instance = &app.settings.instance.id;
    assert_eq!(
        logged,
        [
            format!("instance {instance} 1 instance.policy.login.added iam-admin"),
            format!("instance {instance} 2 instance.policy.login.changed iam-admin"),
            "org org-a 1 org.policy.login.added owner-org-a".to_owned(),
        ]
    );
    let added = app.events("instance.policy.login.added").await;
    assert_eq!(
        (&added[0]["actor"], &added[0]["forceMfa"], &added[0]["selfRemovalStepUpMaxAge"], &added[0]["notifyOnRemoval"]),
        (&json!("iam-admin"), &json!(true), &json!("300s"), &json!(true)),
        "{}",
        added[0]
    );
    let changed = app.events("instance.policy.login.changed").await;
    assert_eq!((&changed[0]["forceMfa"], &changed[0]["notifyOnRemoval"]), (&json!(false), &json!(true)));
    let org = app.events("org.policy.login.added").await;
    assert_eq!((&org[0]["orgId"], &org[0]["actor"]), (&json!("org-a"), &json!("owner-org-a")), "{}", org[0]);
    let read = get(&app, Some(&admin), INSTANCE).await;
    assert_eq!(read.body["details"]["changed"], changed[0]["at"], "the event's time is the version's");
}

#[tokio::test]
async fn the_policy_api_is_served_over_grpc_too() {
    let app = TestApp::spawn().await;
    let mut client = LoginPoliciesClient::new(channel(&app).await);
    let policy = pb::LoginPolicy {
        force_mfa: true,
        self_removal_step_up_max_age: Some(prost_types::Duration { seconds: 120, nanos: 0 }),
        notify_on_removal: false,
    };

    let owner = org_owner(&app, "org-a");
    let request = pb::SetLoginPolicyRequest { organization_id: Some("org-a".into()), policy: Some(policy) };
    let set = client.set_login_policy(authorized(request, &owner)).await.expect("set").into_inner();
    assert_eq!((set.source(), set.details.as_ref().map(|d| d.sequence)), (pb::PolicySource::Organization, Some(1)));

    let rest = get(&app, Some(&owner), &of_org("org-a")).await;
    assert_eq!(
        rest.body["policy"],
        json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "120s", "notifyOnRemoval": false})
    );
    let refused = client
        .get_login_policy(authorized(pb::GetLoginPolicyRequest { organization_id: None }, &owner))
        .await
        .expect_err("the instance default is not org-a's owner's to read");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // Connect (JSON), on the same port.
    let connect = app
        .send(
            Method::POST,
            "/factors.policy.v1.LoginPolicies/GetLoginPolicy",
            Some(&owner),
            Some(json!({"organizationId": "org-a"})),
        )
        .await;
    // Protobuf JSON as Connect writes it leaves fields at their default out.
    let policy = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "120s"});
    assert_eq!((connect.status, &connect.body["policy"]), (200, &policy), "{}", connect.body);
    assert_eq!(connect.body["details"]["owner"], json!({"type": "OWNER_TYPE_ORG", "id": "org-a"}));

    // Reflection knows the service, so tools such as grpcurl can call it.
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel(&app).await)
            .server_reflection_info(futures::stream::iter(vec![request]))
            .await
            .expect("reflection answers")
            .into_inner();
    let answer = answers.message().await.expect("a message").expect("one answer");
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"factors.policy.v1.LoginPolicies".to_owned()), "{names:?}");
}
