//! Code checks refused while a user's budget of failed checks is spent: logged, counted,
//! and answered with when to retry.

use chrono::{DateTime, Utc};
use factors_domain::{CheckBudget, UserId};

use crate::ports::{SecurityMetrics, SmsPurpose};
use crate::{ErrorKind, Failure};

/// A code check refused without comparing the code: its user's budget of failed checks
/// ([`CheckBudget`]) was spent in the window that started `since`. Logged and counted
/// here; the answer ([`locked_failure`]) says when to retry.
pub(crate) fn code_checks_locked(
    metrics: &dyn SecurityMetrics,
    budget: &CheckBudget,
    user: &UserId,
    purpose: SmsPurpose,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> std::time::Duration {
    metrics.code_checks_locked(purpose);
    let retry_after = budget.locked_for(since, now).to_std().unwrap_or_default();
    tracing::warn!(
        user_id = %user,
        purpose = purpose.as_str(),
        retry_after_s = retry_after.as_secs(),
        "code check refused: the user's budget of failed code checks is spent"
    );
    retry_after
}

/// The answer to a check refused by [`code_checks_locked`].
pub(crate) fn locked_failure(retry_after: std::time::Duration) -> Failure {
    Failure {
        retry_after: Some(retry_after),
        ..Failure::new(
            ErrorKind::ResourceExhausted,
            "USER-CodeChecksLocked",
            "too many wrong codes were tried for this user: code checks are locked for a while; retry later",
        )
    }
}
