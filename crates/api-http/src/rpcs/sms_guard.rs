//! GetSmsGuard and CloseSmsBreaker (`factors.sms.v1.SmsGuard`, factors' own): the SMS
//! guard's settings and every region's breaker on the replica that answers, and closing a
//! breaker by hand. The use case decides who may (`policy.read` or `policy.write`,
//! instance-wide).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::sms_guard::{BreakerMode, GuardSettings, RegionBreaker};
use factors_application::use_cases::UseCases;
use factors_application::use_cases::sms_guard::GuardView;
use factors_domain::BreakerState;
use serde::Serialize;
use utoipa::ToSchema;

use super::shared::{Answer, timestamp};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, Authenticated};

/// GetSmsGuard (factors' own): the guard's settings and the breaker of every region this
/// replica has sent codes to or verified one of.
#[utoipa::path(
    get, path = "/resources/v3alpha/sms_guard", tag = "sms_guard", operation_id = "GetSmsGuard",
    responses(
        (status = 200, description = "The guard's settings and this replica's breakers, by region", body = GetSmsGuardResponse),
        (status = 403, description = "No policy.read instance-wide", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_sms_guard(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
) -> Answer<GetSmsGuardResponse> {
    Ok(Json(use_cases.sms_guard.get_sms_guard(&caller).await?.into()))
}

/// CloseSmsBreaker (factors' own): closes a region's breaker on this replica, with a fresh
/// count, and records who did (`sms.breaker.closed`); the other replicas' close at their
/// next code to the region. A closed breaker stays as it is, and nothing is recorded. No
/// body is read.
#[utoipa::path(
    post, path = "/resources/v3alpha/sms_guard/breakers/{region}/_close", tag = "sms_guard",
    operation_id = "CloseSmsBreaker",
    params(("region" = String, Path, description = "The region code (CH, any case), or 001 for numbers of no country")),
    responses(
        (status = 200, description = "The region's breaker, closed", body = CloseSmsBreakerResponse),
        (status = 400, description = "No region of that code (SMS-InvalidRegion)", body = StatusBody),
        (status = 403, description = "No policy.write instance-wide", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn close_sms_breaker(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(region): ApiPath<String>,
) -> Answer<CloseSmsBreakerResponse> {
    let closed = use_cases.sms_guard.close_sms_breaker(&caller, &region).await?;
    Ok(Json(CloseSmsBreakerResponse { breaker: closed.breaker.into(), replica: closed.replica }))
}

/// `GetSmsGuardResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetSmsGuardResponse {
    pub settings: SmsGuardSettingsJson,
    /// Every region the replica has sent a code to, or verified one of, since it started,
    /// by region code.
    pub breakers: Vec<RegionBreakerJson>,
    /// The replica that answers: its host name and id node (`web-1#3`).
    #[schema(example = "web-1#3")]
    pub replica: String,
}

impl From<GuardView> for GetSmsGuardResponse {
    fn from(view: GuardView) -> Self {
        let breakers = view.breakers.into_iter().map(Into::into).collect();
        Self { settings: view.settings.into(), breakers, replica: view.replica }
    }
}

/// `SmsGuardSettings`: where codes may go, the budgets, and the breakers' rule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"allowedRegions": [], "deniedRegions": ["KP"],
    "budgets": {"perCountry": 1000, "perPrefix": 50, "prefixDigits": 6, "window": "3600s"},
    "breaker": {"mode": "BREAKER_MODE_ENFORCE", "threshold": 0.2, "minSends": 50, "window": "3600s",
        "coolDown": "900s", "probes": 5}}))]
pub struct SmsGuardSettingsJson {
    /// Codes go to these regions only (empty: no allow list).
    pub allowed_regions: Vec<String>,
    /// Codes never go to these regions (empty: no deny list).
    pub denied_regions: Vec<String>,
    pub budgets: SmsBudgetsJson,
    /// Absent: no breakers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerSettingsJson>,
}

