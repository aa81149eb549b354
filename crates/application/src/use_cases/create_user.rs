//! CreateUser: a new user in an organization, with optional contact data.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_domain::{
    AccessRefusal, Caller, Contact, ContactEmail, ContactPhone, CountryNotAllowed, Creation, EmailAddress, PhoneNumber,
    SchemaId, User, UserData, UserId, UserState, Verification, VerificationCode, may_create_user_in, may_create_users,
};

use super::{Ports, Rules};
use crate::ports::{
    Clock, CodeGenerator, CodeSms, CreateError, IdGenerator, RateLimited, SmsPermit, SmsPurpose, SmsRateLimiter,
    SmsSender, Unexpected, UserReader, UserWriter,
};
use crate::scope::{InstanceContext, RequestScope, ScopeError};
use crate::sms_guard::SmsGuard;
use crate::write_pattern::{Details, MAX_DECISIONS, contended};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq)]
pub struct CreateUserCommand {
    /// `organization` names the new user's organization; without it, the caller's own.
    pub scope: RequestScope,
    /// The id to give the user; minted when absent.
    pub user_id: Option<UserId>,
    pub schema_id: SchemaId,
    pub data: UserData,
    pub email: Option<(EmailAddress, Verification)>,
    pub phone: Option<(PhoneNumber, Verification)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUserOutput {
    pub details: Details,
    pub email_code: Option<VerificationCode>,
    pub phone_code: Option<VerificationCode>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error("no organization was given and the caller has none")]
    NoOrganization,
    #[error("a user with this id exists")]
    AlreadyExists,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// A contact phone to be sent a code, of a region codes do not go to.
    #[error(transparent)]
    CountryNotAllowed(#[from] CountryNotAllowed),
    #[error("the user id kept changing under every try")]
    Contended,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<CreateUserError> for Failure {
    fn from(error: CreateUserError) -> Self {
        match error {
            CreateUserError::Scope(e) => e.into(),
            CreateUserError::Access(e) => e.into(),
            CreateUserError::NoOrganization => {
                Failure::new(ErrorKind::InvalidArgument, "USER-OrgMissing", "organization is required")
            }
            CreateUserError::AlreadyExists => {
                Failure::new(ErrorKind::AlreadyExists, "USER-AlreadyExists", "a user with this id exists")
            }
            CreateUserError::RateLimited(limited) => limited.into(),
            CreateUserError::CountryNotAllowed(refused) => refused.into(),
            CreateUserError::Contended => contended(),
            CreateUserError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// Creates users.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait CreateUser: Send + Sync {
    /// # Errors
    /// [`CreateUserError::Access`] (needs `user.write` somewhere, checked before the
    /// selectors, and on the organization), [`CreateUserError::Scope`], [`CreateUserError::NoOrganization`], [`CreateUserError::AlreadyExists`],
    /// [`CreateUserError::Unexpected`].
    async fn create_user(
        &self,
        caller: &Caller,
        command: CreateUserCommand,
    ) -> Result<CreateUserOutput, CreateUserError>;
}

pub struct CreateUserService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    pub sms: Arc<dyn SmsSender>,
    /// Contact-phone codes count against the same SMS limits as authenticators.
    pub rate_limiter: Arc<dyn SmsRateLimiter>,
    pub ids: Arc<dyn IdGenerator>,
    pub codes: Arc<dyn CodeGenerator>,
    pub clock: Arc<dyn Clock>,
    /// The regions a contact phone's code goes to.
    pub guard: Arc<SmsGuard>,
}

impl CreateUserService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, guard: Arc<SmsGuard>) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            store: ports.writer.clone(),
            sms: ports.sms.clone(),
            rate_limiter: ports.rate_limiter.clone(),
            ids: ports.ids.clone(),
            codes: ports.codes.clone(),
            clock: ports.clock.clone(),
            guard,
        }
    }
}

/// A contact item's verified flag and, unless verified at once, its code.
fn prove(verification: Verification, codes: &dyn CodeGenerator) -> (bool, Option<VerificationCode>) {
    match verification {
        Verification::IsVerified => (true, None),
        Verification::SendCode | Verification::ReturnCode => (false, Some(codes.generate())),
    }
}

impl CreateUserService {
    /// Stores `user`, numbered after the last event of its id's earlier lives.
    async fn store_new(&self, caller: &Caller, user: User, now: DateTime<Utc>) -> Result<(), CreateUserError> {
        for _ in 0..MAX_DECISIONS {
            let last_sequence = self.users.last_sequence(&user.id).await?;
            let creation = Creation::new(user.clone(), caller, last_sequence, now);
            match self.store.create(&creation).await {
                Ok(()) => return Ok(()),
                Err(CreateError::AlreadyExists) => return Err(CreateUserError::AlreadyExists),
                // Another life of the id began and ended meanwhile: number after it.
                Err(CreateError::Conflict) => continue,
                Err(CreateError::Unexpected(e)) => return Err(e.into()),
            }
        }
        Err(CreateUserError::Contended)
    }
}

