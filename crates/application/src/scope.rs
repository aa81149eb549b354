//! The instance a deployment serves and the `instance` / `organization` selectors a
//! request may carry (docs/CONTRACT.md: a selector naming anything else answers NOT_FOUND).

use std::collections::HashMap;

use factors_domain::{InstanceId, OrgId, User};

use crate::{ErrorKind, Failure};

/// The one instance this deployment serves, from configuration.
#[derive(Debug, Clone)]
pub struct InstanceContext {
    pub id: InstanceId,
    /// Domains of the instance, compared without regard to case.
    pub domains: Vec<String>,
    /// Known organization domains and the organization each belongs to.
    pub org_domains: HashMap<String, OrgId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceSelector {
    Id(String),
    Domain(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgSelector {
    Id(OrgId),
    Domain(String),
}

/// The optional selectors of a request (`instance.*`, `organization.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestScope {
    pub instance: Option<InstanceSelector>,
    pub organization: Option<OrgSelector>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("instance not found")]
    InstanceNotFound,
    #[error("organization not found")]
    OrgNotFound,
}

impl From<ScopeError> for Failure {
    fn from(error: ScopeError) -> Self {
        match error {
            ScopeError::InstanceNotFound => Self::new(ErrorKind::NotFound, "INSTANCE-NotFound", "instance not found"),
            ScopeError::OrgNotFound => Self::new(ErrorKind::NotFound, "ORG-NotFound", "organization not found"),
        }
    }
}

/// The organization a request is narrowed to, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgFilter(Option<OrgId>);

impl OrgFilter {
    pub fn org(&self) -> Option<&OrgId> {
        self.0.as_ref()
    }

    /// Whether `user` lies inside the filter; a user outside it is answered as not found.
    pub fn admits(&self, user: &User) -> bool {
        self.0.as_ref().is_none_or(|org| org == &user.org)
    }
}

impl InstanceContext {
    /// Checks the request's selectors against this instance and resolves the organization.
    ///
    /// # Errors
    /// [`ScopeError::InstanceNotFound`] when `instance` names another instance,
    /// [`ScopeError::OrgNotFound`] for an unknown organization domain.
    pub fn resolve(&self, scope: &RequestScope) -> Result<OrgFilter, ScopeError> {
        let instance_matches = match &scope.instance {
            None => true,
            Some(InstanceSelector::Id(id)) => id == self.id.as_str(),
            Some(InstanceSelector::Domain(domain)) => self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)),
        };
        if !instance_matches {
            return Err(ScopeError::InstanceNotFound);
        }
        let org = match &scope.organization {
            None => None,
            Some(OrgSelector::Id(id)) => Some(id.clone()),
            Some(OrgSelector::Domain(domain)) => Some(
                self.org_domains
                    .iter()
                    .find(|(d, _)| d.eq_ignore_ascii_case(domain))
                    .map(|(_, org)| org.clone())
                    .ok_or(ScopeError::OrgNotFound)?,
            ),
        };
        Ok(OrgFilter(org))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> InstanceContext {
        InstanceContext {
            id: InstanceId::new("inst-1").expect("valid"),
            domains: vec!["auth.example.com".into()],
            org_domains: HashMap::from([("acme.example.com".into(), OrgId::new("org-a").expect("valid"))]),
        }
    }

    fn org(id: &str) -> OrgId {
        OrgId::new(id).expect("valid")
    }

    #[test]
    fn selectors_resolve_against_the_configured_instance() {
        let cases = [
            (RequestScope::default(), Ok(None), "none"),
            (
                RequestScope { instance: Some(InstanceSelector::Id("inst-1".into())), organization: None },
                Ok(None),
                "own id",
            ),
            (
                RequestScope {
                    instance: Some(InstanceSelector::Domain("AUTH.example.com".into())),
                    organization: None,
                },
                Ok(None),
                "own domain, any case",
            ),
            (
                RequestScope { instance: Some(InstanceSelector::Id("inst-2".into())), organization: None },
                Err(ScopeError::InstanceNotFound),
                "other id",
            ),
            (
                RequestScope {
                    instance: Some(InstanceSelector::Domain("evil.example.com".into())),
                    organization: None,
                },
                Err(ScopeError::InstanceNotFound),
                "other domain",
            ),
            (
                RequestScope { instance: None, organization: Some(OrgSelector::Id(org("org-b"))) },
                Ok(Some(org("org-b"))),
                "org id",
            ),
            (
                RequestScope { instance: None, organization: Some(OrgSelector::Domain("acme.example.com".into())) },
                Ok(Some(org("org-a"))),
                "known org domain",
            ),
            (
                RequestScope { instance: None, organization: Some(OrgSelector::Domain("nope.example.com".into())) },
                Err(ScopeError::OrgNotFound),
                "unknown org domain",
            ),
        ];
        for (scope, expected, case) in cases {
            assert_eq!(context().resolve(&scope).map(|f| f.org().cloned()), expected, "{case}");
        }
    }
}
