//! What the provider tests share: an SMS to send, senders of both providers pointed at a
//! local stub, a raw TCP provider that misbehaves in ways wiremock cannot, and the check
//! that an error says nothing it must not.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use factors_adapters_sms::{
    Provider, SmsMetrics, SmsTexts, TextConfig, Timeouts, TwilioConfig, TwilioFrom, TwilioSender, WebhookConfig,
    WebhookSecret, WebhookSender,
};
use factors_application::ports::{CodeSms, NoticeKind, NoticeSms, SmsError, SmsPurpose, SmsSender};
use factors_domain::{PhoneNumber, UserId, VerificationCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const NUMBER: &str = "+41791234567";
pub const CODE: u32 = 739_146;
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "twilio-auth-token-0123456789abcdef";
pub const TWILIO_FROM: &str = "+15005550006";
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// What a provider's error answer says; it must never reach an error or a log.
pub const PROVIDER_SAYS: &str = "PROVIDER-SAYS: The 'To' number +41791234567 is not valid; code 739146";

pub fn sms(purpose: SmsPurpose) -> CodeSms {
    CodeSms {
        to: PhoneNumber::parse(NUMBER).expect("valid number"),
        code: VerificationCode::from_number(CODE),
        purpose,
        user: UserId::new("user-1").expect("valid id"),
    }
}

/// What the default removal notice reads with the app name of [`texts`].
pub const REMOVAL_NOTICE: &str =
    "A phone number was removed from your Acme account. If this wasn't you, contact your administrator.";

/// The removal notice with outbox id `id`.
pub fn notice(id: &str) -> NoticeSms {
    NoticeSms {
        id: id.to_owned(),
        to: PhoneNumber::parse(NUMBER).expect("valid number"),
        kind: NoticeKind::OtpSmsRemoved,
        user: UserId::new("user-1").expect("valid id"),
    }
}

pub fn texts() -> SmsTexts {
    SmsTexts::new(&TextConfig {
        app_name: Some("Acme".into()),
        code_ttl: Duration::from_secs(600),
        sign_in_ttl: Duration::from_secs(300),
        ..TextConfig::default()
    })
    .expect("valid texts")
}

pub fn timeouts(request: Duration) -> Timeouts {
    Timeouts { request, connect: request }
}

pub fn twilio(base_url: &str, from: TwilioFrom, timeouts: Timeouts, metrics: SmsMetrics) -> TwilioSender {
    let config = TwilioConfig {
        base_url: base_url.to_owned(),
        account_sid: ACCOUNT_SID.to_owned(),
        auth_token: AUTH_TOKEN.to_owned().into(),
        from,
        timeouts,
    };
    TwilioSender::new(config, Arc::new(texts()), metrics).expect("a valid Twilio sender")
}

pub fn webhook_secret() -> WebhookSecret {
    WebhookSecret::parse(WEBHOOK_SECRET).expect("valid secret")
}

pub fn webhook(url: &str, timeouts: Timeouts, metrics: SmsMetrics) -> WebhookSender {
    let config = WebhookConfig { url: url.to_owned(), secret: webhook_secret(), timeouts };
    WebhookSender::new(config, Arc::new(texts()), metrics).expect("a valid webhook sender")
}

/// A sender of `provider` whose requests go to `base` (a stub's address, no path).
pub fn sender(provider: Provider, base: &str, timeouts: Timeouts, metrics: SmsMetrics) -> Arc<dyn SmsSender> {
    match provider {
        Provider::Twilio => Arc::new(twilio(base, TwilioFrom::Number(TWILIO_FROM.into()), timeouts, metrics)),
        Provider::Webhook => Arc::new(webhook(&format!("{base}/hooks/sms"), timeouts, metrics)),
        Provider::Log => unreachable!("the logging sender makes no requests"),
    }
}

/// The path `sender(provider, …)` posts to.
pub fn path(provider: Provider) -> String {
    match provider {
        Provider::Twilio => format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"),
        Provider::Webhook => "/hooks/sms".to_owned(),
        Provider::Log => unreachable!("the logging sender makes no requests"),
    }
}

/// Everything an error shows: its message, every cause's message, and its `Debug`.
pub fn everything_said(error: &SmsError) -> String {
    let mut said = format!("{error}\n{error:?}\n");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = cause {
        said.push_str(&format!("{current}\n{current:?}\n"));
        cause = current.source();
    }
    said
}

/// Asserts that `error` shows neither the code, the number (in any form), the provider's
/// answer nor a credential.
pub fn assert_discreet(error: &SmsError) {
    let said = everything_said(error);
    for secret in [
        "739146",
        NUMBER,
        "791234567",
        "PROVIDER-SAYS",
        "not valid",
        AUTH_TOKEN,
        WEBHOOK_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ] {
        assert!(!said.contains(secret), "the error shows {secret:?}:\n{said}");
    }
}

/// A port on which nothing listens.
pub fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// What the raw provider does with each request it has read in full.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Closes the connection without a word.
    Close,
    /// Answers something that is not HTTP.
    Garbage,
    /// Answers 201 and keeps the connection open for the next request.
    Accept,
}

/// A provider on a raw TCP socket, counting the requests it has read in full (headers and
/// body), on any connection. `behaviour(n)` decides for the n-th request (from 0).
pub struct RawProvider {
    pub base: String,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RawProvider {
    pub async fn start(behaviour: fn(usize) -> Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (counted, accepted) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let counted = counted.clone();
                tokio::spawn(async move {
                    while read_request(&mut socket).await {
                        let n = counted.fetch_add(1, Ordering::SeqCst);
                        match behaviour(n) {
                            Misbehaviour::Close => return,
                            Misbehaviour::Garbage => {
                                let _ = socket.write_all(b"this is not HTTP at all\r\n\r\n").await;
                                return;
                            }
                            Misbehaviour::Accept => {
                                let answer = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                                if socket.write_all(answer).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Self { base, requests, connections, task }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (headers, then `content-length` bytes of body); false when
/// the connection ends first.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0_u8; length];
    socket.read_exact(&mut body).await.is_ok()
}
