//! gRPC, gRPC-web and Connect delivery of factors: the ZITADEL v3alpha user service over
//! tonic, with server reflection (v1 and v1alpha) and `grpc.health.v1`, on the same port
//! as REST. Clients generated from ZITADEL's own protos call it unchanged.
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
use tonic_health::ServingStatus;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub mod connect;
pub mod convert;
pub mod error;
pub mod service;

pub use service::{GrpcState, UsersService};

#[allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs)]
pub mod pb {
    //! Code generated from `proto/` by tonic-prost-build (see build.rs).
    pub mod zitadel {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/zitadel.v1.rs"));
        }
        pub mod object {
            pub mod v3alpha {
                include!(concat!(env!("OUT_DIR"), "/zitadel.object.v3alpha.rs"));
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
    pub mod google {
        pub mod rpc {
            include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
        }
    }
}

/// The encoded descriptor set of every proto factors serves (for reflection and Connect JSON).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/factors_descriptor.bin"));

/// The full name of the user service.
pub const SERVICE: &str = "zitadel.resources.user.v3alpha.ZITADELUsers";

/// Knobs of the gRPC side.
#[derive(Debug, Clone, Default)]
pub struct GrpcOptions {
    /// Origins browsers may call gRPC-web and Connect from; empty means same origin only.
    pub cors_origins: Vec<String>,
}

fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("cors origin {o:?} is not a valid header value")))
        .collect::<anyhow::Result<Vec<_>>>()?;
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
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(allow_headers.map(HeaderName::from_static))
            .expose_headers(expose_headers.map(HeaderName::from_static))
            .max_age(Duration::from_secs(3600)),
    ))
}

/// The user service's path: gRPC and gRPC-web go to tonic, Connect to the bridge.
async fn users(State(bridge): State<Arc<connect::Connect>>, Path(method): Path<String>, request: Request) -> Response {
    if is_grpc(&request) {
        match bridge.grpc().clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    } else {
        connect::serve(&bridge, &method, request).await
    }
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
pub fn router(state: GrpcState, readiness: Arc<dyn ReadinessProbe>, options: &GrpcOptions) -> anyhow::Result<Router> {
    let users_server =
        pb::zitadel::resources::user::v3alpha::zitadel_users_server::ZitadelUsersServer::new(UsersService::new(state));
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        // Serving while Postgres answers; the health service follows readiness.
        loop {
            let ready = readiness.readiness().await.is_ready();
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            reporter.set_service_status("", status).await;
            reporter.set_service_status(SERVICE, status).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });

    // tonic-web goes on these routes only: on the whole app it would take over REST calls.
    let grpc = tonic::service::Routes::new(users_server)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(health)
        .into_axum_router()
        .layer(tonic_web::GrpcWebLayer::new());
    let bridge = Arc::new(connect::Connect::new(grpc.clone(), FILE_DESCRIPTOR_SET, SERVICE)?);
    let mut router = Router::new()
        .route(&format!("/{SERVICE}/{{method}}"), any(users))
        .route_service("/grpc.reflection.v1.ServerReflection/{method}", grpc.clone())
        .route_service("/grpc.reflection.v1alpha.ServerReflection/{method}", grpc.clone())
        .route_service("/grpc.health.v1.Health/{method}", grpc)
        .with_state(bridge);
    if let Some(cors) = cors(&options.cors_origins)? {
        router = router.layer(cors);
    }
    Ok(router)
}
