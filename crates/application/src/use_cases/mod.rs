//! One module per RPC. Each exposes a trait (what delivery calls, mockable), a command,
//! an error enum mapping into [`Failure`](crate::Failure), and the service implementing
//! the trait. [`UseCases::new`] builds them all from the ports and the rules.

use std::sync::Arc;

use factors_domain::{BreakerRule, CheckBudget, CodeKey, CodePolicy, RemovalPolicy, SmsBudgets, SmsCountries};
use tokio::sync::Notify;

use crate::ports::{
    AuditLog, Clock, CodeGenerator, IdGenerator, PolicyStore, SecurityMetrics, SessionStore, SmsRateLimiter, SmsSender,
    SnapshotCache, TokenGenerator, UserReader, UserWriter,
};
use crate::scope::InstanceContext;
use crate::sms_guard::{BreakerMode, GuardSettings, SmsGuard};

pub mod add_otp_sms;
pub mod create_user;
pub mod delete_user;
#[cfg(feature = "mocks")]
pub mod examples;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod get_user;
pub mod list_events;
pub mod list_user_events;
pub mod login_policy;
pub mod remove_otp_sms;
pub mod search_users;
pub mod sessions;
pub mod sms_guard;
pub mod user_state;
pub mod verify_otp_sms;

/// Every use case, as the deliveries (REST, gRPC) receive them from the composition root.
#[derive(Clone)]
pub struct UseCases {
    pub create_user: Arc<dyn create_user::CreateUser>,
    pub get_user: Arc<dyn get_user::GetUser>,
    pub search_users: Arc<dyn search_users::SearchUsers>,
    pub delete_user: Arc<dyn delete_user::DeleteUser>,
    pub user_state: Arc<dyn user_state::ChangeUserState>,
    pub add_otp_sms: Arc<dyn add_otp_sms::AddOtpSms>,
    pub verify_otp_sms: Arc<dyn verify_otp_sms::VerifyOtpSms>,
    pub remove_otp_sms: Arc<dyn remove_otp_sms::RemoveOtpSms>,
    pub sessions: Arc<dyn sessions::Sessions>,
    pub login_policies: Arc<dyn login_policy::LoginPolicies>,
    pub list_user_events: Arc<dyn list_user_events::ListUserEvents>,
    pub list_events: Arc<dyn list_events::ListEvents>,
    pub sms_guard: Arc<dyn sms_guard::SmsGuardControl>,
}

/// The ports the use cases reach the outside world through. One store usually stands
/// behind the five store ports; they are apart so that a test can give each its own.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserReader>,
    pub writer: Arc<dyn UserWriter>,
    pub policies: Arc<dyn PolicyStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub audit: Arc<dyn AuditLog>,
    /// Snapshots a decision may start from (its write is guarded); `None` keeps none.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub sms: Arc<dyn SmsSender>,
    pub rate_limiter: Arc<dyn SmsRateLimiter>,
    pub ids: Arc<dyn IdGenerator>,
    pub codes: Arc<dyn CodeGenerator>,
    pub tokens: Arc<dyn TokenGenerator>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<dyn SecurityMetrics>,
    /// Woken when a use case has queued a notice in the outbox, for the notice worker
    /// ([`crate::notices::NoticeWorker`]) that waits on it.
    pub notices: Arc<Notify>,
}

/// What the settings decide for the use cases: the instance served, and its rules.
#[derive(Clone)]
pub struct Rules {
    pub context: Arc<InstanceContext>,
    pub code_key: CodeKey,
    pub code_policy: CodePolicy,
    pub check_budget: CheckBudget,
    /// Whether users may add and remove their own authenticators.
    pub self_service: bool,
    pub removal: RemovalPolicy,
    /// Whether removing an authenticator ends the sessions it signed in.
    pub revoke_sessions_on_removal: bool,
    /// The regions codes go to by SMS (registration and sign-in).
    pub sms_countries: SmsCountries,
    /// The budgets of code SMS per region and per prefix (`rate_limits`), which the
    /// limiter keeps; here to be shown.
    pub sms_budgets: SmsBudgets,
    /// The conversion breakers of the regions (`sms.breaker`), when on.
    pub sms_breaker: Option<(BreakerRule, BreakerMode)>,
    /// This process among the replicas (its host name and id node, `web-1#3`), as what it
    /// holds alone (the SMS breakers) is named in events and answers.
    pub replica: String,
}

