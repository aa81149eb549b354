//! SearchUsers: the users the caller may see, a page at a time.
//!
//! A caller sees the users of the organizations where it holds a user permission
//! (`user.read`, `user.write`, `user.credential.write` or `user.delete`), of every
//! organization when it holds one instance-wide: the users GetUser would show it. A caller
//! holding none is refused, as GetUser refuses it any user but itself.
//!
//! The store pages through the selected users' ids; each user of the page is then read as
//! GetUser reads it (one indexed read each, so a page of 100 costs 102 reads, and none
//! scans) and shown only if it still is what the search selected: a user deleted, changed
//! or created again elsewhere between the two reads is left out of the page rather than
//! shown out of scope.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_domain::{AccessRefusal, Caller, OrgId, User, UserId, UserState};

use super::{Ports, Rules};
use crate::ports::{Clock, UserOrder, UserPage, UserReader, UserSearch};
use crate::scope::{InstanceContext, RequestScope};
use crate::use_cases::get_user::UserView;
use crate::write_pattern::UserLookupError;
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

/// The most users a page holds, and how many it holds when the request says 0: a larger
/// limit is cut down to this, as the answer's `appliedLimit` says.
pub const MAX_LIMIT: u32 = 100;

/// A filter as the request gives it, numbers as the protos number them. Filters side by
/// side must all hold (as in an `andFilter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchFilter {
    /// `userIdFilter`; `method` is a `TextFilterMethod`.
    UserId { id: String, method: i32 },
    /// `organizationIdFilter`.
    OrganizationId { id: String, method: i32 },
    /// `stateFilter`; `state` is a user `State`.
    State { state: i32 },
    /// `andFilter`.
    And(Vec<SearchFilter>),
    /// Any other filter, by its wire name (`orFilter`, `emailFilter`, ...): refused.
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchUsersCommand {
    pub scope: RequestScope,
    /// `query.offset`: how many selected users come before the page.
    pub offset: u64,
    /// `query.limit`: 0 for [`MAX_LIMIT`].
    pub limit: u32,
    /// `query.desc`.
    pub descending: bool,
    /// `sortingColumn`, a `FieldName`: 0 sorts by id.
    pub sorting_column: i32,
    pub filters: Vec<SearchFilter>,
}

/// One page of users, and how many the search selects in all.
#[derive(Debug, Clone, PartialEq)]
pub struct UsersPage {
    pub users: Vec<UserView>,
    pub total: u64,
    /// The limit the page was read with.
    pub applied_limit: u32,
    /// When the page was read.
    pub at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchUsersError {
    /// A filter or sorting factors does not search by; the text names it.
    #[error("{0} is not supported in a user search")]
    Unsupported(String),
    /// A filter factors searches by, with a value it cannot hold; the text says which.
    #[error("{0}")]
    Invalid(String),
    /// The selectors, a caller holding no user permission, or the store.
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
}

impl From<AccessRefusal> for SearchUsersError {
    fn from(refusal: AccessRefusal) -> Self {
        Self::Lookup(refusal.into())
    }
}

impl From<SearchUsersError> for Failure {
    fn from(error: SearchUsersError) -> Self {
        match error {
            e @ SearchUsersError::Unsupported(_) => {
                Failure::new(ErrorKind::InvalidArgument, "USER-SearchUnsupported", e.to_string())
            }
            SearchUsersError::Invalid(message) => {
                Failure::new(ErrorKind::InvalidArgument, "USER-SearchInvalid", message)
            }
            SearchUsersError::Lookup(e) => e.into(),
        }
    }
}

/// Searches the users the caller may see.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SearchUsers: Send + Sync {
    /// # Errors
    /// [`SearchUsersError::Unsupported`] and [`SearchUsersError::Invalid`] for the request,
    /// before anything is read; [`SearchUsersError::Lookup`] for the selectors, a caller
    /// with no user permission (PERMISSION_DENIED) and the store.
    async fn search_users(&self, caller: &Caller, command: SearchUsersCommand) -> Result<UsersPage, SearchUsersError>;
}

pub struct SearchUsersService {
    pub context: Arc<InstanceContext>,
    /// Always the store: an answer is never shown from a cache.
    pub users: Arc<dyn UserReader>,
    pub clock: Arc<dyn Clock>,
}

impl SearchUsersService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules) -> Self {
        Self { context: rules.context.clone(), users: ports.users.clone(), clock: ports.clock.clone() }
    }
}

