//! The end-to-end harness: the real service (settings, wiring, router, store) on a
//! loopback port with a fresh database, and one helper per endpoint. The store is a type
//! parameter ([`Postgres`] or [`Sqlite`]), so each suite runs on both.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use factors::settings::PoolerSetting;
use factors::{Application, Environment, Settings};
use factors_adapters_jwt::{DevTokenMinter, MintRequest, RoleClaim};
use factors_application::ports::{CodeSms, NoticeSms, SmsError, SmsSender};
use factors_testing::{TestDatabase, TestPooler, TestRedis, TestSqliteFile};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::{PgPool, SqlitePool};

/// The store a [`TestApp`] runs on.
pub trait StoreKind: Send + Sync + 'static {
    const SQLITE: bool;
    /// As `/readyz` names it.
    const NAME: &'static str;
}

/// PostgreSQL: a fresh database on the test server (see `factors-testing`).
#[derive(Debug)]
pub struct Postgres;

/// SQLite: a fresh file in a temporary folder; needs nothing installed.
#[derive(Debug)]
pub struct Sqlite;

impl StoreKind for Postgres {
    const SQLITE: bool = false;
    const NAME: &'static str = "postgres";
}

impl StoreKind for Sqlite {
    const SQLITE: bool = true;
    const NAME: &'static str = "sqlite";
}

/// The database of one test, on either store.
#[derive(Debug)]
pub enum TestStore {
    /// With `FACTORS_TEST_POOLER=pgbouncer`, the service reaches it through a PgBouncer in
    /// transaction mode of its own (`database.pooler = "transaction"`, migrations on the
    /// direct URL); the test's own statements ([`Sql`]) still go directly.
    Postgres {
        db: TestDatabase,
        pooled: Option<Box<(TestPooler, String)>>,
    },
    Sqlite(TestSqliteFile),
}

impl TestStore {
    /// # Panics
    /// When `FACTORS_TEST_POOLER` names anything but `pgbouncer`.
    pub async fn new<S: StoreKind>() -> Self {
        if S::SQLITE {
            return Self::Sqlite(TestSqliteFile::new());
        }
        let db = TestDatabase::new().await;
        let pooled = match std::env::var("FACTORS_TEST_POOLER").ok().as_deref() {
            None | Some("") => None,
            Some("pgbouncer") => {
                let pooler = TestPooler::start().await;
                let url = pooler.url_of(&db);
                Some(Box::new((pooler, url)))
            }
            Some(other) => panic!("FACTORS_TEST_POOLER={other:?}: the one pooler known is \"pgbouncer\""),
        };
        Self::Postgres { db, pooled }
    }

    /// Where the service finds it.
    pub fn url(&self) -> &str {
        match self {
            Self::Postgres { pooled: Some(pooled), .. } => &pooled.1,
            Self::Postgres { db, pooled: None } => db.url(),
            Self::Sqlite(file) => file.url(),
        }
    }
}

/// Direct access to a test's database, for what the API cannot show or arrange (rows
/// left behind, a code aged past its expiry). Statements are written once, in the SQL
/// both databases understand.
#[derive(Debug, Clone)]
pub enum Sql {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Sql {
    async fn open(store: &TestStore) -> Self {
        match store {
            TestStore::Postgres { db, .. } => Self::Postgres(db.pool().await),
            TestStore::Sqlite(file) => {
                Self::Sqlite(SqlitePool::connect(file.url()).await.expect("the test's SQLite file opens"))
            }
        }
    }

