//! Audit events: every write appends one, in the same statement as the write.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::{OrgId, OtpSmsId, SchemaId, UserId};

/// What happened. Payloads carry masked phone numbers only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    UserAdded {
        org: OrgId,
        schema_id: SchemaId,
    },
    UserRemoved,
    OtpSmsAdded {
        authenticator: OtpSmsId,
        masked_phone: String,
        verified: bool,
    },
    OtpSmsVerified {
        authenticator: OtpSmsId,
    },
    /// `last_factor`: the user held no other verified second factor (an administrator's
    /// lockout recovery, or a removal no policy forbade).
    OtpSmsRemoved {
        authenticator: OtpSmsId,
        masked_phone: String,
        last_factor: bool,
    },
}

/// An event on the user aggregate: `actor` did `kind` to `user` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub user: UserId,
    pub actor: UserId,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

impl Event {
    /// The aggregate all events of factors belong to.
    pub const AGGREGATE_TYPE: &'static str = "user";

    /// The type of the event that ends a life of a user id: the audit trail of the id's
    /// current life starts after the last one.
    pub const REMOVED_TYPE: &'static str = "user.removed";

    /// ZITADEL's name of the event type.
    pub fn event_type(&self) -> &'static str {
        match self.kind {
            EventKind::UserAdded { .. } => "user.human.added",
            EventKind::UserRemoved => Self::REMOVED_TYPE,
            EventKind::OtpSmsAdded { .. } => "user.human.mfa.otp.sms.added",
            EventKind::OtpSmsVerified { .. } => "user.human.mfa.otp.sms.verified",
            EventKind::OtpSmsRemoved { .. } => "user.human.mfa.otp.sms.removed",
        }
    }

    /// The payload, self-contained: who, to whom, what and when, even read alone.
    pub fn payload(&self) -> serde_json::Value {
        let mut payload = json!({
            "actor": self.actor.as_str(),
            "userId": self.user.as_str(),
            "at": self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        });
        let details = match &self.kind {
            EventKind::UserAdded { org, schema_id } => json!({"orgId": org.as_str(), "schemaId": schema_id.as_str()}),
            EventKind::UserRemoved => json!({}),
            EventKind::OtpSmsAdded { authenticator, masked_phone, verified } => {
                json!({"otpSmsId": authenticator.as_str(), "phone": masked_phone, "isVerified": verified})
            }
            EventKind::OtpSmsVerified { authenticator } => json!({"otpSmsId": authenticator.as_str()}),
            EventKind::OtpSmsRemoved { authenticator, masked_phone, last_factor } => {
                json!({"otpSmsId": authenticator.as_str(), "phone": masked_phone, "lastFactor": last_factor})
            }
        };
        if let (Some(payload), serde_json::Value::Object(details)) = (payload.as_object_mut(), details) {
            payload.extend(details);
        }
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_removal_event_names_actor_user_authenticator_masked_phone_and_time() {
        let event = Event {
            user: UserId::new("u1").expect("id"),
            actor: UserId::new("admin").expect("id"),
            at: Utc.with_ymd_and_hms(2024, 11, 22, 9, 31, 2).single().expect("time"),
            kind: EventKind::OtpSmsRemoved {
                authenticator: OtpSmsId::new("a1").expect("id"),
                masked_phone: "+41******567".to_owned(),
                last_factor: true,
            },
        };
        assert_eq!(event.event_type(), "user.human.mfa.otp.sms.removed");
        assert_eq!(
            event.payload(),
            json!({"actor": "admin", "userId": "u1", "otpSmsId": "a1", "phone": "+41******567", "lastFactor": true,
                   "at": "2024-11-22T09:31:02Z"})
        );
    }
}
