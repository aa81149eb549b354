//! The write pattern (docs/DESIGN.md, The write pattern): the states a use case decides
//! on, read from a cache first and then from the store, again after every refused decision
//! or lost race; whether a guarded write landed; and the answers shared by every use case
//! that follows it.

use chrono::{DateTime, Utc};
use factors_domain::{
    AccessRefusal, Action, Caller, OrgId, Transition, User, UserId, UserSnapshot, authorize, may_look_up,
};

use crate::ports::{SnapshotCache, Unexpected, UserReader, WriteError};
use crate::scope::{InstanceContext, OrgFilter, RequestScope, ScopeError};
use crate::{ErrorKind, Failure};

/// The `details` of a user-scoped answer: the user's id, when it was created, when this
/// change was committed, and the organization owning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub id: UserId,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    pub owner: OrgId,
}

impl Details {
    /// The details of `user` as it stands: GetUser's answer, where nothing was changed by
    /// the call, so `changed` is the user's last change.
    pub fn of(user: &User) -> Self {
        Self { id: user.id.clone(), created: user.created, changed: user.changed, owner: user.org.clone() }
    }

    /// The details of the write that moves `user` by `transition`.
    pub(crate) fn of_write(user: &User, transition: &Transition) -> Self {
        Self { changed: transition.to.changed, ..Self::of(user) }
    }
}

