//! The notice worker: sends the notices writes leave in the outbox, after they commit.
//!
//! A notice is claimed for a lease before it is sent and deleted once the provider took
//! it. A worker that dies mid-send (a crash, a kill, a shutdown that does not wait) leaves
//! the notice claimed; once the lease runs out, a worker (this one restarted, or another
//! replica's) claims and sends it again, under the same idempotency key, so a provider that
//! honours the key delivers it once. A notice whose send fails is tried again later, with
//! a growing pause, until [`NoticeOptions::max_attempts`].
//!
//! Every try counts against the SMS limit of the number it goes to
//! ([`SmsRateLimiter::try_acquire_notice`]): removals of numbers nobody proved (an
//! administrator may store any number verified) must not text a stranger without limit. A
//! notice to a number over its limit is not sent now but made due again when the number's
//! window has room, so that nobody can spend the limit with codes first and make a removal
//! go untold; like a failed send, this uses one of its tries.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use factors_domain::{InstanceId, Notice};
use tokio::sync::Notify;

use crate::ports::{
    ClaimedNotice, Clock, NoticeKind, NoticeSms, Outbox, RateLimited, SecurityMetrics, SmsError, SmsRateLimiter,
    SmsSender, Unexpected,
};

/// How the worker paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeOptions {
    /// How long a claim holds: longer than a send may take (the SMS request timeout), or
    /// a slow send could be claimed and sent a second time.
    pub lease: Duration,
    /// How often the outbox is looked at without being woken (for notices another
    /// replica's writes left, and leases that ran out).
    pub poll_interval: Duration,
    /// How many notices one claim takes.
    pub batch: u32,
    /// How many tries a notice gets before it is given up (and logged as such).
    pub max_attempts: u32,
    /// The pause after the first failed try; it doubles with each further one.
    pub first_retry: Duration,
    /// The longest pause between tries.
    pub max_retry: Duration,
}

impl Default for NoticeOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            batch: 20,
            max_attempts: 10,
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(15 * 60),
        }
    }
}

impl NoticeOptions {
    /// The pause after failed try `attempt` (from 1).
    pub fn retry_after(&self, attempt: u32) -> Duration {
        let doubled = self.first_retry.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        doubled.min(self.max_retry)
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub failed: usize,
    pub given_up: usize,
    /// Put off: the number had reached its SMS limit.
    pub limited: usize,
}

pub struct NoticeWorker {
    /// The instance whose outbox this is: part of every notice's idempotency key, so that
    /// instances sharing one SMS receiver never deduplicate each other's notices.
    pub instance: InstanceId,
    pub outbox: Arc<dyn Outbox>,
    pub sms: Arc<dyn SmsSender>,
    /// Counts every try against the SMS limit of its number.
    pub limits: Arc<dyn SmsRateLimiter>,
    pub clock: Arc<dyn Clock>,
    pub options: NoticeOptions,
    /// Woken by writes that left a notice.
    pub ready: Arc<Notify>,
    /// Told, after each round, how long the oldest notice left has waited.
    pub metrics: Arc<dyn SecurityMetrics>,
}

/// Why a try of a notice did not hand it over.
#[derive(Debug, thiserror::Error)]
enum Unsent {
    /// The number reached its SMS limit: tried again when its window has room.
    #[error("the number reached its SMS limit")]
    Limited(RateLimited),
    /// The provider refused it or could not be reached: tried again after a growing pause.
    #[error("the SMS provider failed: {0}")]
    Failed(SmsError),
}

fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

impl NoticeWorker {
    /// Sends every notice due now, claim by claim, until a claim finds fewer than a batch.
    ///
    /// # Errors
    /// [`Unexpected`] when the outbox cannot be read or written; what was claimed and not
    /// recorded is claimed again once its lease runs out.
    pub async fn deliver_due(&self) -> Result<Delivered, Unexpected> {
        let mut delivered = Delivered::default();
        loop {
            let now = self.clock.now();
            let claimed = self.outbox.claim_notices(now, now + delta(self.options.lease), self.options.batch).await?;
            let full = u32::try_from(claimed.len()).unwrap_or(u32::MAX) >= self.options.batch;
            for notice in claimed {
                self.deliver(notice, &mut delivered).await?;
            }
            if !full {
                return Ok(delivered);
            }
        }
    }