#[async_trait]
impl SearchUsers for SearchUsersService {
    #[tracing::instrument(name = "search_users", level = "debug", skip_all, fields(actor = %caller.user_id), err(level = "debug", Display))]
    async fn search_users(&self, caller: &Caller, command: SearchUsersCommand) -> Result<UsersPage, SearchUsersError> {
        let limit = if command.limit == 0 { MAX_LIMIT } else { command.limit.min(MAX_LIMIT) };
        let mut search = UserSearch {
            within: None,
            org: None,
            id: None,
            state: None,
            order: order(command.sorting_column)?,
            descending: command.descending,
            offset: command.offset,
            limit,
        };
        let mut conditions = Conditions::default();
        for filter in command.filters {
            conditions.add(filter)?;
        }
        // Permission first: a caller that may see no user learns nothing from the selectors.
        search.within = caller.listable_orgs()?;
        let org = self.context.resolve(&command.scope).map_err(UserLookupError::from)?;
        conditions.org(org.org().cloned());
        let at = self.clock.now();
        if !conditions.apply(&mut search) {
            return Ok(UsersPage { users: Vec::new(), total: 0, applied_limit: limit, at });
        }
        let UserPage { ids, total } = self.users.search(&search).await.map_err(UserLookupError::from)?;
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(snapshot) = self.users.load(&id).await.map_err(UserLookupError::from)?
                && selects(&search, &snapshot.user)
            {
                users.push(snapshot);
            }
        }
        Ok(UsersPage { users, total, applied_limit: limit, at })
    }
}

/// Whether `user`, read after the page, is still one `search` selects.
fn selects(search: &UserSearch, user: &User) -> bool {
    search.within.as_ref().is_none_or(|orgs| orgs.contains(&user.org))
        && search.org.as_ref().is_none_or(|org| org == &user.org)
        && search.id.as_ref().is_none_or(|id| id == &user.id)
        && search.state.is_none_or(|state| state == user.state)
}

/// `sortingColumn`: the `FieldName`s factors sorts by.
fn order(field: i32) -> Result<UserOrder, SearchUsersError> {
    match field {
        0 | 1 => Ok(UserOrder::Id),
        2 => Ok(UserOrder::Created),
        3 => Ok(UserOrder::Changed),
        6 => Ok(UserOrder::State),
        4 => Err(SearchUsersError::Unsupported("sorting by email".into())),
        5 => Err(SearchUsersError::Unsupported("sorting by phone".into())),
        7 => Err(SearchUsersError::Unsupported("sorting by schema id".into())),
        8 => Err(SearchUsersError::Unsupported("sorting by schema type".into())),
        other => Err(SearchUsersError::Invalid(format!("sortingColumn {other} is not a field name"))),
    }
}

/// The conditions of the filters and the selectors, each either unset, one value, or two
/// values no user can match at once.
#[derive(Default)]
struct Conditions {
    org: Condition<OrgId>,
    id: Condition<UserId>,
    state: Condition<UserState>,
}

#[derive(Default)]
enum Condition<T> {
    #[default]
    Any,
    Is(T),
    Never,
}

impl<T: PartialEq> Condition<T> {
    fn and(&mut self, value: T) {
        *self = match std::mem::take(self) {
            Self::Any => Self::Is(value),
            Self::Is(held) if held == value => Self::Is(held),
            Self::Is(_) | Self::Never => Self::Never,
        };
    }

    /// The value to search by (`Some(None)`: any), or `None` when nothing can match.
    fn value(self) -> Option<Option<T>> {
        match self {
            Self::Any => Some(None),
            Self::Is(value) => Some(Some(value)),
            Self::Never => None,
        }
    }
}

impl Conditions {
    fn add(&mut self, filter: SearchFilter) -> Result<(), SearchUsersError> {
        match filter {
            SearchFilter::UserId { id, method } => {
                equals_only(method, "userIdFilter")?;
                let id = UserId::new(id).map_err(|e| SearchUsersError::Invalid(format!("userIdFilter: {e}")))?;
                self.id.and(id);
            }
            SearchFilter::OrganizationId { id, method } => {
                equals_only(method, "organizationIdFilter")?;
                let org =
                    OrgId::new(id).map_err(|e| SearchUsersError::Invalid(format!("organizationIdFilter: {e}")))?;
                self.org.and(org);
            }
            SearchFilter::State { state } => self.state.and(match state {
                1 => UserState::Active,
                2 => UserState::Inactive,
                3 => UserState::Deleted,
                4 => UserState::Locked,
                other => return Err(SearchUsersError::Invalid(format!("stateFilter: {other} is not a user state"))),
            }),
            SearchFilter::And(filters) => {
                for filter in filters {
                    self.add(filter)?;
                }
            }
            SearchFilter::Other(name) => return Err(SearchUsersError::Unsupported(format!("the {name}"))),
        }
        Ok(())
    }