impl CreateUserService {
    /// The e-mail code to answer: none when it was to be sent, as no mail provider is
    /// configured (said in the log).
    fn email_code(
        id: &UserId,
        verification: Option<Verification>,
        code: Option<VerificationCode>,
    ) -> Option<VerificationCode> {
        match (verification, code) {
            (Some(Verification::SendCode), Some(_)) => {
                tracing::info!(user_id = %id, "no mail provider is configured: the e-mail verification code was not delivered");
                None
            }
            (_, code) => code,
        }
    }

    /// The phone code to answer: sent by SMS instead when it was to be sent (the permit
    /// given back when the SMS fails).
    async fn phone_code(
        &self,
        id: &UserId,
        phone: Option<(ContactPhone, Verification)>,
        code: Option<VerificationCode>,
        permit: Option<SmsPermit>,
    ) -> Option<VerificationCode> {
        match (phone, code) {
            (Some((phone, Verification::SendCode)), Some(code)) => {
                let sms =
                    CodeSms { to: phone.number.clone(), code, purpose: SmsPurpose::ContactPhone, user: id.clone() };
                if let Err(e) = self.sms.send_code(&sms).await {
                    tracing::warn!(
                        error = %e,
                        user_id = %id,
                        phone = %phone.number.masked(),
                        "contact phone code not delivered"
                    );
                    if let Some(permit) = permit {
                        self.rate_limiter.release(id, &phone.number, permit).await;
                    }
                }
                None
            }
            (_, code) => code,
        }
    }
}

