//! Several providers in order (`sms.providers`): each SMS goes to the first whose circuit
//! is closed, and to the next only when that one certainly did not take it
//! ([`SendFailure::certainly_unsent`]). After a timeout the SMS may be on its way, so it is
//! not handed to another provider: the user would get two codes, and the operator pay
//! twice. A provider that fails (a timeout too) `failures` times in a row is skipped for
//! `cool_down`, then tried again by the next SMS; one success closes its circuit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use factors_application::ports::{CodeSms, NoticeSms, SmsError, SmsSender};

use crate::{Provider, SendFailure};

/// When a provider is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailoverConfig {
    /// Failures in a row that open a provider's circuit.
    pub failures: u32,
    /// How long an open circuit skips its provider.
    pub cool_down: Duration,
}

/// One provider and its circuit.
struct Member {
    provider: Provider,
    sender: Arc<dyn SmsSender>,
    circuit: Mutex<Circuit>,
}

#[derive(Debug, Default)]
struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
}

/// The providers in order, each behind a circuit breaker.
pub struct FailoverSender {
    members: Vec<Member>,
    config: FailoverConfig,
}

impl FailoverSender {
    pub fn new(providers: Vec<(Provider, Arc<dyn SmsSender>)>, config: FailoverConfig) -> Self {
        let members = providers
            .into_iter()
            .map(|(provider, sender)| Member { provider, sender, circuit: Mutex::new(Circuit::default()) })
            .collect();
        Self { members, config }
    }

    /// The providers to try, in order: those whose circuit is closed (or whose cool-down
    /// is over); every one, in order, when all are open, since refusing outright helps no
    /// one.
    fn candidates(&self) -> Vec<&Member> {
        let now = Instant::now();
        let closed: Vec<&Member> =
            self.members.iter().filter(|m| lock(&m.circuit).open_until.is_none_or(|until| until <= now)).collect();
        if closed.is_empty() { self.members.iter().collect() } else { closed }
    }

    fn succeeded(member: &Member) {
        let mut circuit = lock(&member.circuit);
        if circuit.open_until.is_some() {
            tracing::warn!(provider = member.provider.label(), "the SMS provider answers again: its circuit closed");
        }
        *circuit = Circuit::default();
    }

    fn failed(&self, member: &Member) {
        let mut circuit = lock(&member.circuit);
        circuit.failures += 1;
        if circuit.failures >= self.config.failures {
            if circuit.open_until.is_none_or(|until| until <= Instant::now()) {
                tracing::warn!(
                    provider = member.provider.label(),
                    cool_down_s = self.config.cool_down.as_secs(),
                    "the SMS provider keeps failing: it is skipped for the cool-down"
                );
            }
            circuit.open_until = Some(Instant::now() + self.config.cool_down);
        }
    }

    /// Sends through the first provider that takes it; moves on only past a provider that
    /// certainly did not.
    async fn send<'a, F, Fut>(&'a self, send: F) -> Result<(), SmsError>
    where
        F: Fn(&'a dyn SmsSender) -> Fut,
        Fut: Future<Output = Result<(), SmsError>>,
    {
        let mut last = None;
        for member in self.candidates() {
            match send(member.sender.as_ref()).await {
                Ok(()) => {
                    Self::succeeded(member);
                    return Ok(());
                }
                Err(error) => {
                    self.failed(member);
                    let unsent = error.0.downcast_ref::<SendFailure>().is_some_and(SendFailure::certainly_unsent);
                    if !unsent {
                        return Err(error);
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| SmsError(anyhow::anyhow!("no SMS provider is configured"))))
    }
}

fn lock(circuit: &Mutex<Circuit>) -> std::sync::MutexGuard<'_, Circuit> {
    circuit.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl SmsSender for FailoverSender {
    async fn send_code(&self, sms: &CodeSms) -> Result<(), SmsError> {
        self.send(|sender| sender.send_code(sms)).await
    }

    /// The notice keeps its id, its idempotency key, whichever provider sends it.
    async fn send_notice(&self, sms: &NoticeSms) -> Result<(), SmsError> {
        self.send(|sender| sender.send_notice(sms)).await
    }
}