    async fn deliver(&self, claimed: ClaimedNotice, delivered: &mut Delivered) -> Result<(), Unexpected> {
        let ClaimedNotice { notice, kind, attempt } = claimed;
        let unsent = match self.send(&notice, kind).await {
            Ok(()) => {
                self.outbox.finish_notice(&notice.id, attempt).await?;
                delivered.sent += 1;
                return Ok(());
            }
            Err(unsent) => unsent,
        };
        if attempt >= self.options.max_attempts {
            tracing::error!(
                notice_id = %notice.id,
                user_id = %notice.user,
                to = %notice.to.masked(),
                kind = kind.as_str(),
                attempt,
                reason = %unsent,
                "notice given up after its last try"
            );
            self.outbox.finish_notice(&notice.id, attempt).await?;
            delivered.given_up += 1;
            return Ok(());
        }
        let pause = match &unsent {
            Unsent::Limited(limited) => {
                delivered.limited += 1;
                limited.retry_after
            }
            Unsent::Failed(_) => {
                delivered.failed += 1;
                self.options.retry_after(attempt)
            }
        };
        tracing::warn!(
            notice_id = %notice.id,
            to = %notice.to.masked(),
            kind = kind.as_str(),
            attempt,
            retry_in_s = pause.as_secs(),
            reason = %unsent,
            "notice not sent; it will be tried again"
        );
        self.outbox.retry_notice(&notice.id, attempt, self.clock.now() + delta(pause)).await
    }

    /// Hands `notice` to the provider under a permit of its number's SMS limit, given back
    /// when the send fails.
    async fn send(&self, notice: &Notice, kind: NoticeKind) -> Result<(), Unsent> {
        let permit = self.limits.try_acquire_notice(&notice.to).await.map_err(Unsent::Limited)?;
        let sms = NoticeSms {
            id: format!("{}/{}", self.instance.as_str(), notice.id),
            to: notice.to.clone(),
            kind,
            user: notice.user.clone(),
        };
        let sent = self.sms.send_notice(&sms).await;
        if sent.is_err() {
            self.limits.release(&notice.user, &notice.to, permit).await;
        }
        sent.map_err(Unsent::Failed)
    }

    /// Reports how long the oldest notice left in the outbox has waited.
    ///
    /// # Errors
    /// [`Unexpected`] when the outbox cannot be read.
    pub async fn observe_outbox(&self) -> Result<(), Unexpected> {
        let waited = match self.outbox.oldest_notice().await? {
            Some(written) => (self.clock.now() - written).to_std().unwrap_or_default(),
            None => Duration::ZERO,
        };
        self.metrics.notice_outbox_oldest(waited);
        Ok(())
    }