    /// The request's organization selector, a condition like the filter's.
    fn org(&mut self, org: Option<OrgId>) {
        if let Some(org) = org {
            self.org.and(org);
        }
    }

    /// Sets the search's conditions; `false` when no user can meet them all.
    fn apply(self, search: &mut UserSearch) -> bool {
        let (Some(org), Some(id), Some(state)) = (self.org.value(), self.id.value(), self.state.value()) else {
            return false;
        };
        (search.org, search.id, search.state) = (org, id, state);
        true
    }
}

/// A text filter's method: factors matches ids exactly (`TEXT_FILTER_METHOD_EQUALS`, 0).
fn equals_only(method: i32, filter: &str) -> Result<(), SearchUsersError> {
    match method {
        0 => Ok(()),
        1..=4 => {
            Err(SearchUsersError::Unsupported(format!("a {filter} matching other than exactly (method {method})")))
        }
        other => Err(SearchUsersError::Invalid(format!("{filter}: {other} is not a text filter method"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockUserReader;
    use crate::use_cases::fixtures::*;
    use factors_domain::{Permission, UserSnapshot};

    fn command(filters: Vec<SearchFilter>) -> SearchUsersCommand {
        SearchUsersCommand {
            scope: RequestScope::default(),
            offset: 0,
            limit: 0,
            descending: false,
            sorting_column: 0,
            filters,
        }
    }

    fn service(users: MockUserReader) -> SearchUsersService {
        SearchUsersService { context: context(), users: Arc::new(users), clock: clock(at(9)) }
    }

    /// A store holding `known`, which pages through them as the search asks and records
    /// the searches it was sent.
    fn store(known: Vec<UserSnapshot>, searches: Arc<std::sync::Mutex<Vec<UserSearch>>>) -> MockUserReader {
        let mut users = MockUserReader::new();
        let held = known.clone();
        users.expect_search().returning(move |search| {
            searches.lock().expect("not poisoned").push(search.clone());
            let selected: Vec<UserId> =
                held.iter().filter(|s| selects(search, &s.user)).map(|s| s.user.id.clone()).collect();
            let page = selected
                .iter()
                .skip(usize::try_from(search.offset).expect("small"))
                .take(usize::try_from(search.limit).expect("small"))
                .cloned()
                .collect();
            Ok(UserPage { ids: page, total: u64::try_from(selected.len()).expect("small") })
        });
        users.expect_load().returning(move |id| Ok(known.iter().find(|s| &s.user.id == id).cloned()));
        users
    }

    fn in_org(id: &str, org: &str) -> UserSnapshot {
        holding(user(id, org), vec![])
    }

    fn ids(page: &UsersPage) -> Vec<&str> {
        page.users.iter().map(|s| s.user.id.as_str()).collect()
    }

    fn everyone() -> Vec<UserSnapshot> {
        vec![in_org("alice", "org-a"), in_org("bob", "org-b"), in_org("carol", "org-a")]
    }

    #[tokio::test]
    async fn an_instance_wide_reader_sees_every_organization() {
        let searches = Arc::default();
        let service = service(store(everyone(), Arc::clone(&searches)));
        let reader = caller("admin", &[(Permission::UserRead, None)]);
        let page = service.search_users(&reader, command(vec![])).await.expect("searched");
        assert_eq!(ids(&page), ["alice", "bob", "carol"]);
        assert_eq!((page.total, page.applied_limit, page.at), (3, MAX_LIMIT, at(9)));
        assert_eq!(searches.lock().expect("not poisoned")[0].within, None);
    }

    #[tokio::test]
    async fn an_organization_manager_sees_its_organizations_users_only() {
        let searches = Arc::default();
        let service = service(store(everyone(), Arc::clone(&searches)));
        let page = service.search_users(&org_admin(), command(vec![])).await.expect("searched");
        assert_eq!(ids(&page), ["alice", "carol"]);
        assert_eq!(page.total, 2);
        assert_eq!(searches.lock().expect("not poisoned")[0].within, Some(vec![org("org-a")]));
    }

    #[tokio::test]
    async fn a_caller_without_user_permissions_is_refused_and_nothing_is_read() {
        let service = service(MockUserReader::new());
        let plain = caller("alice", &[(Permission::SessionWrite, None)]);
        let error = service.search_users(&plain, command(vec![])).await.expect_err("refused");
        let failure = Failure::from(error);
        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied"));
    }

    #[tokio::test]
    async fn filters_narrow_the_search_and_and_filters_flatten() {
        let searches = Arc::default();
        let service = service(store(everyone(), Arc::clone(&searches)));
        let reader = caller("admin", &[(Permission::UserRead, None)]);
        let filters = vec![
            SearchFilter::OrganizationId { id: "org-a".into(), method: 0 },
            SearchFilter::And(vec![
                SearchFilter::State { state: 1 },
                SearchFilter::UserId { id: "carol".into(), method: 0 },
            ]),
        ];
        let page = service.search_users(&reader, command(filters)).await.expect("searched");
        assert_eq!(ids(&page), ["carol"]);
        let sent = searches.lock().expect("not poisoned")[0].clone();
        assert_eq!(
            (sent.org, sent.id, sent.state),
            (Some(org("org-a")), Some(user_id("carol")), Some(UserState::Active))
        );
    }

    #[tokio::test]
    async fn filters_no_user_can_meet_answer_an_empty_page_without_reading() {
        let service = service(MockUserReader::new());
        let reader = caller("admin", &[(Permission::UserRead, None)]);
        let filters = vec![
            SearchFilter::UserId { id: "alice".into(), method: 0 },
            SearchFilter::UserId { id: "bob".into(), method: 0 },
        ];
        let page = service.search_users(&reader, command(filters)).await.expect("searched");
        assert_eq!((page.users.len(), page.total), (0, 0));
    }

    #[tokio::test]
    async fn the_limit_is_cut_to_the_maximum_and_the_page_starts_at_the_offset() {
        let searches = Arc::default();
        let service = service(store(everyone(), Arc::clone(&searches)));
        let reader = caller("admin", &[(Permission::UserRead, None)]);
        let page = service
            .search_users(&reader, SearchUsersCommand { offset: 1, limit: 5000, sorting_column: 3, ..command(vec![]) })
            .await
            .expect("searched");
        assert_eq!((ids(&page), page.total, page.applied_limit), (vec!["bob", "carol"], 3, MAX_LIMIT));
        let sent = searches.lock().expect("not poisoned")[0].clone();
        assert_eq!((sent.offset, sent.limit, sent.order), (1, MAX_LIMIT, UserOrder::Changed));
    }

    #[tokio::test]
    async fn a_user_that_changed_after_the_page_was_read_is_left_out() {
        let mut users = MockUserReader::new();
        users.expect_search().returning(|_| Ok(UserPage { ids: vec![user_id("alice"), user_id("bob")], total: 2 }));
        // Alice was deleted and created again in org-b, Bob deleted, since the page.
        users.expect_load().returning(|id| Ok((id.as_str() == "alice").then(|| in_org("alice", "org-b"))));
        let page = service(users).search_users(&org_admin(), command(vec![])).await.expect("searched");
        assert_eq!((page.users.len(), page.total), (0, 2));
    }

    #[tokio::test]
    async fn unsupported_and_invalid_requests_are_refused_before_anything_is_read() {
        let reader = caller("admin", &[(Permission::UserRead, None)]);
        let cases = [
            (command(vec![SearchFilter::Other("orFilter")]), "USER-SearchUnsupported", "the orFilter is not supported"),
            (
                command(vec![SearchFilter::UserId { id: "alice".into(), method: 2 }]),
                "USER-SearchUnsupported",
                "userIdFilter matching other than exactly",
            ),
            (SearchUsersCommand { sorting_column: 4, ..command(vec![]) }, "USER-SearchUnsupported", "sorting by email"),
            (command(vec![SearchFilter::State { state: 9 }]), "USER-SearchInvalid", "9 is not a user state"),
            (
                command(vec![SearchFilter::UserId { id: String::new(), method: 0 }]),
                "USER-SearchInvalid",
                "userIdFilter",
            ),
            (SearchUsersCommand { sorting_column: 42, ..command(vec![]) }, "USER-SearchInvalid", "not a field name"),
        ];
        for (command, id, says) in cases {
            let failure = Failure::from(
                service(MockUserReader::new()).search_users(&reader, command).await.expect_err("refused"),
            );
            assert_eq!((failure.kind, failure.id), (ErrorKind::InvalidArgument, id), "{says}");
            assert!(failure.message.contains(says), "{} should say {says}", failure.message);
        }
    }
}