#[async_trait]
impl CreateUser for CreateUserService {
    #[tracing::instrument(name = "create_user", level = "debug", skip_all, fields(actor = %caller.user_id, user_id), err(level = "debug", Display))]
    async fn create_user(
        &self,
        caller: &Caller,
        command: CreateUserCommand,
    ) -> Result<CreateUserOutput, CreateUserError> {
        // A code that could not be sent is refused like a malformed number, first.
        if let Some((number, Verification::SendCode)) = &command.phone {
            self.guard.allows_region(number)?;
        }
        // Before the selectors: their answers (an unknown instance or organization domain)
        // are for callers that may create users somewhere.
        may_create_users(caller)?;
        let filter = self.context.resolve(&command.scope)?;
        let org = filter.org().or(caller.org.as_ref()).cloned().ok_or(CreateUserError::NoOrganization)?;
        may_create_user_in(caller, &org)?;
        let id = match command.user_id {
            Some(id) => id,
            None => UserId::new(self.ids.next_id())
                .map_err(|e| Unexpected(anyhow::Error::new(e).context("minting an id")))?,
        };
        tracing::Span::current().record("user_id", id.as_str());
        let now = self.clock.now();

        let (email, email_code) = match command.email {
            Some((address, verification)) => {
                let (verified, code) = prove(verification, self.codes.as_ref());
                (Some((ContactEmail { address, verified }, verification)), code)
            }
            None => (None, None),
        };
        let (phone, phone_code) = match command.phone {
            Some((number, verification)) => {
                let (verified, code) = prove(verification, self.codes.as_ref());
                (Some((ContactPhone { number, verified }, verification)), code)
            }
            None => (None, None),
        };
        let user = User {
            id: id.clone(),
            org: org.clone(),
            state: UserState::Active,
            schema_id: command.schema_id,
            data: command.data,
            contact: Contact {
                email: email.as_ref().map(|(e, _)| e.clone()),
                phone: phone.as_ref().map(|(p, _)| p.clone()),
            },
            created: now,
            changed: now,
            sequence: 1,
        };
        // Over the limit, nothing is stored and nothing sent.
        let permit = match &phone {
            Some((phone, Verification::SendCode)) => Some(self.rate_limiter.try_acquire(&id, &phone.number).await?),
            _ => None,
        };
        if let Err(e) = self.store_new(caller, user, now).await {
            if let (Some(permit), Some((phone, _))) = (permit, &phone) {
                self.rate_limiter.release(&id, &phone.number, permit).await;
            }
            return Err(e);
        }

        // The user exists now; a code that cannot be delivered does not undo that, it can
        // be sent again once the contact RPCs exist.
        let email_code = Self::email_code(&id, email.map(|(_, v)| v), email_code);
        let phone_code = self.phone_code(&id, phone, phone_code, permit).await;
        Ok(CreateUserOutput { details: Details { id, created: now, changed: now, owner: org }, email_code, phone_code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrgSelector;
    use crate::ports::{
        LimitScope, MockCodeGenerator, MockIdGenerator, MockSmsRateLimiter, MockSmsSender, MockUserReader,
        MockUserWriter, SmsPermit,
    };
    use crate::use_cases::fixtures::*;
    use factors_domain::Permission;

    fn command() -> CreateUserCommand {
        CreateUserCommand {
            scope: RequestScope { instance: None, organization: Some(OrgSelector::Id(org("org-a"))) },
            user_id: None,
            schema_id: SchemaId::new("human").expect("valid"),
            data: UserData::new(serde_json::json!({"name": "Ada"})).expect("object"),
            email: None,
            phone: None,
        }
    }

    /// A reader for which no user id has lived before.
    fn no_history() -> Arc<MockUserReader> {
        let mut users = MockUserReader::new();
        users.expect_last_sequence().returning(|_| Ok(0));
        Arc::new(users)
    }

    fn service(store: MockUserWriter, sms: MockSmsSender) -> CreateUserService {
        let mut ids = MockIdGenerator::new();
        ids.expect_next_id().return_const("900".to_owned());
        let mut codes = MockCodeGenerator::new();
        codes.expect_generate().returning(|| VerificationCode::from_number(111_222));
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().returning(|_, _| Ok(SmsPermit("p".into())));
        limiter.expect_release().returning(|_, _, _| ());
        CreateUserService {
            context: context(),
            users: no_history(),
            store: Arc::new(store),
            sms: Arc::new(sms),
            rate_limiter: Arc::new(limiter),
            ids: Arc::new(ids),
            codes: Arc::new(codes),
            clock: clock(at(3)),
            guard: unguarded(),
        }
    }

    #[tokio::test]
    async fn an_org_admin_creates_a_user_with_a_minted_id_and_an_added_event() {
        let mut store = MockUserWriter::new();
        store
            .expect_create()
            .withf(|creation| {
                let user = &creation.user;
                user.id.as_str() == "900"
                    && user.org == org("org-a")
                    && user.created == at(3)
                    && user.sequence == 1
                    && user.data.as_map()["name"] == "Ada"
                    && creation.event.event_type() == "user.human.added"
            })
            .times(1)
            .returning(|_| Ok(()));

        let output = service(store, MockSmsSender::new()).create_user(&org_admin(), command()).await.expect("created");

        assert_eq!(output.details, Details { id: user_id("900"), created: at(3), changed: at(3), owner: org("org-a") });
    }

    #[tokio::test]
    async fn contact_codes_are_returned_when_asked_and_sent_otherwise() {
        let mut store = MockUserWriter::new();
        store
            .expect_create()
            .withf(|creation| {
                creation.user.contact.email.as_ref().is_some_and(|e| !e.verified)
                    && creation.user.contact.phone.as_ref().is_some_and(|p| !p.verified)
            })
            .returning(|_| Ok(()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().withf(|sms| sms.purpose == SmsPurpose::ContactPhone).times(1).returning(|_| Ok(()));
        let mut cmd = command();
        cmd.email = Some((EmailAddress::parse("ada@example.com").expect("valid"), Verification::ReturnCode));
        cmd.phone = Some((phone(), Verification::SendCode));

        let output = service(store, sms).create_user(&org_admin(), cmd).await.expect("created");

        assert_eq!(output.email_code.map(|c| c.expose().to_owned()), Some("111222".into()));
        assert_eq!(output.phone_code, None);
    }

    #[tokio::test]
    async fn creating_needs_write_on_the_target_org() {
        let cases = [
            (caller("reader", &[(Permission::UserRead, Some("org-a"))]), "reader"),
            (caller("other", &[(Permission::UserWrite, Some("org-b"))]), "admin of another org"),
            (caller("plain", &[]), "plain user"),
        ];
        for (who, case) in cases {
            let mut store = MockUserWriter::new();
            store.expect_create().never();
            let failure = Failure::from(
                service(store, MockSmsSender::new()).create_user(&who, command()).await.expect_err("denied"),
            );
            assert_eq!(failure.kind, ErrorKind::PermissionDenied, "{case}");
        }
    }

    #[tokio::test]
    async fn a_caller_that_may_create_no_users_is_refused_before_its_selectors_are_read() {
        let other_instance =
            RequestScope { instance: Some(crate::InstanceSelector::Id("inst-2".into())), organization: None };
        let unknown_domain =
            RequestScope { instance: None, organization: Some(OrgSelector::Domain("nope.example.com".into())) };
        let reader = caller("reader", &[(Permission::UserRead, None)]);
        let cases = [
            (caller("plain", &[]), other_instance.clone(), "AUTHZ-PermissionDenied", "plain user, other instance"),
            (reader.clone(), other_instance.clone(), "AUTHZ-PermissionDenied", "reader, other instance"),
            (reader, unknown_domain.clone(), "AUTHZ-PermissionDenied", "reader, unknown domain"),
            (org_admin(), other_instance, "INSTANCE-NotFound", "writer, other instance"),
            (org_admin(), unknown_domain, "ORG-NotFound", "writer, unknown domain"),
        ];
        for (who, scope, expected, case) in cases {
            let mut store = MockUserWriter::new();
            store.expect_create().never();
            let cmd = CreateUserCommand { scope, ..command() };
            let failure =
                Failure::from(service(store, MockSmsSender::new()).create_user(&who, cmd).await.expect_err("refused"));
            assert_eq!(failure.id, expected, "{case}");
        }
    }

    #[tokio::test]
    async fn a_taken_id_is_already_exists() {
        let mut store = MockUserWriter::new();
        store.expect_create().returning(|_| Err(CreateError::AlreadyExists));
        let mut cmd = command();
        cmd.user_id = Some(user_id("alice"));

        let failure = Failure::from(
            service(store, MockSmsSender::new()).create_user(&org_admin(), cmd).await.expect_err("taken"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::AlreadyExists, "USER-AlreadyExists"));
    }

    #[tokio::test]
    async fn without_an_organization_the_callers_own_is_used() {
        let mut store = MockUserWriter::new();
        store.expect_create().withf(|creation| creation.user.org == org("org-a")).times(1).returning(|_| Ok(()));
        let mut cmd = command();
        cmd.scope.organization = None;

        let output = service(store, MockSmsSender::new()).create_user(&org_admin(), cmd).await.expect("created");

        assert_eq!(output.details.owner, org("org-a"));
    }

    #[tokio::test]
    async fn a_contact_phone_over_the_sms_limit_stores_nothing_and_sends_nothing() {
        let mut store = MockUserWriter::new();
        store.expect_create().never();
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().returning(|_, _| {
            Err(RateLimited { scope: LimitScope::Phone, retry_after: std::time::Duration::from_secs(60) })
        });
        let service = CreateUserService { rate_limiter: Arc::new(limiter), ..service(store, sms) };
        let mut cmd = command();
        cmd.phone = Some((phone(), Verification::SendCode));

        let failure = Failure::from(service.create_user(&org_admin(), cmd).await.expect_err("limited"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::ResourceExhausted, "SMS-RateLimitedPhone"));
    }

    #[tokio::test]
    async fn a_contact_phone_to_be_sent_a_code_in_a_region_codes_do_not_go_to_stores_nothing() {
        let mut store = MockUserWriter::new();
        store.expect_create().never();
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().never();
        let guard = guarded(factors_domain::SmsCountries::new(&[], &["CH".into()]).expect("valid"));
        let service = CreateUserService { rate_limiter: Arc::new(limiter), guard, ..service(store, sms) };
        let mut cmd = command();
        cmd.phone = Some((phone(), Verification::SendCode));

        let failure = Failure::from(service.create_user(&org_admin(), cmd).await.expect_err("refused"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::InvalidArgument, "SMS-CountryNotAllowed"));
    }

    #[tokio::test]
    async fn a_recreated_id_continues_its_numbering_and_a_life_begun_meanwhile_is_numbered_after() {
        let mut users = MockUserReader::new();
        let mut reads = mockall::Sequence::new();
        users.expect_last_sequence().times(1).in_sequence(&mut reads).returning(|_| Ok(4));
        users.expect_last_sequence().times(1).in_sequence(&mut reads).returning(|_| Ok(6));
        let mut store = MockUserWriter::new();
        let mut writes = mockall::Sequence::new();
        store
            .expect_create()
            .withf(|creation| creation.user.sequence == 5)
            .times(1)
            .in_sequence(&mut writes)
            .returning(|_| Err(CreateError::Conflict));
        store
            .expect_create()
            .withf(|creation| creation.user.sequence == 7)
            .times(1)
            .in_sequence(&mut writes)
            .returning(|_| Ok(()));
        let service = CreateUserService { users: Arc::new(users), ..service(store, MockSmsSender::new()) };

        let output = service.create_user(&org_admin(), command()).await.expect("created");

        assert_eq!(output.details.id, user_id("900"));
    }
}
