//! GetSmsGuard and CloseSmsBreaker (factors' own `factors.sms.v1.SmsGuard`): the operator's
//! view of the SMS guard against toll fraud (its settings, and the state of every region's
//! breaker), and closing a breaker by hand once the region's traffic is known to be
//! people's.
//!
//! The guard's settings are the instance's, as the instance default login policy is: the
//! same permissions, instance-wide, say who may (`policy.read` to read, `policy.write` to
//! close; `IAM_OWNER` holds both). Breakers count per process, so both answer for the
//! replica that serves the call; the others follow a closing at their next code to the
//! region (`SmsGuard::may_send`).

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{AccessRefusal, Caller, PhoneNumber, Scope, may_read_policy, may_write_policy};

use crate::sms_guard::{GuardSettings, RegionBreaker, SmsGuard};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

/// The guard as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardView {
    pub settings: GuardSettings,
    /// Every region this replica has sent a code to, or verified one of, since it started,
    /// by region code.
    pub breakers: Vec<RegionBreaker>,
    /// The replica that answers (breakers count per replica).
    pub replica: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmsGuardError {
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    /// The region to close is no CLDR region code (nor `001`).
    #[error("no region is called {0:?}")]
    InvalidRegion(String),
}

impl From<SmsGuardError> for Failure {
    fn from(error: SmsGuardError) -> Self {
        match error {
            SmsGuardError::Access(e) => e.into(),
            SmsGuardError::InvalidRegion(_) => Failure::new(
                ErrorKind::InvalidArgument,
                "SMS-InvalidRegion",
                "the region must be a two-letter region code (CH) or 001 for numbers of no country",
            ),
        }
    }
}

/// Reads the SMS guard and closes its breakers.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SmsGuardControl: Send + Sync {
    /// The guard's settings and every region's breaker.
    ///
    /// # Errors
    /// [`SmsGuardError::Access`] without `policy.read` instance-wide.
    async fn get_sms_guard(&self, caller: &Caller) -> Result<GuardView, SmsGuardError>;

    /// Closes the breaker of `region` (a region code, any case) by hand, with a fresh
    /// count, and records who did; a closed one stays as it is and nothing is recorded.
    ///
    /// # Errors
    /// [`SmsGuardError::Access`] without `policy.write` instance-wide (checked first);
    /// [`SmsGuardError::InvalidRegion`].
    async fn close_sms_breaker(&self, caller: &Caller, region: &str) -> Result<ClosedBreaker, SmsGuardError>;
}

/// A breaker after CloseSmsBreaker, and the replica whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedBreaker {
    pub breaker: RegionBreaker,
    pub replica: String,
}

pub struct SmsGuardService {
    pub guard: Arc<SmsGuard>,
}

#[async_trait]
impl SmsGuardControl for SmsGuardService {
    #[tracing::instrument(name = "get_sms_guard", level = "debug", skip_all, fields(actor = %caller.user_id), err(level = "debug", Display))]
    async fn get_sms_guard(&self, caller: &Caller) -> Result<GuardView, SmsGuardError> {
        may_read_policy(caller, &Scope::Instance)?;
        let breakers = self.guard.breakers().await;
        Ok(GuardView { settings: self.guard.settings(), breakers, replica: self.guard.replica().to_owned() })
    }

