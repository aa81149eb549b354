//! Who may do what to a user: callers, their permissions, and the visibility and
//! permission rules of docs/CONTRACT.md ("Who may do what") as pure functions.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{OrgId, Origin, User, UserId};

/// A permission, as named in role mappings (`user.write`, `session.read`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    UserRead,
    UserWrite,
    UserCredentialWrite,
    UserDelete,
    /// Create sessions and run their checks and challenges (a login UI).
    SessionWrite,
    /// Read any session of the instance.
    SessionRead,
    /// End any session of the instance.
    SessionDelete,
    /// Read the login policy of an organization (or, instance-wide, the instance default).
    PolicyRead,
    /// Set the login policy of an organization (or, instance-wide, the instance default).
    PolicyWrite,
    /// Read the instance's event feed, every stream (a SIEM). Holds instance-wide only.
    EventsRead,
}

impl Permission {
    pub const ALL: [Self; 10] = [
        Self::UserRead,
        Self::UserWrite,
        Self::UserCredentialWrite,
        Self::UserDelete,
        Self::SessionWrite,
        Self::SessionRead,
        Self::SessionDelete,
        Self::PolicyRead,
        Self::PolicyWrite,
        Self::EventsRead,
    ];

    /// The permissions on users: holding one of them in some scope lets a caller learn
    /// whether users exist there.
    pub const USER: [Self; 4] = [Self::UserRead, Self::UserWrite, Self::UserCredentialWrite, Self::UserDelete];

    /// The permissions on sessions: they hold instance-wide only (sessions belong to the
    /// instance, not to an organization).
    pub const SESSION: [Self; 3] = [Self::SessionWrite, Self::SessionRead, Self::SessionDelete];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRead => "user.read",
            Self::UserWrite => "user.write",
            Self::UserCredentialWrite => "user.credential.write",
            Self::UserDelete => "user.delete",
            Self::SessionWrite => "session.write",
            Self::SessionRead => "session.read",
            Self::SessionDelete => "session.delete",
            Self::PolicyRead => "policy.read",
            Self::PolicyWrite => "policy.write",
            Self::EventsRead => "events.read",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission {0:?} (known: user.read, user.write, user.credential.write, user.delete, session.write, \
     session.read, session.delete, policy.read, policy.write, events.read)"
)]
pub struct PermissionParseError(pub String);

impl FromStr for Permission {
    type Err = PermissionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| PermissionParseError(s.to_owned()))
    }
}

/// Where a permission holds: the whole instance or one organization.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Instance,
    Org(OrgId),
}

impl Scope {
    fn covers(&self, org: &OrgId) -> bool {
        match self {
            Self::Instance => true,
            Self::Org(scoped) => scoped == org,
        }
    }
}

/// One permission in one scope, the result of mapping a token's role grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    pub permission: Permission,
    pub scope: Scope,
}

/// How the caller's token says its user signed in: OpenID Connect's `amr` (RFC 8176) and
/// `auth_time`. Empty when the token says nothing (a service account's, say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authentication {
    /// The authentication methods, as the token names them (`pwd`, `otp`, `sms`, `mfa`, ...).
    pub methods: Vec<String>,
    /// When the user last signed in with them.
    pub at: Option<DateTime<Utc>>,
}

