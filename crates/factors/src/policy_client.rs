//! `factors policy`: reads and sets login policies through a running service's REST API,
//! never its database, so the caller's token and the service's access rules decide, as for
//! any other client. Only the HTTP exchange lives here, so tests can point it at any server.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

/// The flags of `factors policy set`: what to change; `None` keeps what is in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyChange {
    pub force_mfa: Option<bool>,
    pub step_up_max_age: Option<Duration>,
    pub notify_on_removal: Option<bool>,
}

impl PolicyChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `policy` (a `LoginPolicy` in JSON, as the service answers it) with the flags given
    /// applied and every other field as it was.
    fn apply_to(&self, mut policy: Value) -> anyhow::Result<Value> {
        let fields = policy.as_object_mut().context("the service answered a policy that is not a JSON object")?;
        if let Some(force) = self.force_mfa {
            fields.insert("forceMfa".into(), json!(force));
        }
        if let Some(age) = self.step_up_max_age {
            fields.insert("selfRemovalStepUpMaxAge".into(), json!(proto_duration(age)));
        }
        if let Some(notify) = self.notify_on_removal {
            fields.insert("notifyOnRemoval".into(), json!(notify));
        }
        Ok(policy)
    }
}

/// A duration as protobuf JSON writes one (`"300s"`, `"1.500000000s"`). A fraction is
/// passed on as given: the service, not this client, says which ages a policy takes.
fn proto_duration(age: Duration) -> String {
    match age.subsec_nanos() {
        0 => format!("{}s", age.as_secs()),
        nanos => format!("{}.{nanos:09}s", age.as_secs()),
    }
}

/// A client of one service's login policy routes, with one bearer token.
pub struct PolicyClient {
    http: reqwest::Client,
    base: Url,
    token: String,
}

/// Shows where the client goes, never its token.
impl std::fmt::Debug for PolicyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyClient").field("base", &self.base.as_str()).field("token", &"[REDACTED]").finish()
    }
}

impl PolicyClient {
    /// `base` is the service's URL (`http://127.0.0.1:8080`, perhaps with a path prefix);
    /// every request takes at most `timeout`. `proxy`: whether proxies from the environment
    /// (`HTTPS_PROXY`, ...) apply, which they cannot for a loopback address.
    ///
    /// # Errors
    /// A base that is not an absolute http(s) URL.
    pub fn new(base: &str, token: String, timeout: Duration, proxy: bool) -> anyhow::Result<Self> {
        let base = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https") && !base.cannot_be_a_base(),
            "--url {base}: expected http://host:port or https://host:port"
        );
        let mut http = reqwest::Client::builder().timeout(timeout);
        if !proxy {
            http = http.no_proxy();
        }
        Ok(Self { http: http.build().context("building the HTTP client")?, base, token })
    }

    /// The URL of the instance default's policy, or of organization `org`'s, the id
    /// percent-encoded as one path segment.
    fn url(&self, org: Option<&str>) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["resources", "v3alpha"]);
            if let Some(org) = org {
                segments.extend(["organizations", org]);
            }
            segments.extend(["policies", "login"]);
        }
        url
    }

    /// The policy in force for `org` (its own, else the one it inherits), or the instance
    /// default: the service's answer, as JSON.
    ///
    /// # Errors
    /// When the service cannot be reached, or answers an error (named by its status, error
    /// id and message).
    pub async fn get(&self, org: Option<&str>) -> anyhow::Result<Value> {
        self.call(Method::GET, self.url(org), None).await
    }

    /// Reads the policy in force, applies `change`, and sets the result as the policy of
    /// `org` (or the instance default): the service's answer to the set, as JSON. For an
    /// organization that inherits, what it inherits becomes its own, changed.
    ///
    /// # Errors
    /// As [`Self::get`], for either request.
    pub async fn set(&self, org: Option<&str>, change: PolicyChange) -> anyhow::Result<Value> {
        let url = self.url(org);
        let mut current = self.call(Method::GET, url.clone(), None).await?;
        let policy = change.apply_to(current["policy"].take())?;
        self.call(Method::PUT, url, Some(policy)).await
    }

    async fn call(&self, method: Method, url: Url, body: Option<Value>) -> anyhow::Result<Value> {
        let what = format!("{method} {url}");
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        // The URL leads the message once; reqwest's errors would repeat it.
        let response = request.send().await.map_err(reqwest::Error::without_url).with_context(|| what.clone())?;
        let status = response.status();
        let text = response.text().await.map_err(reqwest::Error::without_url).with_context(|| what.clone())?;
        if status != StatusCode::OK {
            bail!("{what} answered {status}: {}", refusal(&text));
        }
        serde_json::from_str(&text).with_context(|| format!("{what} answered 200 with a body that is not JSON"))
    }
}

