//! `factors.sms.v1.SmsGuard` over tonic: the SMS guard's settings and breakers, the same use
//! case as REST's `/resources/v3alpha/sms_guard`.

use factors_application::sms_guard::{BreakerMode, GuardSettings, RegionBreaker};
use factors_application::use_cases::sms_guard::GuardView;
use factors_domain::BreakerState;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::status;
use crate::pb::factors::sms::v1 as pb;
use crate::pb::factors::sms::v1::sms_guard_server::SmsGuard;
use crate::service::{GrpcState, authenticate};

pub struct SmsGuardService {
    state: GrpcState,
}

impl SmsGuardService {
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }
}

fn duration(duration: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX), nanos: 0 }
}

fn delta(delta: chrono::TimeDelta) -> prost_types::Duration {
    prost_types::Duration { seconds: delta.num_seconds(), nanos: 0 }
}

fn settings(settings: &GuardSettings) -> pb::SmsGuardSettings {
    let (allowed_regions, denied_regions) = settings.countries.lists();
    let budgets = settings.budgets;
    let breaker = settings.breaker.map(|(rule, mode)| pb::BreakerSettings {
        mode: match mode {
            BreakerMode::Enforce => pb::BreakerMode::Enforce,
            BreakerMode::Monitor => pb::BreakerMode::Monitor,
        }
        .into(),
        threshold: rule.threshold,
        min_sends: rule.min_sends,
        window: Some(delta(rule.window)),
        cool_down: Some(delta(rule.cool_down)),
        probes: rule.probes,
    });
    pb::SmsGuardSettings {
        allowed_regions,
        denied_regions,
        budgets: Some(pb::SmsBudgets {
            per_country: budgets.per_country,
            per_prefix: budgets.per_prefix,
            prefix_digits: u32::try_from(budgets.prefix_digits).unwrap_or(u32::MAX),
            window: Some(duration(budgets.window)),
        }),
        breaker,
    }
}

fn breaker(breaker: RegionBreaker) -> pb::RegionBreaker {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let mut answer = pb::RegionBreaker {
        region: breaker.region,
        sent: count(breaker.sent),
        verified: count(breaker.verified),
        ..Default::default()
    };
    let state = match breaker.state {
        BreakerState::Closed => pb::BreakerState::Closed,
        BreakerState::Open { until } => {
            answer.until = Some(convert::timestamp(until));
            pb::BreakerState::Open
        }
        BreakerState::HalfOpen { since, sent, verified } => {
            answer.since = Some(convert::timestamp(since));
            (answer.probes_sent, answer.probes_verified) = (sent, verified);
            pb::BreakerState::HalfOpen
        }
    };
    answer.state = state.into();
    answer
}

fn response(view: GuardView) -> pb::GetSmsGuardResponse {
    pb::GetSmsGuardResponse {
        settings: Some(settings(&view.settings)),
        breakers: view.breakers.into_iter().map(breaker).collect(),
        replica: view.replica,
    }
}

#[tonic::async_trait]
impl SmsGuard for SmsGuardService {
    async fn get_sms_guard(
        &self,
        request: Request<pb::GetSmsGuardRequest>,
    ) -> Result<Response<pb::GetSmsGuardResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let view = self.state.use_cases.sms_guard.get_sms_guard(&caller).await.map_err(status)?;
        Ok(Response::new(response(view)))
    }

    async fn close_sms_breaker(
        &self,
        request: Request<pb::CloseSmsBreakerRequest>,
    ) -> Result<Response<pb::CloseSmsBreakerResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let region = request.into_inner().region;
        let closed = self.state.use_cases.sms_guard.close_sms_breaker(&caller, &region).await.map_err(status)?;
        Ok(Response::new(pb::CloseSmsBreakerResponse {
            breaker: Some(breaker(closed.breaker)),
            replica: closed.replica,
        }))
    }
}
