//! Extractors whose rejections answer in the contract's error body, never axum's text.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use factors_application::ports::{AuthError, TokenVerifier};
use factors_domain::{Caller, Origin};
use factors_wire::{RequestError, bearer_token};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, too_large};

/// A JSON body. Wrong content type, bad JSON and a body of the wrong shape each answer
/// INVALID_ARGUMENT with their own id; serde's text (which may quote the input) is dropped.
/// A body over the size limit answers 413 ([`too_large`]).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(rejection) => Err(ApiError::from(match rejection {
                JsonRejection::MissingJsonContentType(_) => RequestError::ContentType,
                JsonRejection::JsonSyntaxError(_) => RequestError::InvalidJson,
                JsonRejection::JsonDataError(_) => RequestError::JsonShape,
                // BytesRejection and whatever axum adds later: the body could not be had.
                _ => RequestError::BodyUnreadable,
            })
            .into_response()),
        }
    }
}

/// A JSON body that may be absent: an empty body (or one of whitespace only) is the
/// message with every field unset, as grpc-gateway reads the body of `body: "*"`
/// mappings. A body that is there is read as [`ApiJson`] reads it.
#[derive(Debug)]
pub struct ApiJsonOrEmpty<T>(pub T);

impl<T, S> FromRequest<S> for ApiJsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes =
            Bytes::from_request(Request::from_parts(parts.clone(), body), state).await.map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::from(RequestError::BodyUnreadable).into_response()
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let ApiJson(value) = ApiJson::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        Ok(Self(value))
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_: PathRejection| ApiError::from(RequestError::InvalidPath))
    }
}

/// Query parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|_: QueryRejection| ApiError::from(RequestError::InvalidQuery))
    }
}

/// The caller, from `Authorization: Bearer <JWT>`.
#[derive(Debug)]
pub struct Authenticated(pub Caller);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<dyn TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or(AuthError::MissingToken)?;
        let verifier = Arc::<dyn TokenVerifier>::from_ref(state);
        let caller = verifier.verify(token).await?;
        // Where the request came from: what the port's shared layers found (`crate::origin`).
        // Taken, not copied: only the caller needs it from here on.
        Ok(Self(caller.with_origin(parts.extensions.remove::<Origin>().unwrap_or_default())))
    }
}