impl Authentication {
    /// The `amr` values that name a second factor: a one-time password (`otp`), a code by
    /// SMS (`sms`), several factors (`mfa`), a hardware or software key (`hwk`, `swk`).
    pub const SECOND_FACTORS: [&'static str; 5] = ["otp", "sms", "mfa", "hwk", "swk"];

    /// Whether the sign-in used a second factor and happened at most `max_age` before `now`.
    /// A sign-in stamped a little after `now` (a clock ahead of ours) counts as fresh; the
    /// token verifier refuses tokens stamped further ahead than its leeway.
    pub fn is_second_factor_within(&self, max_age: TimeDelta, now: DateTime<Utc>) -> bool {
        self.names_second_factor() && self.at.is_some_and(|at| now - at <= max_age)
    }

    /// Whether the sign-in used a second factor, whenever it was.
    pub fn names_second_factor(&self) -> bool {
        self.methods.iter().any(|m| Self::SECOND_FACTORS.contains(&m.as_str()))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// The caller's own organization, when the token names one.
    pub org: Option<OrgId>,
    pub grants: Vec<Grant>,
    /// How the caller signed in, for rules that ask for a recent second factor.
    pub authentication: Authentication,
    /// Where the request came from, recorded by every event it causes.
    pub origin: Origin,
}

impl Caller {
    /// The caller of a request from `origin`: the origin, with the `amr` of the caller's
    /// token, is what the events it causes record.
    #[must_use]
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = Origin { amr: self.authentication.methods.clone(), ..origin };
        self
    }

    /// Whether the caller is `user`: the same id **and** the same organization. An id is
    /// unique within an instance only while it lives; a manager of another organization
    /// may create a user with any free id, so `sub` alone does not name the caller's own
    /// user. A caller whose token names no organization is never a user.
    pub fn is(&self, user: &User) -> bool {
        self.user_id == user.id && self.org.as_ref() == Some(&user.org)
    }

    /// Whether the token's `sub` is `user`'s id, whatever organization the token names.
    /// Being the user ([`Caller::is`]) is needed to *gain* the user's own rights; bearing
    /// its id is enough to be held to the limits that protect the user (never skipping the
    /// phone's proof on oneself, the login policy's step-up and last-factor rules): a
    /// token of the user whose organization claim is absent, or another, must not escape
    /// them by holding an administrator's role.
    pub fn bears_id_of(&self, user: &User) -> bool {
        self.user_id == user.id
    }

    /// Whether the caller may turn out to be user `id` once it is read: same id, and an
    /// organization to compare.
    fn may_be(&self, id: &UserId) -> bool {
        &self.user_id == id && self.org.is_some()
    }

    /// Whether the caller holds `permission` on users of `org` (there or instance-wide).
    pub fn has(&self, permission: Permission, org: &OrgId) -> bool {
        self.grants.iter().any(|g| g.permission == permission && g.scope.covers(org))
    }

    fn has_any(&self, permissions: &[Permission], org: &OrgId) -> bool {
        permissions.iter().any(|p| self.has(*p, org))
    }

    /// Whether the caller holds any user permission in any scope.
    pub fn holds_any_user_permission(&self) -> bool {
        self.grants.iter().any(|g| Permission::USER.contains(&g.permission))
    }

    /// Whether the caller holds `permission` instance-wide (session permissions hold only so).
    pub fn has_instance_wide(&self, permission: Permission) -> bool {
        self.grants.iter().any(|g| g.permission == permission && g.scope == Scope::Instance)
    }

    /// Whether the caller may know that `user` exists: it is the user, or it holds some
    /// user permission on the user's organization.
    pub fn can_see(&self, user: &User) -> bool {
        self.is(user) || self.has_any(&Permission::USER, &user.org)
    }

    /// The organizations whose users the caller may list: those where it holds a user
    /// permission, `None` for every one when it holds one instance-wide.
    ///
    /// # Errors
    /// [`AccessRefusal::PermissionDenied`] for a caller with no user permission at all.
    pub fn listable_orgs(&self) -> Result<Option<Vec<OrgId>>, AccessRefusal> {
        let mut orgs = Vec::new();
        for grant in self.grants.iter().filter(|g| Permission::USER.contains(&g.permission)) {
            match &grant.scope {
                Scope::Instance => return Ok(None),
                Scope::Org(org) if !orgs.contains(org) => orgs.push(org.clone()),
                Scope::Org(_) => {}
            }
        }
        if orgs.is_empty() { Err(AccessRefusal::PermissionDenied) } else { Ok(Some(orgs)) }
    }

    /// The answer for a user the caller may not see (or that does not exist): not found
    /// for a caller with user permissions somewhere, who may learn what exists in its
    /// scope; permission denied for anyone else, whether the user exists or not.
    fn hidden(&self) -> AccessRefusal {
        if self.holds_any_user_permission() { AccessRefusal::UserNotFound } else { AccessRefusal::PermissionDenied }
    }
}

/// What a caller wants to do to an existing user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the user and its authenticators.
    Read,
    /// Add, verify or remove an authenticator the ordinary way (the user proves the phone).
    /// `self_service` says whether users may do this to themselves.
    ManageCredentials { self_service: bool },
    /// Register a phone without proof: return the code to the caller, or mark the
    /// number verified. Never allowed on oneself: it would skip the proof of possession.
    SkipPhoneProof,
    /// Delete the user.
    Delete,
    /// Lock, unlock, deactivate or activate the user: with `user.write` on its organization.
    ChangeState,
    /// Read the user's audit trail. Only with `user.read`: the trail names who acted on the
    /// user (other users' ids), which a user may not learn about itself without it.
    ReadEvents,
}

