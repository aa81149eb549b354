//! Answers of the session use cases as delivery tests mock them (REST and gRPC alike): one
//! written session and one session view, with the values those tests' expected JSON and
//! protobuf answers are written against. Built with the `mocks` feature only.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use factors_domain::{OrgId, SessionId, UserId, VerificationCode};

use super::sessions::{SessionDetails, SessionView, SessionWritten, UserFactor};

/// The instant `millis` milliseconds after the Unix epoch.
pub fn at(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).single().expect("valid")
}

/// Session `s1`'s details after its second event.
pub fn session_details() -> SessionDetails {
    SessionDetails {
        sequence: 2,
        change_date: at(1_732_267_862_114),
        creation_date: at(1_732_267_630_426),
        resource_owner: "instance-1".into(),
    }
}

/// CreateSession's or SetSession's answer for `s1`, with `code` when `returnCode` asked.
pub fn session_written(code: Option<&str>) -> SessionWritten {
    SessionWritten {
        details: session_details(),
        session_id: SessionId::new("s1").expect("valid"),
        session_token: "token-2".into(),
        otp_sms_code: code.map(|c| VerificationCode::parse(c).expect("six digits")),
    }
}

/// GetSession's answer: `s1`, alice checked, her OTP SMS checked, with metadata and an expiry.
pub fn session_view() -> SessionView {
    SessionView {
        id: SessionId::new("s1").expect("valid"),
        creation_date: at(1_732_267_630_426),
        change_date: at(1_732_267_862_114),
        sequence: 3,
        user: Some(UserFactor {
            id: UserId::new("alice").expect("valid"),
            organization_id: OrgId::new("org-a").expect("valid"),
            verified_at: at(1_732_267_700_000),
        }),
        otp_sms_verified_at: Some(at(1_732_267_800_000)),
        metadata: BTreeMap::from([("device".to_owned(), b"laptop".to_vec())]),
        expiration_date: Some(at(1_732_271_230_426)),
    }
}
