//! gRPC, gRPC-web and Connect delivery of factors: the ZITADEL v3alpha user service, the
//! v2 session service and factors' own audit trail (`factors.user.v1.UserEvents`), login
//! policy (`factors.policy.v1.LoginPolicies`) and SMS guard (`factors.sms.v1.SmsGuard`)
//! services over tonic, with server reflection (v1 and v1alpha) and
//! `grpc.health.v1`, on the same port as REST. Clients generated from ZITADEL's own protos
//! call them unchanged.
//!
//! [`router`] returns routes to merge with the REST router: native gRPC (HTTP/2),
//! gRPC-web (binary and text, over HTTP/1.1 too) through tonic-web on these routes only,
//! and Connect unary calls, told apart by content type.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use axum::routing::any;
use factors_application::ports::ReadinessProbe;
use factors_wire::rpc::{SERVICES, USER_SERVICE};
use factors_wire::{MAX_BODY_BYTES, RequestError};
use tonic_health::ServingStatus;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub mod connect;
pub mod convert;
pub mod error;
pub mod events;
pub mod policies;
pub mod service;
pub mod sessions;
pub mod sms_guard;

pub use events::UserEventsService;
pub use policies::LoginPoliciesService;
pub use service::{GrpcState, UsersService};
pub use sessions::SessionsService;
pub use sms_guard::SmsGuardService;

#[allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs)]
pub mod pb {
    //! Code generated from `proto/` by tonic-prost-build (see build.rs).
    pub mod zitadel {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.v1.rs"));
        }
        pub mod object {
            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/zitadel.object.v2.rs"));
            }
            pub mod v3alpha {
                include!(concat!(env!("OUT_DIR"), "/zitadel.object.v3alpha.rs"));
            }
        }
        pub mod session {
            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/zitadel.session.v2.rs"));
            }
        }
        pub mod resources {
            pub mod object {
                pub mod v3alpha {
                    include!(concat!(env!("OUT_DIR"), "/zitadel.resources.object.v3alpha.rs"));
                }
            }
            pub mod user {
                pub mod v3alpha {
                    include!(concat!(env!("OUT_DIR"), "/zitadel.resources.user.v3alpha.rs"));
                }
            }
        }
    }
    pub mod factors {
        pub mod policy {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/factors.policy.v1.rs"));
            }
        }
        pub mod user {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/factors.user.v1.rs"));
            }
        }
        pub mod sms {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/factors.sms.v1.rs"));
            }
        }
    }
    pub mod google {
        pub mod rpc {
            include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
        }
    }
}

/// The encoded descriptor set of every proto factors serves (for reflection and Connect JSON).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/factors_descriptor.bin"));

/// The full name of the user service.
pub const SERVICE: &str = USER_SERVICE;

/// The full name of the session service.
pub const SESSION_SERVICE: &str = factors_wire::rpc::SESSION_SERVICE;

/// The full name of the audit trail service.
pub const USER_EVENTS_SERVICE: &str = factors_wire::rpc::USER_EVENTS_SERVICE;

/// The full name of the login policy service.
pub const LOGIN_POLICY_SERVICE: &str = factors_wire::rpc::LOGIN_POLICY_SERVICE;

/// The full name of factors' own SMS guard service.
pub const SMS_GUARD_SERVICE: &str = factors_wire::rpc::SMS_GUARD_SERVICE;

/// Knobs of the gRPC side.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// Origins browsers may call gRPC-web and Connect from; empty means same origin only,
    /// `*` any origin.
    pub cors_origins: Vec<String>,
    /// Calls running longer answer DEADLINE_EXCEEDED; a shorter `grpc-timeout` (or
    /// Connect's `connect-timeout-ms`) from the client wins.
    pub request_timeout: Duration,
}

/// The routes, and the task that keeps `grpc.health.v1` in step with readiness; the
/// task stops when this is dropped.
#[derive(Debug)]
pub struct GrpcRoutes {
    pub router: Router,
    pub health: HealthTask,
}

/// Aborts the health task on drop.
#[derive(Debug)]
pub struct HealthTask(tokio::task::JoinHandle<()>);

impl Drop for HealthTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .map(|o| {
                    HeaderValue::from_str(o)
                        .map_err(|_| anyhow::anyhow!("cors origin {o:?} is not a valid header value"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        )
    };
    let allow_headers = [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "connect-protocol-version",
        "connect-timeout-ms",
        "x-request-id",
    ];
    let expose_headers = ["grpc-status", "grpc-message", "grpc-status-details-bin", "retry-after", "x-request-id"];
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(allow_headers.map(HeaderName::from_static))
            .expose_headers(expose_headers.map(HeaderName::from_static))
            .max_age(Duration::from_secs(3600)),
    ))
}

/// The routes of one service's calls: its Connect bridge, and the deadline.
#[derive(Clone)]
struct ServiceRoute {
    bridge: Arc<connect::Connect>,
    timeout: Duration,
}

/// `grpc-timeout` (`<digits><unit>`, units H M S m u n), or Connect's `connect-timeout-ms`.
fn client_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    if let Some(value) = headers.get("grpc-timeout").and_then(|v| v.to_str().ok()) {
        let (digits, unit) = value.split_at(value.len().saturating_sub(1));
        let n: u64 = digits.parse().ok()?;
        return Some(match unit {
            "H" => Duration::from_secs(n.saturating_mul(3600)),
            "M" => Duration::from_secs(n.saturating_mul(60)),
            "S" => Duration::from_secs(n),
            "m" => Duration::from_millis(n),
            "u" => Duration::from_micros(n),
            "n" => Duration::from_nanos(n),
            _ => return None,
        });
    }
    headers
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

