//! `zitadel.session.v2.SessionService` over tonic: the same session use cases as REST.
//! ListSessions answers UNIMPLEMENTED with the error detail, as the RPC table says.
//!
//! The caller comes from the bearer token as for the user service; whether it may act on
//! a session is for the use cases. A `user_agent` in a request is accepted and ignored.

use factors_application::input::RawSessionChange;
use factors_application::use_cases::sessions::{SessionAccess, SetSessionCommand};
use factors_domain::SessionId;
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::status;
use crate::pb::zitadel::session::v2 as pb;
use crate::pb::zitadel::session::v2::session_service_server::SessionService;
use crate::service::{GrpcState, authenticate, unimplemented};

pub struct SessionsService {
    state: GrpcState,
}

impl SessionsService {
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }
}

fn session_id(id: String) -> Result<SessionId, Status> {
    SessionId::new(id).map_err(status)
}

/// Whether the request asked for a challenge (its answer then carries `challenges`).
fn challenge_requested(raw: &RawSessionChange) -> bool {
    raw.challenge_otp_sms.is_some()
}

#[tonic::async_trait]
impl SessionService for SessionsService {
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        Err(unimplemented(&request))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        let access =
            SessionAccess { session_id: session_id(message.session_id)?, session_token: message.session_token };
        let view = self.state.use_cases.sessions.get_session(&caller, access).await.map_err(status)?;
        Ok(Response::new(pb::GetSessionResponse { session: Some(convert::session(view)) }))
    }

    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        let raw = convert::session_change(message.checks, message.metadata, message.challenges, message.lifetime)
            .map_err(status)?;
        let requested = challenge_requested(&raw);
        let change = raw.into_change().map_err(status)?;
        let written = self.state.use_cases.sessions.create_session(&caller, change).await.map_err(status)?;
        Ok(Response::new(pb::CreateSessionResponse {
            details: Some(convert::session_details(written.details)),
            session_id: written.session_id.into_string(),
            session_token: written.session_token,
            challenges: convert::challenges(requested, written.otp_sms_code),
        }))
    }

    async fn set_session(
        &self,
        request: Request<pb::SetSessionRequest>,
    ) -> Result<Response<pb::SetSessionResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        // `session_token` is deprecated upstream and ignored.
        let session_id = session_id(message.session_id)?;
        let raw = convert::session_change(message.checks, message.metadata, message.challenges, message.lifetime)
            .map_err(status)?;
        let requested = challenge_requested(&raw);
        let command = SetSessionCommand { session_id, change: raw.into_change().map_err(status)? };
        let written = self.state.use_cases.sessions.set_session(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::SetSessionResponse {
            details: Some(convert::session_details(written.details)),
            session_token: written.session_token,
            challenges: convert::challenges(requested, written.otp_sms_code),
        }))
    }

    async fn delete_session(
        &self,
        request: Request<pb::DeleteSessionRequest>,
    ) -> Result<Response<pb::DeleteSessionResponse>, Status> {
        let caller = authenticate(self.state.tokens.as_ref(), &request).await?;
        let message = request.into_inner();
        let access =
            SessionAccess { session_id: session_id(message.session_id)?, session_token: message.session_token };
        let details = self.state.use_cases.sessions.delete_session(&caller, access).await.map_err(status)?;
        Ok(Response::new(pb::DeleteSessionResponse { details: Some(convert::session_details(details)) }))
    }
}
