//! Swagger UI at `/swagger-ui/`, showing the one OpenAPI document at `/openapi.json`. Its
//! files come from the `utoipa-swagger-ui-vendored` crate, unpacked at build time, so
//! neither the build nor a browser fetches anything from elsewhere. A release binary
//! embeds them (about 11 MB, source maps included); a debug build reads them from its
//! build directory, as rust-embed does.
//!
//! Our own handler serves them rather than the crate's axum router, so that a missing file
//! answers the contract's 404 like any other path and the crate's errors reach the log,
//! never a client.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use factors_application::Failure;
use factors_wire::RequestError;
use utoipa_swagger_ui::Config;

use crate::error::ApiError;

/// The page. It loads its files relative to itself, hence the trailing slash.
pub const PATH: &str = "/swagger-ui/";

/// The document the page shows, and no validator: Swagger UI would otherwise send the
/// document's URL to swagger.io to draw a badge.
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::from("/openapi.json").validator_url("none")));

/// Adds the UI: the page at [`PATH`], its files below it, and a redirect from the path
/// without the slash.
pub fn routes<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .route("/swagger-ui", get(|| async { Redirect::permanent(PATH) }))
        .route(PATH, get(|| file(String::new())))
        .route("/swagger-ui/{*file}", get(|Path(name): Path<String>| file(name)))
}

/// One file of the UI; the empty name is the page.
async fn file(name: String) -> Response {
    match utoipa_swagger_ui::serve(&name, CONFIG.clone()) {
        Ok(Some(file)) => ([(header::CONTENT_TYPE, file.content_type)], file.bytes).into_response(),
        Ok(None) => ApiError::from(RequestError::UnknownPath).into_response(),
        // Only swagger-initializer.js is rendered (with CONFIG); nothing else can fail.
        Err(error) => {
            ApiError(Failure::internal(anyhow::anyhow!("rendering the Swagger UI's {name:?}: {error}"))).into_response()
        }
    }
}