    #[tracing::instrument(name = "close_sms_breaker", level = "debug", skip_all, fields(actor = %caller.user_id), err(level = "debug", Display))]
    async fn close_sms_breaker(&self, caller: &Caller, region: &str) -> Result<ClosedBreaker, SmsGuardError> {
        may_write_policy(caller, &Scope::Instance)?;
        let code = region.trim().to_ascii_uppercase();
        if !PhoneNumber::is_region(&code) {
            return Err(SmsGuardError::InvalidRegion(region.to_owned()));
        }
        let breaker = self.guard.close(caller, &code).await;
        Ok(ClosedBreaker { breaker, replica: self.guard.replica().to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use factors_domain::{BreakerChange, BreakerRule, BreakerState, Permission, SmsBudgets, SmsCountries};

    use super::*;
    use crate::ports::MockPolicyStore;
    use crate::sms_guard::BreakerMode;
    use crate::use_cases::fixtures::{at, caller, clock, no_metrics};

    fn rule() -> BreakerRule {
        BreakerRule {
            threshold: 0.5,
            min_sends: 2,
            window: TimeDelta::hours(1),
            cool_down: TimeDelta::minutes(10),
            probes: 2,
        }
    }

    fn service(events: MockPolicyStore) -> SmsGuardService {
        let settings = GuardSettings {
            countries: SmsCountries::new(&[], &["KP".into()]).expect("valid"),
            budgets: SmsBudgets::OFF,
            breaker: Some((rule(), BreakerMode::Enforce)),
        };
        let guard = SmsGuard::new(settings, Arc::new(events), "web-1#3".into(), clock(at(1)), no_metrics());
        SmsGuardService { guard: Arc::new(guard) }
    }

    fn owner() -> Caller {
        caller("iam-owner", &[(Permission::PolicyRead, None), (Permission::PolicyWrite, None)])
    }

    #[tokio::test]
    async fn an_opening_is_recorded_shown_and_closed_by_hand_with_who_closed_it() {
        let mut events = MockPolicyStore::new();
        events
            .expect_record_breaker()
            .withf(|e| {
                (e.region.as_str(), e.change, e.actor.is_none(), e.sent) == ("GN", BreakerChange::Opened, true, 2)
            })
            .times(1)
            .returning(|_| Ok(()));
        events
            .expect_record_breaker()
            .withf(|e| {
                let actor = e.actor.as_ref().map(factors_domain::UserId::as_str);
                (e.region.as_str(), e.change, actor, e.sent) == ("GN", BreakerChange::Closed, Some("iam-owner"), 2)
            })
            .times(1)
            .returning(|_| Ok(()));
        let service = service(events);
        let guinea = PhoneNumber::parse("+224662123456").expect("valid");
        for _ in 0..2 {
            service.guard.may_send(&guinea).await.expect("closed");
            service.guard.sent(&guinea).await;
        }

        let view = service.get_sms_guard(&owner()).await.expect("an owner reads");
        assert_eq!(view.settings.breaker, Some((rule(), BreakerMode::Enforce)));
        let [guinea_breaker] = view.breakers.as_slice() else { panic!("one region: {:?}", view.breakers) };
        let opened = (guinea_breaker.region.as_str(), &guinea_breaker.state, guinea_breaker.sent);
        assert_eq!(opened, ("GN", &BreakerState::Open { until: at(1) + TimeDelta::minutes(10) }, 2));

        assert_eq!(view.replica, "web-1#3");

        let closed = service.close_sms_breaker(&owner(), "gn").await.expect("an owner closes");
        let answer =
            (closed.breaker.region.as_str(), &closed.breaker.state, closed.breaker.sent, closed.replica.as_str());
        assert_eq!(answer, ("GN", &BreakerState::Closed, 0, "web-1#3"), "a fresh count");
        assert!(service.guard.may_send(&guinea).await.is_ok(), "codes go again");
        service.guard.sent(&guinea).await;
        // Closing a closed breaker changes nothing and records nothing (`times(1)` above).
        let again = service.close_sms_breaker(&owner(), "GN").await.expect("still closed");
        assert_eq!((again.breaker.state, again.breaker.sent), (BreakerState::Closed, 1), "its count stays");
    }

    #[tokio::test]
    async fn only_instance_wide_policy_permissions_may_and_a_bad_region_is_refused() {
        let mut events = MockPolicyStore::new();
        events.expect_record_breaker().never();
        let service = service(events);
        let org_owner =
            caller("org-owner", &[(Permission::PolicyRead, Some("org-a")), (Permission::PolicyWrite, Some("org-a"))]);
        assert!(matches!(service.get_sms_guard(&org_owner).await, Err(SmsGuardError::Access(_))));
        assert!(matches!(service.close_sms_breaker(&org_owner, "nowhere").await, Err(SmsGuardError::Access(_))));
        let reader = caller("reader", &[(Permission::PolicyRead, None)]);
        assert!(service.get_sms_guard(&reader).await.is_ok());
        assert!(matches!(service.close_sms_breaker(&reader, "GN").await, Err(SmsGuardError::Access(_))));

        let refused = service.close_sms_breaker(&owner(), "XX").await.expect_err("no region");
        let failure = Failure::from(refused);
        assert_eq!((failure.kind, failure.id), (ErrorKind::InvalidArgument, "SMS-InvalidRegion"));
        assert!(service.close_sms_breaker(&owner(), "001").await.is_ok(), "numbers of no country have one too");
    }
}