/// `SmsBudgets`: code SMS per region and per number prefix within `window`; 0: none.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmsBudgetsJson {
    pub per_country: u32,
    pub per_prefix: u32,
    pub prefix_digits: usize,
    /// Whole seconds, as protobuf JSON writes a duration.
    pub window: String,
}

/// `BreakerSettings`: when a region's breaker opens, and how it closes again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerSettingsJson {
    /// `BREAKER_MODE_ENFORCE` (an open breaker refuses) or `BREAKER_MODE_MONITOR` (it only
    /// logs).
    pub mode: &'static str,
    pub threshold: f64,
    pub min_sends: u32,
    pub window: String,
    pub cool_down: String,
    pub probes: u32,
}

impl From<GuardSettings> for SmsGuardSettingsJson {
    fn from(settings: GuardSettings) -> Self {
        let (allowed_regions, denied_regions) = settings.countries.lists();
        let budgets = settings.budgets;
        let seconds = |seconds: i64| format!("{seconds}s");
        Self {
            allowed_regions,
            denied_regions,
            budgets: SmsBudgetsJson {
                per_country: budgets.per_country,
                per_prefix: budgets.per_prefix,
                prefix_digits: budgets.prefix_digits,
                window: format!("{}s", budgets.window.as_secs()),
            },
            breaker: settings.breaker.map(|(rule, mode)| BreakerSettingsJson {
                mode: match mode {
                    BreakerMode::Enforce => "BREAKER_MODE_ENFORCE",
                    BreakerMode::Monitor => "BREAKER_MODE_MONITOR",
                },
                threshold: rule.threshold,
                min_sends: rule.min_sends,
                window: seconds(rule.window.num_seconds()),
                cool_down: seconds(rule.cool_down.num_seconds()),
                probes: rule.probes,
            }),
        }
    }
}

/// `RegionBreaker`: one region's breaker on this replica.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"region": "GN", "state": "BREAKER_STATE_OPEN", "sent": "52", "verified": "3",
    "until": "2024-11-22T09:42:10Z"}))]
pub struct RegionBreakerJson {
    /// The CLDR region code (`CH`), or `001` for numbers of no country.
    pub region: String,
    /// `BREAKER_STATE_CLOSED`, `BREAKER_STATE_OPEN` or `BREAKER_STATE_HALF_OPEN`.
    pub state: &'static str,
    /// Codes sent within the window, a string (a 64-bit integer in protobuf JSON).
    pub sent: String,
    /// Codes verified within the window.
    pub verified: String,
    /// Open: when the pause ends (an open breaker whose pause is over shows open until the
    /// region's next code asks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Half-open: since when probes go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Half-open: probes sent and verified so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes_sent: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes_verified: Option<u32>,
}

impl From<RegionBreaker> for RegionBreakerJson {
    fn from(breaker: RegionBreaker) -> Self {
        let mut answer = Self {
            region: breaker.region,
            state: "BREAKER_STATE_CLOSED",
            sent: breaker.sent.to_string(),
            verified: breaker.verified.to_string(),
            until: None,
            since: None,
            probes_sent: None,
            probes_verified: None,
        };
        match breaker.state {
            BreakerState::Closed => {}
            BreakerState::Open { until } => {
                answer.state = "BREAKER_STATE_OPEN";
                answer.until = Some(timestamp(until));
            }
            BreakerState::HalfOpen { since, sent, verified } => {
                answer.state = "BREAKER_STATE_HALF_OPEN";
                answer.since = Some(timestamp(since));
                (answer.probes_sent, answer.probes_verified) = (Some(sent), Some(verified));
            }
        }
        answer
    }
}

/// `CloseSmsBreakerResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CloseSmsBreakerResponse {
    pub breaker: RegionBreakerJson,
    /// The replica whose breaker it is.
    pub replica: String,
}