/// What an error answer says: its error id and message (`AUTHZ-PermissionDenied: the
/// caller may not do this`), or its text when it is not the contract's error body (a proxy
/// in between, say).
fn refusal(body: &str) -> String {
    let detail = serde_json::from_str::<Value>(body).ok().and_then(|status| {
        let detail = status["details"].get(0)?;
        Some(format!("{}: {}", detail["id"].as_str()?, detail["message"].as_str()?))
    });
    detail.unwrap_or_else(|| body.trim().chars().take(500).collect())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::extract::{OriginalUri, State};
    use axum::http::HeaderMap;
    use axum::routing::get;
    use axum::{Json, Router};
    use tokio::net::TcpListener;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(3);

    #[test]
    fn the_debug_output_names_the_service_but_not_the_token() {
        let client =
            PolicyClient::new("http://127.0.0.1:8080", "eyJ.secret.token".into(), TIMEOUT, false).expect("a client");
        let shown = format!("{client:?}");
        assert!(shown.contains("127.0.0.1:8080") && !shown.contains("secret"), "{shown}");
    }

    /// What the fake service saw: each request's method, path and authorization, and the
    /// body of a PUT.
    #[derive(Debug, Default)]
    struct Seen {
        requests: Vec<(String, String, String)>,
        put: Option<Value>,
    }

    type Shared = Arc<Mutex<Seen>>;

    fn note(seen: &Shared, method: &str, uri: &OriginalUri, headers: &HeaderMap) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        seen.lock().expect("lock").requests.push((method.into(), uri.path().to_owned(), auth));
    }

    /// A service whose policy in force is org-a's inherited default; a PUT answers the
    /// policy it was given as the organization's own.
    async fn serve() -> (SocketAddr, Shared) {
        async fn read(State(seen): State<Shared>, uri: OriginalUri, headers: HeaderMap) -> Json<Value> {
            note(&seen, "GET", &uri, &headers);
            Json(json!({"policy": {"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": false},
                        "source": "POLICY_SOURCE_INSTANCE"}))
        }
        async fn write(
            State(seen): State<Shared>,
            uri: OriginalUri,
            headers: HeaderMap,
            Json(policy): Json<Value>,
        ) -> Json<Value> {
            note(&seen, "PUT", &uri, &headers);
            seen.lock().expect("lock").put = Some(policy.clone());
            Json(json!({"policy": policy, "source": "POLICY_SOURCE_ORGANIZATION"}))
        }
        let seen = Shared::default();
        let router = Router::new()
            .route("/resources/v3alpha/organizations/{org}/policies/login", get(read).put(write))
            .route("/resources/v3alpha/policies/login", get(read).put(write))
            .with_state(seen.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        (addr, seen)
    }

    fn client(addr: SocketAddr) -> PolicyClient {
        PolicyClient::new(&format!("http://{addr}"), "t0ken".into(), TIMEOUT, false).expect("a client")
    }

    #[tokio::test]
    async fn set_changes_only_the_flags_given_and_puts_the_whole_policy() {
        let (addr, seen) = serve().await;
        let change = PolicyChange { notify_on_removal: Some(true), ..PolicyChange::default() };

        let answer = client(addr).set(Some("org-a"), change).await.expect("set");

        let expected = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true});
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.put.as_ref(), Some(&expected), "the rest of the policy in force is kept");
        assert_eq!(answer["source"], "POLICY_SOURCE_ORGANIZATION");
        let path = "/resources/v3alpha/organizations/org-a/policies/login";
        let bearer = "Bearer t0ken";
        assert_eq!(
            seen.requests,
            [("GET".to_owned(), path.to_owned(), bearer.to_owned()), ("PUT".into(), path.into(), bearer.into())]
        );
    }

    #[tokio::test]
    async fn ages_go_out_as_protobuf_json_durations_and_the_instance_default_has_its_own_path() {
        let (addr, seen) = serve().await;
        let change = PolicyChange {
            force_mfa: Some(false),
            step_up_max_age: Some(Duration::from_secs(600)),
            notify_on_removal: None,
        };

        client(addr).set(None, change).await.expect("set");

        let seen = seen.lock().expect("lock");
        assert_eq!(
            seen.put,
            Some(json!({"forceMfa": false, "selfRemovalStepUpMaxAge": "600s", "notifyOnRemoval": false}))
        );
        assert_eq!(seen.requests[1].1, "/resources/v3alpha/policies/login");
        assert_eq!(proto_duration(Duration::from_millis(1500)), "1.500000000s", "the service decides on fractions");
    }

    #[tokio::test]
    async fn an_organization_id_is_one_path_segment_and_a_base_path_is_kept() {
        let client = PolicyClient::new("http://127.0.0.1:1/factors/", "t".into(), TIMEOUT, false).expect("a client");
        assert_eq!(
            client.url(Some("a/b?c")).as_str(),
            "http://127.0.0.1:1/factors/resources/v3alpha/organizations/a%2Fb%3Fc/policies/login"
        );
        for bad in ["127.0.0.1:8080", "ftp://host/", "not a url"] {
            let refused = PolicyClient::new(bad, "t".into(), TIMEOUT, false).expect_err(bad).to_string();
            assert!(refused.contains("--url"), "{bad}: {refused}");
        }
    }

    #[tokio::test]
    async fn an_error_answer_is_named_by_its_status_error_id_and_message() {
        let router = Router::new().route(
            "/resources/v3alpha/policies/login",
            get(|| async {
                let body = json!({"code": 7, "message": "the caller may not do this (AUTHZ-PermissionDenied)",
                    "details": [{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail",
                                 "id": "AUTHZ-PermissionDenied", "message": "the caller may not do this"}]});
                (StatusCode::FORBIDDEN, Json(body))
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("has an address");
        tokio::spawn(async move { axum::serve(listener, router).await });

        let error = client(addr).get(None).await.expect_err("refused").to_string();

        assert!(error.contains("403 Forbidden"), "{error}");
        assert!(error.ends_with("AUTHZ-PermissionDenied: the caller may not do this"), "{error}");
        assert!(!error.contains("t0ken"), "the token is never shown: {error}");
    }

    #[test]
    fn a_body_that_is_not_the_contracts_error_is_shown_as_text() {
        assert_eq!(refusal("  Bad Gateway\n"), "Bad Gateway");
        assert_eq!(refusal(r#"{"code": 5}"#), r#"{"code": 5}"#);
    }
}
