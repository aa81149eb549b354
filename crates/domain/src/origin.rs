//! Where a request came from, as every event it causes records it: what a SIEM needs to
//! tell one caller's actions from another's and to follow them into other systems' logs.

use std::net::IpAddr;

use serde::Serialize;

/// The longest user agent an event keeps, in bytes; a longer one is cut at a character
/// boundary. Browsers send a few hundred at most; a client sending kilobytes gains nothing.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// The longest request or trace id an event keeps, in bytes (a caller may choose its
/// `x-request-id`).
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// The origin of a request: the delivery layer fills in what the connection and headers
/// say ([`Origin::of_request`]), the caller's token its `amr` ([`crate::Caller::with_origin`]).
/// Every field may be unknown; an event whose origin is all unknown records none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The client's address: the connection's peer, or, when the peer is a trusted proxy,
    /// the address the proxies' forwarding header names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The request's `x-request-id` (the caller's, or the one factors gave it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C trace id of the request, when traces are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// How the caller signed in, as its token says (`amr`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
}

impl Origin {
    /// The request's part of an origin, each text cut to its limit.
    pub fn of_request(
        client_address: Option<IpAddr>,
        user_agent: Option<&str>,
        request_id: Option<&str>,
        trace_id: Option<String>,
    ) -> Self {
        Self {
            client_address,
            user_agent: user_agent.map(|ua| cut(ua, MAX_USER_AGENT_BYTES)),
            request_id: request_id.map(|id| cut(id, MAX_REQUEST_ID_BYTES)),
            trace_id: trace_id.map(|id| cut(&id, MAX_REQUEST_ID_BYTES)),
            amr: Vec::new(),
        }
    }

    /// Whether nothing is known: then an event records no origin at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_cut_to_their_limits_at_a_character_boundary() {
        let long = "é".repeat(MAX_USER_AGENT_BYTES);
        let origin = Origin::of_request(None, Some(&long), Some(&"r".repeat(500)), None);
        let ua = origin.user_agent.expect("kept");
        assert!(ua.len() <= MAX_USER_AGENT_BYTES && ua.len() >= MAX_USER_AGENT_BYTES - 1, "{}", ua.len());
        assert!(ua.chars().all(|c| c == 'é'));
        assert_eq!(origin.request_id.expect("kept").len(), MAX_REQUEST_ID_BYTES);
    }

    #[test]
    fn an_origin_serializes_only_what_is_known() {
        let origin = Origin {
            client_address: Some("2001:db8::7".parse().expect("address")),
            user_agent: Some("curl/8.5".into()),
            request_id: None,
            trace_id: None,
            amr: vec!["pwd".into(), "otp".into()],
        };
        assert_eq!(
            serde_json::to_value(&origin).expect("json"),
            serde_json::json!({"clientAddress": "2001:db8::7", "userAgent": "curl/8.5", "amr": ["pwd", "otp"]})
        );
        assert!(Origin::default().is_empty());
        assert!(!origin.is_empty());
    }
}