    /// The rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        let statement = format!("SELECT count(*) FROM {table}");
        match self {
            Self::Postgres(pool) => sqlx::query_scalar(&statement).fetch_one(pool).await,
            Self::Sqlite(pool) => sqlx::query_scalar(&statement).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    /// The first column of every row of `statement` (text, no parameters).
    pub async fn strings(&self, statement: &str) -> Vec<String> {
        match self {
            Self::Postgres(pool) => sqlx::query_scalar(statement).fetch_all(pool).await,
            Self::Sqlite(pool) => sqlx::query_scalar(statement).fetch_all(pool).await,
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    /// The first column of every row of `statement` (bytes, no parameters).
    pub async fn blobs(&self, statement: &str) -> Vec<Vec<u8>> {
        match self {
            Self::Postgres(pool) => sqlx::query_scalar(statement).fetch_all(pool).await,
            Self::Sqlite(pool) => sqlx::query_scalar(statement).fetch_all(pool).await,
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    /// Sets `expires_at` of the rows of `table` whose `key` is `value` to a second ago.
    pub async fn expire(&self, table: &str, key: &str, value: &str) {
        let past = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
        let aged = match self {
            Self::Postgres(pool) => sqlx::query(&format!("UPDATE {table} SET expires_at = $1 WHERE {key} = $2"))
                .bind(past)
                .bind(value)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
            Self::Sqlite(pool) => sqlx::query(&format!("UPDATE {table} SET expires_at = ?1 WHERE {key} = ?2"))
                .bind(past)
                .bind(value)
                .execute(pool)
                .await
                .map(|done| done.rows_affected()),
        };
        assert_eq!(aged.expect("aged"), 1, "{table} {key} = {value} aged");
    }

    /// Payloads of the audit events of `event_type`, oldest first.
    pub async fn payloads(&self, event_type: &str) -> Vec<Value> {
        match self {
            Self::Postgres(pool) => {
                sqlx::query_scalar("SELECT payload FROM events WHERE event_type = $1 ORDER BY position")
                    .bind(event_type)
                    .fetch_all(pool)
                    .await
            }
            Self::Sqlite(pool) => {
                sqlx::query_scalar("SELECT payload FROM events WHERE event_type = ?1 ORDER BY position")
                    .bind(event_type)
                    .fetch_all(pool)
                    .await
            }
        }
        .expect("events readable")
    }
}

/// SMS the service "sent", for tests to read codes from.
#[derive(Debug, Default)]
pub struct CapturedSms {
    sent: Mutex<Vec<(String, String)>>,
    /// Notices handed over: (id, number).
    notices: Mutex<Vec<(String, String)>>,
    fail: std::sync::atomic::AtomicBool,
    delay_ms: std::sync::atomic::AtomicU64,
}

impl CapturedSms {
    /// The codes sent to `phone` (E.164), oldest first.
    pub fn codes_for(&self, phone: &str) -> Vec<String> {
        self.sent.lock().expect("lock").iter().filter(|(to, _)| to == phone).map(|(_, code)| code.clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.sent.lock().expect("lock").len()
    }

    /// The notices handed over, oldest first: (outbox id, number in E.164).
    pub fn notices(&self) -> Vec<(String, String)> {
        self.notices.lock().expect("lock").clone()
    }

    /// Makes every later send take this long, as a slow provider would.
    pub fn delay_from_now_on(&self, delay: Duration) {
        self.delay_ms.store(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every later send fail, as a provider outage would.
    pub fn fail_from_now_on(&self) {
        self.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ends an outage [`Self::fail_from_now_on`] began.
    pub fn succeed_from_now_on(&self) {
        self.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl SmsSender for CapturedSms {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        let delay = self.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SmsError(anyhow::anyhow!("provider unavailable")));
        }
        self.sent.lock().expect("lock").push((sms.to.as_e164().to_owned(), sms.code.expose().to_owned()));
        Ok(())
    }

    async fn send_notice(&self, sms: &NoticeSms) -> Result<(), SmsError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SmsError(anyhow::anyhow!("provider unavailable")));
        }
        self.notices.lock().expect("lock").push((sms.id.clone(), sms.to.as_e164().to_owned()));
        Ok(())
    }
}

/// An answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The error id of an error answer (`details[0].id`).
    pub fn error_id(&self) -> &str {
        self.body["details"][0]["id"].as_str().unwrap_or("<no error id>")
    }

    /// Asserts a `google.rpc.Status` answer with this HTTP status, gRPC code and id.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: i64, id: &str) {
        assert_eq!(
            (self.status, self.body["code"].as_i64(), self.error_id()),
            (status, Some(code), id),
            "{}",
            self.body
        );
        assert_eq!(self.body["details"][0]["@type"], "type.googleapis.com/zitadel.v1.ErrorDetail", "{}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| m.ends_with(&format!("({id})"))),
            "message names the id: {}",
            self.body
        );
    }
}

/// What a test token says: whose it is, its organization claim (none when `None`), its
/// role specs (`ROLE` or `ROLE:ORG`), how long it lives, and how its user signed in.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    pub sub: &'a str,
    pub org: Option<&'a str>,
    pub roles: &'a [&'a str],
    pub ttl: Duration,
    pub amr: &'a [&'a str],
    /// Seconds since the Unix epoch.
    pub auth_time: Option<i64>,
}

impl<'a> Claims<'a> {
    /// `sub` in `org` with `roles`, for ten minutes, saying nothing of its sign-in.
    pub fn of(sub: &'a str, org: Option<&'a str>, roles: &'a [&'a str]) -> Self {
        Self { sub, org, roles, ttl: Duration::from_secs(600), amr: &[], auth_time: None }
    }
}