    /// Sends notices as they become due, until the task is dropped: when woken by a write,
    /// and every poll interval.
    pub async fn run(self) {
        let mut observed: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = self.deliver_due().await {
                tracing::warn!(error = %e.0, "the notice outbox could not be read; trying again at the next poll");
            }
            // Once per poll interval at most: a write that leaves a notice wakes the worker,
            // and the gauge need not cost each such write a read.
            if observed.is_none_or(|at| at.elapsed() >= self.options.poll_interval) {
                observed = Some(tokio::time::Instant::now());
                if let Err(e) = self.observe_outbox().await {
                    tracing::debug!(error = %e.0, "the notice outbox's oldest entry could not be read");
                }
            }
            tokio::select! {
                () = self.ready.notified() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{LimitScope, MockOutbox, MockSecurityMetrics, MockSmsRateLimiter, MockSmsSender, SmsPermit};
    use crate::use_cases::fixtures::{at, clock, user_id};
    use chrono::{DateTime, Utc};
    use factors_domain::PhoneNumber;

    fn claimed(id: &str, attempt: u32) -> ClaimedNotice {
        ClaimedNotice {
            notice: Notice {
                id: id.to_owned(),
                user: user_id("alice"),
                to: PhoneNumber::parse("+41791234567").expect("valid"),
                created: at(1),
            },
            kind: NoticeKind::OtpSmsRemoved,
            attempt,
        }
    }

    /// A limiter that admits every notice, and expects failed sends to give theirs back.
    fn unlimited(given_back: usize) -> MockSmsRateLimiter {
        let mut limits = MockSmsRateLimiter::new();
        limits.expect_try_acquire_notice().returning(|_| Ok(SmsPermit("p".into())));
        limits.expect_release().times(given_back).returning(|_, _, _| ());
        limits
    }

    fn worker(outbox: MockOutbox, sms: MockSmsSender) -> NoticeWorker {
        limited_worker(outbox, sms, unlimited(0))
    }

    fn limited_worker(outbox: MockOutbox, sms: MockSmsSender, limits: MockSmsRateLimiter) -> NoticeWorker {
        NoticeWorker {
            instance: InstanceId::new("inst").expect("valid"),
            outbox: Arc::new(outbox),
            sms: Arc::new(sms),
            limits: Arc::new(limits),
            clock: clock(at(10)),
            options: NoticeOptions { batch: 2, max_attempts: 3, ..NoticeOptions::default() },
            ready: Arc::new(Notify::new()),
            metrics: Arc::new(MockSecurityMetrics::new()),
        }
    }

    #[tokio::test]
    async fn the_oldest_notice_left_is_reported_with_how_long_it_waited_and_an_empty_outbox_as_zero() {
        for (oldest, waited) in [(Some(at(7)), 180), (None, 0)] {
            let mut outbox = MockOutbox::new();
            outbox.expect_oldest_notice().times(1).returning(move || Ok(oldest));
            let mut metrics = MockSecurityMetrics::new();
            metrics
                .expect_notice_outbox_oldest()
                .withf(move |w| *w == Duration::from_secs(waited))
                .times(1)
                .return_const(());
            let worker = NoticeWorker { metrics: Arc::new(metrics), ..worker(outbox, MockSmsSender::new()) };

            worker.observe_outbox().await.expect("read");
        }
    }

    #[tokio::test]
    async fn a_sent_notice_is_deleted_under_its_claim_and_claims_go_on_while_they_come_back_full() {
        let mut outbox = MockOutbox::new();
        let mut claims = mockall::Sequence::new();
        outbox
            .expect_claim_notices()
            .withf(|now, until, limit| *now == at(10) && *until == at(11) && *limit == 2)
            .times(1)
            .in_sequence(&mut claims)
            .returning(|_, _, _| Ok(vec![claimed("alice/3", 1), claimed("bob/7", 2)]));
        outbox.expect_claim_notices().times(1).in_sequence(&mut claims).returning(|_, _, _| Ok(vec![]));
        outbox
            .expect_finish_notice()
            .withf(|id, attempt| id == "alice/3" && *attempt == 1)
            .times(1)
            .returning(|_, _| Ok(()));
        outbox
            .expect_finish_notice()
            .withf(|id, attempt| id == "bob/7" && *attempt == 2)
            .times(1)
            .returning(|_, _| Ok(()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_notice()
            .withf(|sms| {
                sms.to.as_e164() == "+41791234567"
                    && sms.kind == NoticeKind::OtpSmsRemoved
                    && ["inst/alice/3", "inst/bob/7"].contains(&sms.id.as_str())
            })
            .times(2)
            .returning(|_| Ok(()));

        let delivered = worker(outbox, sms).deliver_due().await.expect("delivered");

        assert_eq!(delivered, Delivered { sent: 2, ..Delivered::default() });
    }

    /// An outbox that hands out notice `id` on try `attempt`, and expects it back due at `due`.
    fn put_off(id: &'static str, attempt: u32, due: DateTime<Utc>) -> MockOutbox {
        let mut outbox = MockOutbox::new();
        outbox.expect_claim_notices().times(1).returning(move |_, _, _| Ok(vec![claimed(id, attempt)]));
        outbox
            .expect_retry_notice()
            .withf(move |given, tried, when| given == id && *tried == attempt && *when == due)
            .times(1)
            .returning(|_, _, _| Ok(()));
        outbox.expect_finish_notice().never();
        outbox
    }

    /// An outbox that hands out notice `id` on try `attempt`, and expects it finished.
    fn finished(id: &'static str, attempt: u32) -> MockOutbox {
        let mut outbox = MockOutbox::new();
        outbox.expect_claim_notices().times(1).returning(move |_, _, _| Ok(vec![claimed(id, attempt)]));
        outbox.expect_retry_notice().never();
        outbox
            .expect_finish_notice()
            .withf(move |given, tried| given == id && *tried == attempt)
            .times(1)
            .returning(|_, _| Ok(()));
        outbox
    }

    #[tokio::test]
    async fn a_failed_send_is_tried_again_later_and_given_up_after_the_last_try() {
        let outbox = put_off("alice/3", 1, at(10) + TimeDelta::seconds(5));
        let mut sms = MockSmsSender::new();
        sms.expect_send_notice().times(1).returning(|_| Err(SmsError(anyhow::anyhow!("provider down"))));
        let delivered = limited_worker(outbox, sms, unlimited(1)).deliver_due().await.expect("pass done");
        assert_eq!(delivered, Delivered { failed: 1, ..Delivered::default() }, "its SMS permit given back");

        let outbox = finished("alice/5", 3);
        let mut sms = MockSmsSender::new();
        sms.expect_send_notice().times(1).returning(|_| Err(SmsError(anyhow::anyhow!("provider down"))));
        let delivered = limited_worker(outbox, sms, unlimited(1)).deliver_due().await.expect("pass done");
        assert_eq!(delivered, Delivered { given_up: 1, ..Delivered::default() });
    }

    /// A limiter that finds the number at its limit, with room again in 90 seconds.
    fn at_its_limit() -> MockSmsRateLimiter {
        let mut limits = MockSmsRateLimiter::new();
        limits
            .expect_try_acquire_notice()
            .withf(|to| to.as_e164() == "+41791234567")
            .times(1)
            .returning(|_| Err(RateLimited { scope: LimitScope::Phone, retry_after: Duration::from_secs(90) }));
        limits
    }

    #[tokio::test]
    async fn a_notice_to_a_number_at_its_sms_limit_waits_unsent_until_the_window_has_room() {
        let outbox = put_off("alice/3", 1, at(10) + TimeDelta::seconds(90));
        let mut sms = MockSmsSender::new();
        sms.expect_send_notice().never();

        let delivered = limited_worker(outbox, sms, at_its_limit()).deliver_due().await.expect("pass done");

        assert_eq!(delivered, Delivered { limited: 1, ..Delivered::default() });
    }

    #[tokio::test]
    async fn a_notice_still_at_the_limit_on_its_last_try_is_given_up() {
        let outbox = finished("alice/3", 3);
        let mut sms = MockSmsSender::new();
        sms.expect_send_notice().never();

        let delivered = limited_worker(outbox, sms, at_its_limit()).deliver_due().await.expect("pass done");

        assert_eq!(delivered, Delivered { given_up: 1, ..Delivered::default() });
    }

    #[test]
    fn pauses_double_up_to_the_longest() {
        let options = NoticeOptions {
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(60),
            ..NoticeOptions::default()
        };
        let pauses: Vec<u64> = (1..=6).map(|attempt| options.retry_after(attempt).as_secs()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 60, 60]);
        assert_eq!(options.retry_after(u32::MAX), Duration::from_secs(60));
    }
}
