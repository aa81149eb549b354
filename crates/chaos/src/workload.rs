//! The clients and their history: adds, removals and GetUsers on a shared set of users,
//! each call recorded with when it started, when it ended and what it came to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Add { user: String, phone: String },
    Remove { user: String, otp: String },
    Get { user: String },
}

impl Op {
    pub fn user(&self) -> &str {
        match self {
            Self::Add { user, .. } | Self::Remove { user, .. } | Self::Get { user } => user,
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self, Self::Get { .. })
    }
}

/// What a call came to, as the client can know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 200 (or 201), with its body.
    Ok(Value),
    /// A 4xx in the contract's format: the call definitely changed nothing.
    Refused(u16),
    /// 503 with `Retry-After`, or 504, in the contract's format: it may have landed or not.
    Unavailable(u16),
    /// No answer in time, or the connection broke: it may have landed or not.
    Lost(String),
    /// Anything the contract does not allow: a 500, an error without a `google.rpc.Status`
    /// body, a 503 without `Retry-After`.
    OutsideContract(u16, String),
}

impl Outcome {
    /// Whether the call may have taken effect without the client knowing.
    pub fn indeterminate(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Lost(_))
    }

    pub fn kind(&self) -> String {
        match self {
            Self::Ok(_) => "200".to_owned(),
            Self::Refused(status) | Self::Unavailable(status) => status.to_string(),
            Self::Lost(_) => "no answer".to_owned(),
            Self::OutsideContract(status, _) => format!("{status} outside the contract"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub round: usize,
    pub op: Op,
    /// Seconds since the run began.
    pub start: f64,
    pub end: f64,
    pub outcome: Outcome,
}

/// What every client shares: the history, the authenticators known to exist, and the
/// next number of each user.
pub struct Shared {
    pub base: String,
    pub token: String,
    pub users: Vec<String>,
    pub began: Instant,
    pub history: Mutex<Vec<Entry>>,
    known: Mutex<HashMap<String, Vec<String>>>,
    numbers: Mutex<HashMap<String, u32>>,
    client: reqwest::Client,
}

impl Shared {
    pub fn new(base: String, token: String, users: Vec<String>, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            base,
            token,
            users,
            began: Instant::now(),
            history: Mutex::new(Vec::new()),
            known: Mutex::new(HashMap::new()),
            numbers: Mutex::new(HashMap::new()),
            client: reqwest::Client::builder().timeout(timeout).pool_max_idle_per_host(4).build()?,
        })
    }

    pub fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn entries(&self) -> Vec<Entry> {
        Self::lock(&self.history).clone()
    }

    /// Creates `user` in `org`, retrying until it exists (409 counts: a retry after a lost
    /// answer).
    pub async fn create_user(&self, user: &str, org: &str) -> anyhow::Result<()> {
        let url = format!("{}/resources/v3alpha/users?organization.orgId={org}", self.base);
        let body = json!({"schemaId": "human", "userId": user, "data": {"name": user}});
        for _ in 0..50 {
            match self.client.post(&url).bearer_auth(&self.token).json(&body).send().await {
                Ok(answer) if answer.status().is_success() || answer.status() == StatusCode::CONFLICT => return Ok(()),
                Ok(answer) if answer.status().is_client_error() => {
                    anyhow::bail!("creating {user}: {} {}", answer.status(), answer.text().await.unwrap_or_default())
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        anyhow::bail!("creating {user}: no success in 50 tries")
    }

    async fn call(&self, op: &Op) -> Outcome {
        let users = format!("{}/resources/v3alpha/users", self.base);
        let request = match op {
            Op::Add { user, phone } => {
                self.client.post(format!("{users}/{user}/otp_sms")).json(&json!({"number": phone, "returnCode": {}}))
            }
            Op::Remove { user, otp } => self.client.delete(format!("{users}/{user}/otp_sms/{otp}")),
            Op::Get { user } => self.client.get(format!("{users}/{user}")),
        };
        let answer = match request.bearer_auth(&self.token).send().await {
            Ok(answer) => answer,
            Err(e) => return Outcome::Lost(e.to_string()),
        };
        let status = answer.status();
        let retry_after = answer.headers().contains_key(reqwest::header::RETRY_AFTER);
        let text = match answer.text().await {
            Ok(text) => text,
            Err(e) => return Outcome::Lost(e.to_string()),
        };
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return Outcome::Ok(body.unwrap_or(Value::Null));
        }
        let is_status = body.as_ref().is_some_and(|b| b["code"].is_i64() && b["message"].is_string());
        match status.as_u16() {
            400..=499 if is_status => Outcome::Refused(status.as_u16()),
            503 if is_status && retry_after => Outcome::Unavailable(503),
            504 if is_status => Outcome::Unavailable(504),
            code => Outcome::OutsideContract(code, text.chars().take(200).collect()),
        }
    }

    /// Runs one call and records it; keeps the known authenticators up to date.
    async fn run(&self, round: usize, op: Op) {
        let start = self.now();
        let outcome = self.call(&op).await;
        let end = self.now();
        match (&op, &outcome) {
            (Op::Add { user, .. }, Outcome::Ok(body)) => {
                if let Some(otp) = body["otpSmsId"].as_str() {
                    Self::lock(&self.known).entry(user.clone()).or_default().push(otp.to_owned());
                }
            }
            // Gone, by this call or another: no use removing it again.
            (Op::Remove { user, otp }, Outcome::Ok(_) | Outcome::Refused(404)) => {
                if let Some(list) = Self::lock(&self.known).get_mut(user) {
                    list.retain(|o| o != otp);
                }
            }
            _ => {}
        }
        Self::lock(&self.history).push(Entry { round, op, start, end, outcome });
    }

    /// The next call of a client: an add, a removal of a known authenticator (an add when
    /// the user has none) or a GetUser, on a user picked at random.
    fn next_op(&self, random: &mut Random) -> Op {
        let user = self.users[random.below(self.users.len())].clone();
        let roll = random.below(100);
        if roll < 25 {
            return Op::Get { user };
        }
        if roll < 65 {
            let known = Self::lock(&self.known);
            if let Some(list) = known.get(&user).filter(|l| !l.is_empty()) {
                let otp = list[random.below(list.len())].clone();
                return Op::Remove { user, otp };
            }
        }
        let index = self.users.iter().position(|u| *u == user).unwrap_or_default();
        let mut numbers = Self::lock(&self.numbers);
        let n = numbers.entry(user.clone()).or_insert(0);
        *n += 1;
        Op::Add { user, phone: format!("+4179{:03}{:04}", index % 1000, *n % 10_000) }
    }
}

/// A client: calls one after another until `stop`.
pub async fn client(shared: Arc<Shared>, seed: u64, round: usize, stop: Arc<AtomicBool>) {
    let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while !stop.load(Ordering::Relaxed) {
        let op = shared.next_op(&mut random);
        shared.run(round, op).await;
    }
}

/// xorshift64: enough to spread calls, and repeatable for a seed.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % (n.max(1) as u64)).unwrap_or_default()
    }
}