/// gRPC against a [`TestApp`]: channels, requests with a bearer token, and the error id
/// a status carries.
pub mod grpc {
    use factors_api_grpc::pb::google::rpc;
    use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
    use prost::Message;
    use tonic::transport::Channel;
    use tonic::{Code, Request, Status};

    use super::{StoreKind, TestApp};

    /// An HTTP/2 channel to the service's one port.
    pub async fn channel<S: StoreKind>(app: &TestApp<S>) -> Channel {
        Channel::from_shared(app.address.clone()).expect("a valid URI").connect().await.expect("connects over h2c")
    }

    /// `message` with `authorization: Bearer <token>`.
    pub fn authorized<T>(message: T, token: &str) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
        request
    }

    /// The error id a status carries in its `google.rpc.Status` details.
    pub fn error_id(status: &Status) -> String {
        let details = rpc::Status::decode(status.details()).expect("grpc-status-details-bin is a google.rpc.Status");
        assert_eq!(details.code, status.code() as i32);
        let any = details.details.first().expect("one detail");
        assert_eq!(any.type_url, "type.googleapis.com/zitadel.v1.ErrorDetail");
        ErrorDetail::decode(any.value.as_slice()).expect("an ErrorDetail").id
    }

    /// Asserts an error status with this code and error id, the message naming the id.
    #[track_caller]
    pub fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, id: &str) {
        let status = result.expect_err("an error status");
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(error_id(&status), id, "{status:?}");
        assert!(status.message().ends_with(&format!("({id})")), "{status:?}");
    }
}