/// The largest body a call of this content type may announce in `Content-Length`: one
/// message of [`MAX_BODY_BYTES`], in a gRPC frame (5 bytes more) for gRPC and gRPC-web, and
/// base64 of that for gRPC-web text; a Connect body is the message itself.
fn largest_body(content_type: Option<&HeaderValue>) -> u64 {
    let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or_default();
    let message = MAX_BODY_BYTES as u64;
    if content_type.starts_with("application/grpc-web-text") {
        (message + 5).div_ceil(3) * 4
    } else if content_type.starts_with("application/grpc") {
        message + 5
    } else {
        message
    }
}

/// An answer of this route that no service gave: in gRPC's form (with the request's content
/// type, which gRPC-web clients look for) or Connect's.
fn refusal(grpc: bool, content_type: Option<HeaderValue>, refused: RequestError) -> Response {
    let status = error::status(refused);
    if grpc {
        let mut response: Response = status.into_http();
        if let Some(content_type) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
        }
        response
    } else {
        connect::error_response(&status)
    }
}

/// A service's path: gRPC and gRPC-web go to tonic, Connect to the service's bridge; both
/// under the deadline. A body announced larger than a call may be is refused before any of
/// it is read, rather than held until the deadline.
async fn calls(State(route): State<ServiceRoute>, Path(method): Path<String>, request: Request) -> Response {
    let grpc = is_grpc(&request);
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let announced = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > largest_body(content_type.as_ref())) {
        return refusal(grpc, content_type, RequestError::TooLarge);
    }
    let timeout = client_timeout(request.headers()).map_or(route.timeout, |t| t.min(route.timeout));
    let call = async {
        if grpc {
            match route.bridge.grpc().clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        } else {
            connect::serve(&route.bridge, &method, request).await
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(response) => response,
        Err(_) => refusal(grpc, content_type, RequestError::Timeout),
    }
}

/// A panic in a handler answers INTERNAL in gRPC's form; the panic itself is logged.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error::status(RequestError::Panicked).into_http()
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The gRPC, gRPC-web and Connect routes.
///
/// # Errors
/// When the descriptors or the CORS origins are invalid.
pub fn router(
    state: GrpcState,
    readiness: Arc<dyn ReadinessProbe>,
    options: &GrpcOptions,
) -> anyhow::Result<GrpcRoutes> {
    let users_server = pb::zitadel::resources::user::v3alpha::zitadel_users_server::ZitadelUsersServer::new(
        UsersService::new(state.clone()),
    )
    .max_decoding_message_size(MAX_BODY_BYTES);
    let sessions_server = pb::zitadel::session::v2::session_service_server::SessionServiceServer::new(
        SessionsService::new(state.clone()),
    )
    .max_decoding_message_size(MAX_BODY_BYTES);
    let events_server =
        pb::factors::user::v1::user_events_server::UserEventsServer::new(UserEventsService::new(state.clone()))
            .max_decoding_message_size(MAX_BODY_BYTES);
    let policies_server = pb::factors::policy::v1::login_policies_server::LoginPoliciesServer::new(
        LoginPoliciesService::new(state.clone()),
    )
    .max_decoding_message_size(MAX_BODY_BYTES);
    let guard_server = pb::factors::sms::v1::sms_guard_server::SmsGuardServer::new(SmsGuardService::new(state))
        .max_decoding_message_size(MAX_BODY_BYTES);
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    let health_task = tokio::spawn(async move {
        // Serving while Postgres answers; the health service follows readiness.
        loop {
            let ready = readiness.readiness().await.is_ready();
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            for service in SERVICES {
                reporter.set_service_status(service.name, status).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });

    // tonic-web goes on these routes only: on the whole app it would take over REST calls.
    let grpc = tonic::service::Routes::new(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(health)
        .into_axum_router()
        .route_service(
            &format!("/{SERVICE}/{{*rest}}"),
            users_server.map_request(service::name_the_rpc).map_response(error::in_contract_form),
        )
        .route_service(
            &format!("/{SESSION_SERVICE}/{{*rest}}"),
            sessions_server.map_request(service::name_the_rpc).map_response(error::in_contract_form),
        )
        .route_service(
            &format!("/{USER_EVENTS_SERVICE}/{{*rest}}"),
            events_server.map_request(service::name_the_rpc).map_response(error::in_contract_form),
        )
        .route_service(
            &format!("/{LOGIN_POLICY_SERVICE}/{{*rest}}"),
            policies_server.map_request(service::name_the_rpc).map_response(error::in_contract_form),
        )
        .route_service(
            &format!("/{SMS_GUARD_SERVICE}/{{*rest}}"),
            guard_server.map_request(service::name_the_rpc).map_response(error::in_contract_form),
        )
        .layer(tonic_web::GrpcWebLayer::new());
    let mut router = Router::new();
    for service in SERVICES {
        let bridge = Arc::new(connect::Connect::new(grpc.clone(), FILE_DESCRIPTOR_SET, service.name)?);
        let route = ServiceRoute { bridge, timeout: options.request_timeout };
        router = router.route(&format!("/{}/{{method}}", service.name), any(calls).with_state(route));
    }
    // As a service: axum refuses a plain `Router` here.
    let grpc = grpc.into_service::<axum::body::Body>();
    let mut router = router
        .route_service("/grpc.reflection.v1.ServerReflection/{method}", grpc.clone())
        .route_service("/grpc.reflection.v1alpha.ServerReflection/{method}", grpc.clone())
        .route_service("/grpc.health.v1.Health/{method}", grpc)
        .layer(CatchPanicLayer::custom(panicked));
    if let Some(cors) = cors(&options.cors_origins)? {
        router = router.layer(cors);
    }
    Ok(GrpcRoutes { router, health: HealthTask(health_task) })
}