/// A refusal by the access rules. The order of the checks makes sure a caller without
/// any user permission never learns whether a user exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    #[error("the caller may not do this")]
    PermissionDenied,
    #[error("the user does not exist or is not visible to the caller")]
    UserNotFound,
}

/// Rule 4, first half, applied before any lookup: a caller that cannot be `target` (another
/// id, or no organization to match) and holds no user permission in any scope is refused
/// outright, whether or not `target` exists.
///
/// # Errors
/// [`AccessRefusal::PermissionDenied`] for such a caller.
pub fn may_look_up(caller: &Caller, target: &UserId) -> Result<(), AccessRefusal> {
    if caller.may_be(target) || caller.holds_any_user_permission() {
        Ok(())
    } else {
        Err(AccessRefusal::PermissionDenied)
    }
}

/// Rules 2 to 4 once the user with id `target` was looked up (`None`: it does not exist).
///
/// # Errors
/// - [`AccessRefusal::PermissionDenied`] when [`may_look_up`] refuses.
/// - When the user does not exist or the caller may not see it: [`AccessRefusal::UserNotFound`]
///   for a caller with user permissions somewhere, [`AccessRefusal::PermissionDenied`] for
///   anyone else (a caller that only bears the id of a user of another organization learns
///   nothing from the answer).
/// - [`AccessRefusal::PermissionDenied`] when the caller may see the user but not do `action`.
pub fn authorize<'u>(
    caller: &Caller,
    target: &UserId,
    user: Option<&'u User>,
    action: Action,
) -> Result<&'u User, AccessRefusal> {
    may_look_up(caller, target)?;
    let user = user.filter(|u| &u.id == target && caller.can_see(u)).ok_or_else(|| caller.hidden())?;
    let may_write_credentials = caller.has_any(&[Permission::UserWrite, Permission::UserCredentialWrite], &user.org);
    let allowed = match action {
        Action::Read => true,
        Action::ManageCredentials { self_service } => (caller.is(user) && self_service) || may_write_credentials,
        Action::SkipPhoneProof => !caller.bears_id_of(user) && may_write_credentials,
        Action::Delete => caller.has(Permission::UserDelete, &user.org),
        Action::ChangeState => caller.has(Permission::UserWrite, &user.org),
        Action::ReadEvents => caller.has(Permission::UserRead, &user.org),
    };
    if allowed { Ok(user) } else { Err(AccessRefusal::PermissionDenied) }
}

/// Whether the caller may create users anywhere: checked before the request's selectors
/// are resolved, so a caller that may not learns nothing from their answers.
///
/// # Errors
/// [`AccessRefusal::PermissionDenied`] without `user.write` in any scope.
pub fn may_create_users(caller: &Caller) -> Result<(), AccessRefusal> {
    if caller.grants.iter().any(|g| g.permission == Permission::UserWrite) {
        Ok(())
    } else {
        Err(AccessRefusal::PermissionDenied)
    }
}