/// One running service on its own database, on store `S`.
pub struct TestApp<S: StoreKind> {
    pub address: String,
    pub settings: Settings,
    pub sms: Arc<CapturedSms>,
    pub sql: Sql,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Last, so the database is dropped after the server and pool are gone (shared with
    // replicas, dropped with the last of them).
    db: Arc<TestStore>,
    store: std::marker::PhantomData<S>,
}

/// Settings of the test environment pointed at `db`, on a free port.
pub fn test_settings(db: &TestStore) -> Settings {
    let mut settings = Settings::load(Environment::Test).expect("test settings load").settings;
    settings.database.url = Some(db.url().to_owned().into());
    settings.database.create_database = false;
    if let TestStore::Postgres { db, pooled: Some(_) } = db {
        settings.database.pooler = PoolerSetting::Transaction;
        settings.database.migration_url = Some(db.url().to_owned().into());
    }
    settings.server.addr = "127.0.0.1:0".parse().expect("valid address");
    settings
}

impl<S: StoreKind> TestApp<S> {
    /// The store this service runs on, as `/readyz` names it.
    pub fn store(&self) -> &'static str {
        S::NAME
    }

    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with settings adjusted by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestStore::new::<S>().await;
        let mut settings = test_settings(&db);
        adjust(&mut settings);
        Self::spawn_on(Arc::new(db), settings).await
    }

    /// Spawns with Redis: the cache on, SMS limits shared through `redis` (the test's key
    /// prefix), at `url` (the server itself, or a proxy in front of it).
    pub async fn spawn_with_redis(redis: &TestRedis, url: &str) -> Self {
        let (url, prefix) = (url.to_owned(), redis.prefix().to_owned());
        Self::spawn_with(move |settings| {
            settings.redis.url = Some(url.into());
            settings.redis.key_prefix = prefix;
        })
        .await
    }

    /// A second server on the same database and settings (and so the same Redis), as
    /// another replica of the deployment.
    pub async fn replica(&self) -> Self {
        Self::spawn_on(self.db.clone(), self.settings.clone()).await
    }

    /// A second server on the same database, its settings changed by `adjust`: the
    /// deployment after a configuration change.
    pub async fn replica_with(&self, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        Self::spawn_on(self.db.clone(), settings).await
    }

    pub async fn spawn_on(db: Arc<TestStore>, settings: Settings) -> Self {
        Self::spawn_on_capturing(db, settings, true).await
    }

    /// Spawns with settings adjusted by `adjust`, sending SMS through the providers they
    /// configure (stubs the test runs) instead of capturing them: `sms` stays empty.
    pub async fn spawn_sending_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestStore::new::<S>().await;
        let mut settings = test_settings(&db);
        adjust(&mut settings);
        Self::spawn_on_capturing(Arc::new(db), settings, false).await
    }

    async fn spawn_on_capturing(db: Arc<TestStore>, settings: Settings, capture: bool) -> Self {
        let sms = Arc::new(CapturedSms::default());
        let builder = Application::builder(&settings);
        let builder = if capture { builder.sms_sender(sms.clone()) } else { builder };
        let app = builder.build().await.expect("the service builds");
        let address = format!("http://{}", app.addr());
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            sms,
            sql: Sql::open(&db).await,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client"),
            shutdown: Some(shutdown),
            server: Some(server),
            settings,
            db,
            store: std::marker::PhantomData,
        }
    }

    /// Sends `headers` with every REST request from now on (a user agent, a proxy's
    /// `X-Forwarded-For`).
    pub fn send_headers_always(&mut self, headers: reqwest::header::HeaderMap) {
        self.client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .default_headers(headers)
            .build()
            .expect("client");
    }

    /// Stops the server and waits for it, as SIGTERM would.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }

    /// A development token for `sub` in `org` with role specs (`ROLE` or `ROLE:ORG`).
    pub fn token(&self, sub: &str, org: &str, roles: &[&str]) -> String {
        self.token_for(sub, org, roles, Duration::from_secs(600))
    }

    pub fn token_for(&self, sub: &str, org: &str, roles: &[&str], ttl: Duration) -> String {
        self.token_with(Claims { ttl, ..Claims::of(sub, Some(org), roles) })
    }

    /// A token of `sub` in `org` whose user signed in with `amr` at `auth_time`.
    pub fn token_signed_in(
        &self,
        sub: &str,
        org: &str,
        amr: &[&str],
        auth_time: chrono::DateTime<chrono::Utc>,
    ) -> String {
        self.token_with(Claims { amr, auth_time: Some(auth_time.timestamp()), ..Claims::of(sub, Some(org), &[]) })
    }

    /// A development token with exactly `claims`.
    pub fn token_with(&self, claims: Claims<'_>) -> String {
        let Claims { sub, org, roles, ttl, amr, auth_time } = claims;
        let secret = self.settings.auth.hs256_secret.as_ref().expect("test settings carry the dev secret");
        let minter = DevTokenMinter::new(
            &self.settings.auth.issuer,
            &self.settings.auth.audience,
            secret.expose_secret().as_bytes(),
        );
        let roles = roles
            .iter()
            .map(|spec| match spec.split_once(':') {
                Some((role, org)) => RoleClaim { role: role.into(), org: Some(org.into()) },
                None => RoleClaim { role: (*spec).into(), org: None },
            })
            .collect();
        minter
            .mint(&MintRequest {
                sub: sub.into(),
                org: org.map(str::to_owned),
                roles,
                ttl,
                now: chrono::Utc::now().timestamp(),
                amr: amr.iter().map(|m| (*m).to_owned()).collect(),
                auth_time,
            })
            .expect("token minted")
    }

    /// A token of an instance administrator (IAM_OWNER).
    pub fn admin(&self) -> String {
        self.token("iam-admin", "org-admin", &["IAM_OWNER"])
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("answer is not JSON ({status}): {text}"));
        Answer { status, headers, body }
    }

    pub async fn create_user(&self, token: &str, org: &str, body: Value) -> Answer {
        self.send(
            reqwest::Method::POST,
            &format!("/resources/v3alpha/users?organization.orgId={org}"),
            Some(token),
            Some(body),
        )
        .await
    }

    /// Creates user `id` in `org` as the instance administrator.
    pub async fn given_user(&self, id: &str, org: &str) {
        let answer = self
            .create_user(&self.admin(), org, json!({"schemaId": "human", "userId": id, "data": {"name": id}}))
            .await;
        assert_eq!(answer.status, 201, "creating {id}: {}", answer.body);
    }

    pub async fn get_user(&self, token: &str, id: &str) -> Answer {
        self.send(reqwest::Method::GET, &format!("/resources/v3alpha/users/{id}"), Some(token), None).await
    }

    pub async fn delete_user(&self, token: &str, id: &str) -> Answer {
        self.send(reqwest::Method::DELETE, &format!("/resources/v3alpha/users/{id}"), Some(token), None).await
    }

    pub async fn add_otp_sms(&self, token: &str, user: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, &format!("/resources/v3alpha/users/{user}/otp_sms"), Some(token), Some(body))
            .await
    }

    /// Adds a verified authenticator on `phone` as the instance administrator; its id.
    pub async fn given_authenticator(&self, user: &str, phone: &str) -> String {
        let answer = self.add_otp_sms(&self.admin(), user, json!({"number": phone, "isVerified": true})).await;
        assert_eq!(answer.status, 200, "adding {phone} to {user}: {}", answer.body);
        answer.body["otpSmsId"].as_str().expect("otpSmsId").to_owned()
    }

    /// Adds an unverified authenticator on `phone` as an org admin asking for the code;
    /// its id and the code.
    pub async fn given_pending_authenticator(&self, user: &str, phone: &str) -> (String, String) {
        let admin = self.token("admin-a", "org-a", &["ORG_USER_MANAGER"]);
        let added = self.add_otp_sms(&admin, user, json!({"number": phone, "returnCode": {}})).await;
        assert_eq!(added.status, 200, "adding {phone} to {user}: {}", added.body);
        let id = added.body["otpSmsId"].as_str().expect("otpSmsId").to_owned();
        (id, added.body["verificationCode"].as_str().expect("verificationCode").to_owned())
    }

    pub async fn verify_otp_sms(&self, token: &str, user: &str, otp: &str, code: &str) -> Answer {
        let path = format!("/resources/v3alpha/users/{user}/otp_sms/{otp}/_verify");
        self.send(reqwest::Method::POST, &path, Some(token), Some(json!(code))).await
    }

    pub async fn remove_otp_sms(&self, token: Option<&str>, user: &str, otp: &str) -> Answer {
        self.send(reqwest::Method::DELETE, &format!("/resources/v3alpha/users/{user}/otp_sms/{otp}"), token, None).await
    }

    /// Sets the login policy of `org` (the instance default when `None`) as the instance
    /// administrator, through the API, and checks that it was set.
    pub async fn given_login_policy(&self, org: Option<&str>, policy: Value) {
        let path = match org {
            Some(org) => format!("/resources/v3alpha/organizations/{org}/policies/login"),
            None => "/resources/v3alpha/policies/login".to_owned(),
        };
        let answer = self.send(reqwest::Method::PUT, &path, Some(&self.admin()), Some(policy)).await;
        assert_eq!(answer.status, 200, "setting the login policy of {org:?}: {}", answer.body);
    }

    /// The OTP SMS ids GetUser shows for `user` (as the instance administrator).
    pub async fn otp_sms_ids(&self, user: &str) -> Vec<String> {
        let answer = self.get_user(&self.admin(), user).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body["user"]["authenticators"]["otpSms"]
            .as_array()
            .expect("otpSms is a list")
            .iter()
            .map(|a| a["otpSmsId"].as_str().expect("id").to_owned())
            .collect()
    }

    /// A token of a login UI (IAM_LOGIN_CLIENT: the session permissions).
    pub fn login_ui(&self) -> String {
        self.token("login-ui", "org-admin", &["IAM_LOGIN_CLIENT"])
    }

    pub async fn create_session(&self, token: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, "/v2/sessions", Some(token), Some(body)).await
    }

    pub async fn set_session(&self, token: &str, session: &str, body: Value) -> Answer {
        self.send(reqwest::Method::PATCH, &format!("/v2/sessions/{session}"), Some(token), Some(body)).await
    }

    /// GetSession, with the session token in the query when given.
    pub async fn get_session(&self, token: &str, session: &str, session_token: Option<&str>) -> Answer {
        let query = session_token.map(|t| format!("?sessionToken={t}")).unwrap_or_default();
        self.send(reqwest::Method::GET, &format!("/v2/sessions/{session}{query}"), Some(token), None).await
    }

    pub async fn delete_session(&self, token: &str, session: &str, body: Value) -> Answer {
        self.send(reqwest::Method::DELETE, &format!("/v2/sessions/{session}"), Some(token), Some(body)).await
    }

    /// A session checked for `user` with a sign-in code pending, asked back with
    /// `returnCode`: its id, token and code.
    pub async fn given_challenged_session(&self, user: &str) -> (String, String, String) {
        let body = json!({"checks": {"user": {"userId": user}}, "challenges": {"otpSms": {"returnCode": true}}});
        let created = self.create_session(&self.login_ui(), body).await;
        assert_eq!(created.status, 201, "{}", created.body);
        let field = |name: &str| created.body[name].as_str().unwrap_or_else(|| panic!("{name}: {}", created.body));
        let code = created.body["challenges"]["otpSms"].as_str().expect("the code is returned").to_owned();
        (field("sessionId").to_owned(), field("sessionToken").to_owned(), code)
    }

    /// Payloads of the audit events of this type, oldest first.
    pub async fn events(&self, event_type: &str) -> Vec<Value> {
        self.sql.payloads(event_type).await
    }
}

impl<S: StoreKind> Drop for TestApp<S> {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A burst of guesses at `code`: `wrong` wrong six-digit codes all at once and the right
/// one 3 ms later, in the midst of them, each sent by `send`; their answers, in that order.
///
/// # Panics
/// When `code` is not six digits or a guess's task fails.
pub async fn guess_burst<F, Fut>(code: &str, wrong: u32, send: F) -> Vec<Answer>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let right: u32 = code.parse().expect("digits");
    let guesses = (0..=wrong).map(|i| {
        let (guess, delay) = if i == wrong {
            (code.to_owned(), Duration::from_millis(3))
        } else {
            (format!("{:06}", (right + 1 + i) % 1_000_000), Duration::ZERO)
        };
        let answer = send(guess);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            answer.await
        })
    });
    futures::future::join_all(guesses).await.into_iter().map(|a| a.expect("the guess ran")).collect()
}