impl UseCases {
    /// Every use case, on `ports` under `rules`. The login policies in force are read
    /// through one keeper that all of them share.
    pub fn new(ports: &Ports, rules: &Rules) -> Self {
        let in_force = Arc::new(login_policy::PoliciesInForce::new(ports.policies.clone()));
        // One guard for every use case that sends or checks codes: the breakers' counts are
        // the process's.
        let settings = GuardSettings {
            countries: rules.sms_countries.clone(),
            budgets: rules.sms_budgets,
            breaker: rules.sms_breaker,
        };
        let guard = Arc::new(SmsGuard::new(
            settings,
            ports.policies.clone(),
            rules.replica.clone(),
            ports.clock.clone(),
            ports.metrics.clone(),
        ));
        Self {
            create_user: Arc::new(create_user::CreateUserService::new(ports, rules, guard.clone())),
            get_user: Arc::new(get_user::GetUserService::new(ports, rules)),
            search_users: Arc::new(search_users::SearchUsersService::new(ports, rules)),
            delete_user: Arc::new(delete_user::DeleteUserService::new(ports, rules, in_force.clone())),
            user_state: Arc::new(user_state::UserStateService::new(ports, rules)),
            add_otp_sms: Arc::new(add_otp_sms::AddOtpSmsService::new(ports, rules, in_force.clone(), guard.clone())),
            verify_otp_sms: Arc::new(verify_otp_sms::VerifyOtpSmsService::new(ports, rules, guard.clone())),
            remove_otp_sms: Arc::new(remove_otp_sms::RemoveOtpSmsService::new(ports, rules, in_force.clone())),
            sessions: Arc::new(sessions::SessionsService::new(ports, rules, guard.clone())),
            login_policies: Arc::new(login_policy::LoginPolicyService::new(ports, rules, in_force)),
            list_user_events: Arc::new(list_user_events::ListUserEventsService::new(ports, rules)),
            list_events: Arc::new(list_events::ListEventsService::new(ports, rules)),
            sms_guard: Arc::new(sms_guard::SmsGuardService { guard }),
        }
    }
}

/// A mock of every use case, each failing the test when called unless the test set an
/// expectation on it: how delivery tests build [`UseCases`] (`into_use_cases`).
#[cfg(feature = "mocks")]
#[derive(Default)]
pub struct MockUseCases {
    pub create_user: create_user::MockCreateUser,
    pub get_user: get_user::MockGetUser,
    pub search_users: search_users::MockSearchUsers,
    pub delete_user: delete_user::MockDeleteUser,
    pub user_state: user_state::MockChangeUserState,
    pub add_otp_sms: add_otp_sms::MockAddOtpSms,
    pub verify_otp_sms: verify_otp_sms::MockVerifyOtpSms,
    pub remove_otp_sms: remove_otp_sms::MockRemoveOtpSms,
    pub sessions: sessions::MockSessions,
    pub login_policies: login_policy::MockLoginPolicies,
    pub list_user_events: list_user_events::MockListUserEvents,
    pub list_events: list_events::MockListEvents,
    pub sms_guard: sms_guard::MockSmsGuardControl,
}

#[cfg(feature = "mocks")]
impl MockUseCases {
    pub fn into_use_cases(self) -> UseCases {
        UseCases {
            create_user: Arc::new(self.create_user),
            get_user: Arc::new(self.get_user),
            search_users: Arc::new(self.search_users),
            delete_user: Arc::new(self.delete_user),
            user_state: Arc::new(self.user_state),
            add_otp_sms: Arc::new(self.add_otp_sms),
            verify_otp_sms: Arc::new(self.verify_otp_sms),
            remove_otp_sms: Arc::new(self.remove_otp_sms),
            sessions: Arc::new(self.sessions),
            login_policies: Arc::new(self.login_policies),
            list_user_events: Arc::new(self.list_user_events),
            list_events: Arc::new(self.list_events),
            sms_guard: Arc::new(self.sms_guard),
        }
    }
}