/// Whether the caller may create users in `org`.
///
/// # Errors
/// [`AccessRefusal::PermissionDenied`] without `user.write` on `org`.
pub fn may_create_user_in(caller: &Caller, org: &OrgId) -> Result<(), AccessRefusal> {
    if caller.has(Permission::UserWrite, org) { Ok(()) } else { Err(AccessRefusal::PermissionDenied) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Contact, SchemaId, UserData, UserState};
    use chrono::{TimeZone, Utc};

    pub(crate) fn org(id: &str) -> OrgId {
        OrgId::new(id).expect("valid org id")
    }

    pub(crate) fn user(id: &str, in_org: &str) -> User {
        let at = Utc.with_ymd_and_hms(2024, 11, 22, 9, 27, 10).single().expect("valid time");
        User {
            id: UserId::new(id).expect("valid user id"),
            org: org(in_org),
            state: UserState::Active,
            schema_id: SchemaId::new("human").expect("valid schema id"),
            data: UserData::default(),
            contact: Contact::default(),
            created: at,
            changed: at,
            sequence: 1,
        }
    }

    pub(crate) fn caller(id: &str, grants: &[(Permission, Option<&str>)]) -> Caller {
        Caller {
            user_id: UserId::new(id).expect("valid caller id"),
            org: Some(org("org-a")),
            grants: grants
                .iter()
                .map(|(permission, scope)| Grant {
                    permission: *permission,
                    scope: scope.map_or(Scope::Instance, |o| Scope::Org(org(o))),
                })
                .collect(),
            authentication: Default::default(),
            origin: Origin::default(),
        }
    }

    #[test]
    fn a_caller_from_an_origin_records_it_with_the_amr_of_its_token_whatever_the_origin_said() {
        let mut alice = caller("alice", &[]);
        alice.authentication.methods = vec!["pwd".into(), "sms".into()];
        let from = Origin { amr: vec!["forged".into()], ..Origin::of_request(None, Some("app/1"), Some("r-9"), None) };
        let origin = alice.with_origin(from).origin;
        assert_eq!(origin.amr, ["pwd", "sms"]);
        assert_eq!((origin.user_agent.as_deref(), origin.request_id.as_deref()), (Some("app/1"), Some("r-9")));
    }

    #[test]
    fn a_caller_lists_the_users_of_the_organizations_it_holds_a_user_permission_on_or_of_all() {
        let by_org = caller("bob", &[(Permission::UserRead, Some("org-a")), (Permission::UserWrite, Some("org-b"))]);
        assert_eq!(by_org.listable_orgs(), Ok(Some(vec![org("org-a"), org("org-b")])));
        let repeated = caller("bob", &[(Permission::UserRead, Some("org-a")), (Permission::UserWrite, Some("org-a"))]);
        assert_eq!(repeated.listable_orgs(), Ok(Some(vec![org("org-a")])));
        let everywhere = caller("bob", &[(Permission::UserRead, Some("org-a")), (Permission::UserRead, None)]);
        assert_eq!(everywhere.listable_orgs(), Ok(None));
        let no_user_permission = caller("bob", &[(Permission::PolicyRead, None)]);
        assert_eq!(no_user_permission.listable_orgs(), Err(AccessRefusal::PermissionDenied));
    }

    fn alice_id() -> UserId {
        UserId::new("alice").expect("valid user id")
    }

    const MANAGE: Action = Action::ManageCredentials { self_service: true };
    const WRITER: [(Permission, Option<&str>); 2] =
        [(Permission::UserRead, Some("org-a")), (Permission::UserWrite, Some("org-a"))];

    #[test]
    fn a_user_may_manage_its_own_credentials() {
        let alice = user("alice", "org-a");
        assert_eq!(authorize(&caller("alice", &[]), &alice.id, Some(&alice), MANAGE), Ok(&alice));
    }

    #[test]
    fn self_service_can_be_switched_off_by_policy() {
        let alice = user("alice", "org-a");
        let action = Action::ManageCredentials { self_service: false };
        assert_eq!(
            authorize(&caller("alice", &[]), &alice.id, Some(&alice), action),
            Err(AccessRefusal::PermissionDenied)
        );
    }

    #[test]
    fn a_caller_of_another_org_that_bears_the_users_id_is_not_the_user() {
        // Org B's manager made a user whose id is the `sub` of a caller of org A.
        let planted = user("alice", "org-b");
        let alice_of_a = caller("alice", &[]);
        for action in [Action::Read, MANAGE, Action::SkipPhoneProof, Action::Delete] {
            assert_eq!(
                authorize(&alice_of_a, &planted.id, Some(&planted), action),
                Err(AccessRefusal::PermissionDenied),
                "{action:?}: a stranger's answer"
            );
        }
        // With user permissions somewhere (not on org B), as any other user of org B: not found.
        let reader_of_a = caller("alice", &[(Permission::UserRead, Some("org-a"))]);
        assert_eq!(
            authorize(&reader_of_a, &planted.id, Some(&planted), Action::Read),
            Err(AccessRefusal::UserNotFound)
        );
    }

    #[test]
    fn a_caller_without_an_org_claim_is_never_the_user() {
        let alice = user("alice", "org-a");
        let orgless = Caller { org: None, ..caller("alice", &[]) };
        assert_eq!(may_look_up(&orgless, &alice.id), Err(AccessRefusal::PermissionDenied));
        assert_eq!(authorize(&orgless, &alice.id, Some(&alice), Action::Read), Err(AccessRefusal::PermissionDenied));
        assert_eq!(authorize(&orgless, &alice.id, Some(&alice), MANAGE), Err(AccessRefusal::PermissionDenied));
    }

    #[test]
    fn a_caller_without_permissions_gets_the_same_answer_whether_or_not_its_id_exists_elsewhere() {
        let alice_of_a = caller("alice", &[]);
        let planted = user("alice", "org-b");
        assert_eq!(
            authorize(&alice_of_a, &alice_id(), None, Action::Read),
            authorize(&alice_of_a, &alice_id(), Some(&planted), Action::Read),
        );
    }

    #[test]
    fn a_caller_without_any_permission_is_refused_before_the_lookup() {
        let bob = caller("bob", &[]);
        assert_eq!(may_look_up(&bob, &UserId::new("alice").expect("id")), Err(AccessRefusal::PermissionDenied));
        // ... and the answer is the same whether the user exists or not.
        assert_eq!(
            authorize(&bob, &UserId::new("alice").expect("id"), None, MANAGE),
            Err(AccessRefusal::PermissionDenied)
        );
        assert_eq!(
            authorize(&bob, &alice_id(), Some(&user("alice", "org-a")), MANAGE),
            Err(AccessRefusal::PermissionDenied)
        );
    }

    #[test]
    fn an_org_admin_may_manage_credentials_of_users_of_its_org() {
        let alice = user("alice", "org-a");
        for permission in [Permission::UserWrite, Permission::UserCredentialWrite] {
            let admin = caller("admin", &[(permission, Some("org-a"))]);
            assert_eq!(authorize(&admin, &alice.id, Some(&alice), MANAGE), Ok(&alice), "{permission:?}");
        }
    }

    #[test]
    fn an_admin_of_another_org_gets_not_found() {
        let other_admin = caller("admin", &[(Permission::UserWrite, Some("org-b"))]);
        assert_eq!(
            authorize(&other_admin, &alice_id(), Some(&user("alice", "org-a")), MANAGE),
            Err(AccessRefusal::UserNotFound)
        );
    }

    #[test]
    fn a_caller_with_permissions_gets_not_found_for_a_missing_user() {
        assert_eq!(
            authorize(&caller("admin", &WRITER), &UserId::new("ghost").expect("id"), None, MANAGE),
            Err(AccessRefusal::UserNotFound)
        );
    }

    #[test]
    fn a_read_only_caller_gets_permission_denied() {
        let reader = caller("reader", &[(Permission::UserRead, Some("org-a"))]);
        let alice = user("alice", "org-a");
        assert_eq!(authorize(&reader, &alice.id, Some(&alice), MANAGE), Err(AccessRefusal::PermissionDenied));
        assert_eq!(authorize(&reader, &alice.id, Some(&alice), Action::Read), Ok(&alice));
    }

    #[test]
    fn an_instance_admin_may_manage_users_of_every_org() {
        let iam = caller("iam", &[(Permission::UserWrite, None)]);
        for org in ["org-a", "org-b"] {
            let someone = user("someone", org);
            assert_eq!(authorize(&iam, &someone.id, Some(&someone), MANAGE), Ok(&someone), "{org}");
        }
    }

    #[test]
    fn skipping_the_phone_proof_needs_write_and_is_never_allowed_on_oneself() {
        let alice = user("alice", "org-a");
        let cases = [
            (caller("admin", &WRITER), Ok(&alice), "org admin"),
            (caller("alice", &[]), Err(AccessRefusal::PermissionDenied), "self"),
            (caller("alice", &WRITER), Err(AccessRefusal::PermissionDenied), "self with write"),
            (caller("reader", &[(Permission::UserRead, None)]), Err(AccessRefusal::PermissionDenied), "reader"),
        ];
        for (who, expected, case) in cases {
            assert_eq!(authorize(&who, &alice.id, Some(&alice), Action::SkipPhoneProof), expected, "{case}");
        }
    }

    #[test]
    fn skipping_the_phone_proof_on_oneself_is_refused_whatever_organization_the_token_names() {
        let alice = user("alice", "org-a");
        let writer_of_a = [(Permission::UserWrite, Some("org-a"))];
        for (org, case) in [(None, "no org claim"), (Some(org("org-b")), "another org")] {
            let alice_elsewhere = Caller { org, ..caller("alice", &writer_of_a) };
            assert_eq!(
                authorize(&alice_elsewhere, &alice.id, Some(&alice), Action::SkipPhoneProof),
                Err(AccessRefusal::PermissionDenied),
                "{case}"
            );
            // The manager's role still lets it manage its credentials the ordinary way.
            assert_eq!(authorize(&alice_elsewhere, &alice.id, Some(&alice), MANAGE), Ok(&alice), "{case}");
        }
    }

    #[test]
    fn deleting_needs_user_delete() {
        let alice = user("alice", "org-a");
        let deleter = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);
        assert_eq!(authorize(&deleter, &alice.id, Some(&alice), Action::Delete), Ok(&alice));
        assert_eq!(
            authorize(&caller("admin", &WRITER), &alice.id, Some(&alice), Action::Delete),
            Err(AccessRefusal::PermissionDenied)
        );
        assert_eq!(
            authorize(&caller("alice", &[]), &alice.id, Some(&alice), Action::Delete),
            Err(AccessRefusal::PermissionDenied)
        );
    }

    #[test]
    fn creating_users_needs_write_on_the_org() {
        assert_eq!(may_create_users(&caller("admin", &WRITER)), Ok(()));
        assert_eq!(
            may_create_users(&caller("reader", &[(Permission::UserRead, None), (Permission::UserDelete, None)])),
            Err(AccessRefusal::PermissionDenied)
        );
        assert_eq!(may_create_user_in(&caller("admin", &WRITER), &org("org-a")), Ok(()));
        assert_eq!(may_create_user_in(&caller("admin", &WRITER), &org("org-b")), Err(AccessRefusal::PermissionDenied));
    }

    #[test]
    fn reading_the_audit_trail_needs_user_read_on_the_users_org_even_for_the_user_itself() {
        let alice = user("alice", "org-a");
        let cases = [
            (caller("reader", &[(Permission::UserRead, Some("org-a"))]), Ok(&alice), "reader of the org"),
            (caller("iam", &[(Permission::UserRead, None)]), Ok(&alice), "instance-wide reader"),
            (caller("alice", &[(Permission::UserRead, Some("org-a"))]), Ok(&alice), "self with user.read"),
            (caller("alice", &[]), Err(AccessRefusal::PermissionDenied), "self without user.read"),
            (
                caller("admin", &[(Permission::UserWrite, Some("org-a"))]),
                Err(AccessRefusal::PermissionDenied),
                "writer",
            ),
            (caller("admin", &[(Permission::UserDelete, None)]), Err(AccessRefusal::PermissionDenied), "deleter"),
            (
                caller("reader-b", &[(Permission::UserRead, Some("org-b"))]),
                Err(AccessRefusal::UserNotFound),
                "other org",
            ),
            (caller("bob", &[]), Err(AccessRefusal::PermissionDenied), "plain user"),
        ];
        for (who, expected, case) in cases {
            assert_eq!(authorize(&who, &alice.id, Some(&alice), Action::ReadEvents), expected, "{case}");
        }
        // A caller without user permissions learns nothing of a missing user either.
        assert_eq!(
            authorize(&caller("bob", &[]), &alice_id(), None, Action::ReadEvents),
            Err(AccessRefusal::PermissionDenied)
        );
        assert_eq!(
            authorize(
                &caller("reader", &[(Permission::UserRead, Some("org-a"))]),
                &alice_id(),
                None,
                Action::ReadEvents
            ),
            Err(AccessRefusal::UserNotFound)
        );
    }

    #[test]
    fn permissions_parse_from_their_names() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert_eq!("user.everything".parse::<Permission>(), Err(PermissionParseError("user.everything".into())));
    }
}