/// Why a user could not be looked up for an operation.
#[derive(Debug, thiserror::Error)]
pub enum UserLookupError {
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<UserLookupError> for Failure {
    fn from(error: UserLookupError) -> Self {
        match error {
            UserLookupError::Scope(e) => e.into(),
            UserLookupError::Access(e) => e.into(),
            UserLookupError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// The user for an operation that only reads: the request's selectors and the access
/// rules for `action`, on the store's state.
pub(crate) async fn authorized_snapshot(
    context: &InstanceContext,
    users: &dyn UserReader,
    caller: &Caller,
    scope: &RequestScope,
    id: &UserId,
    action: Action,
) -> Result<UserSnapshot, UserLookupError> {
    let mut reads = Reads::start(context, users, None, caller, scope, id).await?;
    let snapshot = reads.next().await?.and_then(|read| read.snapshot);
    authorize(caller, id, snapshot.as_ref().map(|s| &s.user), action)?;
    snapshot.ok_or_else(|| AccessRefusal::UserNotFound.into())
}

/// The answer when a user kept changing under every decision a use case made: the
/// client may simply try again.
pub(crate) fn contended() -> Failure {
    Failure::new(ErrorKind::Aborted, "USER-Contended", "the user changed concurrently; try again")
}

/// What a write on a user can fail with whatever it writes: the lookup (the request's
/// selectors, the access rules), a user that kept changing under every decision, or the
/// store. Each such use case's error holds it as its `Write` variant beside its own
/// refusals, and gets the conversions `?` needs from [`write_failure_conversions!`].
#[derive(Debug, thiserror::Error)]
pub enum WriteFailure {
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
    #[error("the user kept changing under every decision")]
    Contended,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<AccessRefusal> for WriteFailure {
    fn from(refusal: AccessRefusal) -> Self {
        Self::Lookup(refusal.into())
    }
}

impl From<WriteFailure> for Failure {
    fn from(error: WriteFailure) -> Self {
        match error {
            WriteFailure::Lookup(e) => e.into(),
            WriteFailure::Contended => contended(),
            WriteFailure::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// Converts what the write pattern's steps fail with ([`UserLookupError`], [`Unexpected`])
/// into the `Write` variant of a use case's error, so that `?` carries them there.
macro_rules! write_failure_conversions {
    ($error:ty) => {
        impl From<$crate::write_pattern::UserLookupError> for $error {
            fn from(e: $crate::write_pattern::UserLookupError) -> Self {
                Self::Write(e.into())
            }
        }

        impl From<$crate::ports::Unexpected> for $error {
            fn from(e: $crate::ports::Unexpected) -> Self {
                Self::Write(e.into())
            }
        }
    };
}
pub(crate) use write_failure_conversions;

/// How many times a use case decides before it gives up on a user that keeps changing
/// under it (each lost race means another writer won, so this bounds only the unlucky).
pub(crate) const MAX_DECISIONS: usize = 5;

/// One state to decide on.
pub(crate) struct Read {
    /// The user as read, `None` when it does not exist or lies outside the request's scope.
    pub snapshot: Option<UserSnapshot>,
    /// Whether it was read from the store just now: a refusal decided on a cached
    /// snapshot must be decided again on the store's, since the cache may be behind.
    pub fresh: bool,
    /// Whether it is the first state handed out: only its decision may rely on what this
    /// process keeps (a login policy,
    /// [`PoliciesInForce`](crate::use_cases::login_policy::PoliciesInForce)).
    pub first: bool,
}

impl Read {
    /// What a rule decided on this state, under a login policy read from the store just
    /// now or not (`policy_fresh`): the decision with the user it was made on; `None` when
    /// it must be decided again on the store's state (a refusal decided on a cached
    /// snapshot or a kept policy, either of which may be behind; or a decision on no user,
    /// which the rules never allow); or the refusal, decided on the store's state.
    ///
    /// # Errors
    /// The refusal, when it stands.
    pub(crate) fn decided<D, R>(
        self,
        planned: Result<D, R>,
        policy_fresh: bool,
    ) -> Result<Option<(UserSnapshot, D)>, R> {
        match planned {
            Ok(decision) => Ok(self.snapshot.map(|snapshot| (snapshot, decision))),
            Err(_) if !(self.fresh && policy_fresh) => Ok(None),
            Err(refusal) => Err(refusal),
        }
    }
}

/// Whether a guarded write landed; `false` when the user had moved on from the version it
/// was decided on, and the use case decides again on a new read.
///
/// # Errors
/// [`Unexpected`] when the store failed.
pub(crate) fn landed(written: Result<(), WriteError>) -> Result<bool, Unexpected> {
    match written {
        Ok(()) => Ok(true),
        Err(WriteError::Conflict) => Ok(false),
        Err(WriteError::Unexpected(e)) => Err(e),
    }
}

/// The states a write decides on, in the order the write pattern reads them
/// (docs/DESIGN.md, The write pattern): a cached snapshot when one is given, then the store's, read again after
/// every refused decision or lost race, at most [`MAX_DECISIONS`] times.
pub(crate) struct Reads<'a> {
    users: &'a dyn UserReader,
    id: UserId,
    filter: OrgFilter,
    cached: Option<UserSnapshot>,
    left: usize,
}

impl<'a> Reads<'a> {
    /// Refuses callers without any user permission before anything is read, then checks
    /// the request's selectors, then reads `id` from `cache` if given, else from `users`.
    /// A caller without user permissions (one that may only act on itself) learns nothing
    /// from the selectors either: one naming another instance or an unknown organization
    /// domain cannot select its own user, and answers as a user it may not see would.
    pub(crate) async fn start(
        context: &InstanceContext,
        users: &'a dyn UserReader,
        cache: Option<&dyn SnapshotCache>,
        caller: &Caller,
        scope: &RequestScope,
        id: &UserId,
    ) -> Result<Self, UserLookupError> {
        may_look_up(caller, id)?;
        let filter = context.resolve(scope).map_err(|e| {
            if caller.holds_any_user_permission() {
                UserLookupError::Scope(e)
            } else {
                AccessRefusal::PermissionDenied.into()
            }
        })?;
        let cached = match cache {
            Some(cache) => cache.get(id).await,
            None => None,
        };
        Ok(Self { users, id: id.clone(), filter, cached, left: MAX_DECISIONS })
    }

    /// The states of the user of `snapshot`, starting with `snapshot`: a state this
    /// process knows the store held a moment ago (what its own write left).
    pub(crate) fn continuing(users: &'a dyn UserReader, snapshot: UserSnapshot) -> Self {
        let id = snapshot.user.id.clone();
        Self { users, id, filter: OrgFilter::default(), cached: Some(snapshot), left: MAX_DECISIONS }
    }

    /// The next state to decide on; `None` once [`MAX_DECISIONS`] states were handed out.
    pub(crate) async fn next(&mut self) -> Result<Option<Read>, Unexpected> {
        let first = self.left == MAX_DECISIONS;
        if !self.next_turn() {
            return Ok(None);
        }
        let read = match self.cached.take() {
            Some(snapshot) => Read { snapshot: Some(snapshot), fresh: false, first },
            None => Read { snapshot: self.users.load(&self.id).await?, fresh: true, first },
        };
        Ok(Some(Read { snapshot: read.snapshot.filter(|s| self.admits(s)), ..read }))
    }

    /// Takes one of the [`MAX_DECISIONS`] turns, for a use case that reads the store in
    /// its own way (a code check reads the pending code too); `false` once none is left.
    pub(crate) fn next_turn(&mut self) -> bool {
        let left = self.left > 0;
        self.left = self.left.saturating_sub(1);
        left
    }

    /// Whether `snapshot` lies inside the request's scope; a user outside it is answered
    /// as not found.
    pub(crate) fn admits(&self, snapshot: &UserSnapshot) -> bool {
        self.filter.admits(&snapshot.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::use_cases::fixtures::{at, org, user, user_id};

    #[test]
    fn the_details_of_a_user_are_its_id_dates_and_organization_and_a_write_moves_changed() {
        let alice = user("alice", "org-a");
        assert_eq!(
            Details::of(&alice),
            Details { id: user_id("alice"), created: at(0), changed: at(1), owner: org("org-a") }
        );
        assert_eq!(Details::of_write(&alice, &Transition::next(&alice, at(7))).changed, at(7));
    }
}
