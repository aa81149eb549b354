//! SearchUsers (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::RequestScope;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::search_users::{SearchFilter, SearchUsersCommand, SearchUsersError, UsersPage};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::get_user::{GetUserResponse, UserJson};
use super::shared::{Answer, ScopeQuery, timestamp};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiJsonOrEmpty, ApiQuery, Authenticated};

/// SearchUsers: the users the caller may see (those of the organizations where it holds a
/// user permission), a page at a time.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/_search", tag = "users", operation_id = "SearchUsers",
    params(ScopeQuery), request_body = SearchUsersBody,
    responses(
        (status = 200, description = "A page of users", body = SearchUsersResponse),
        (status = 400, description = "Invalid input; a filter or sorting factors does not search by", body = StatusBody),
        (status = 403, description = "The caller holds no user permission", body = StatusBody),
        (status = 404, description = "Unknown instance or organization domain", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn search_users(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<SearchUsersBody>,
) -> Answer<SearchUsersResponse> {
    let scope = RequestScope::try_from(query)?;
    let command = body.into_command(scope)?;
    Ok(Json(use_cases.search_users.search_users(&caller, command).await?.into()))
}

/// `SearchUsersRequest` without `instance` (a query parameter here). Enums as their names
/// or numbers, `offset` as a string or a number, as protobuf JSON allows.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchUsersBody {
    pub query: Option<SearchQueryJson>,
    /// A `FieldName`: `FIELD_NAME_ID` (the default), `FIELD_NAME_CREATION_DATE`,
    /// `FIELD_NAME_CHANGE_DATE` or `FIELD_NAME_STATE`.
    #[serde(alias = "sorting_column")]
    #[schema(value_type = Option<String>, example = "FIELD_NAME_CREATION_DATE")]
    pub sorting_column: Option<EnumJson>,
    /// All must hold.
    #[serde(default)]
    pub filters: Vec<SearchFilterJson>,
}

/// `SearchQuery`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SearchQueryJson {
    #[schema(value_type = Option<String>, example = "0")]
    pub offset: Option<U64Json>,
    /// At most 100; 0 or none for 100.
    pub limit: Option<u32>,
    pub desc: Option<bool>,
}

/// A `uint64` as protobuf JSON writes it (a string) or as a number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum U64Json {
    Number(u64),
    Text(String),
}

/// An enum as its name or its number.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EnumJson {
    Number(i32),
    Name(String),
}

/// `SearchFilter`: one filter of the oneof. factors searches by user id, organization id
/// and state, and by `andFilter`s of them; the others are refused by name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum SearchFilterJson {
    #[serde(alias = "user_id_filter")]
    UserIdFilter(TextFilterJson),
    #[serde(alias = "organization_id_filter")]
    OrganizationIdFilter(TextFilterJson),
    #[serde(alias = "state_filter")]
    StateFilter(StateFilterJson),
    #[serde(alias = "and_filter")]
    AndFilter(FiltersJson),
    #[serde(alias = "or_filter")]
    #[schema(value_type = Object)]
    OrFilter(IgnoredAny),
    #[serde(alias = "not_filter")]
    #[schema(value_type = Object)]
    NotFilter(IgnoredAny),
    #[serde(alias = "username_filter")]
    #[schema(value_type = Object)]
    UsernameFilter(IgnoredAny),
    #[serde(alias = "email_filter")]
    #[schema(value_type = Object)]
    EmailFilter(IgnoredAny),
    #[serde(alias = "phone_filter")]
    #[schema(value_type = Object)]
    PhoneFilter(IgnoredAny),
    #[serde(alias = "schema_id_filter")]
    #[schema(value_type = Object)]
    SchemaIdFilter(IgnoredAny),
    #[serde(alias = "schema_type_filter")]
    #[schema(value_type = Object)]
    SchemaTypeFilter(IgnoredAny),
}

/// `UserIDFilter`, `OrganizationIDFilter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TextFilterJson {
    #[serde(default)]
    pub id: String,
    /// `TEXT_FILTER_METHOD_EQUALS` (the default) is the one factors matches by.
    #[schema(value_type = Option<String>, example = "TEXT_FILTER_METHOD_EQUALS")]
    pub method: Option<EnumJson>,
}

/// `StateFilter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StateFilterJson {
    #[schema(value_type = Option<String>, example = "USER_STATE_ACTIVE")]
    pub state: Option<EnumJson>,
}

/// `AndFilter`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct FiltersJson {
    #[serde(default)]
    #[schema(no_recursion)]
    pub queries: Vec<SearchFilterJson>,
}

const FIELD_NAMES: [&str; 9] = [
    "FIELD_NAME_UNSPECIFIED",
    "FIELD_NAME_ID",
    "FIELD_NAME_CREATION_DATE",
    "FIELD_NAME_CHANGE_DATE",
    "FIELD_NAME_EMAIL",
    "FIELD_NAME_PHONE",
    "FIELD_NAME_STATE",
    "FIELD_NAME_SCHEMA_ID",
    "FIELD_NAME_SCHEMA_TYPE",
];
const TEXT_FILTER_METHODS: [&str; 5] = [
    "TEXT_FILTER_METHOD_EQUALS",
    "TEXT_FILTER_METHOD_EQUALS_IGNORE_CASE",
    "TEXT_FILTER_METHOD_STARTS_WITH",
    "TEXT_FILTER_METHOD_STARTS_WITH_IGNORE_CASE",
    "TEXT_FILTER_METHOD_CONTAINS",
];
const USER_STATES: [&str; 5] =
    ["USER_STATE_UNSPECIFIED", "USER_STATE_ACTIVE", "USER_STATE_INACTIVE", "USER_STATE_DELETED", "USER_STATE_LOCKED"];

impl EnumJson {
    /// The number, or the number of the name among `names` (numbered from 0).
    fn number(value: Option<Self>, names: &[&str], field: &str) -> Result<i32, SearchUsersError> {
        match value {
            None => Ok(0),
            Some(Self::Number(number)) => Ok(number),
            Some(Self::Name(name)) => names
                .iter()
                .position(|known| *known == name)
                .and_then(|at| i32::try_from(at).ok())
                .ok_or_else(|| SearchUsersError::Invalid(format!("{field}: not one of {}", names.join(", ")))),
        }
    }
}

impl SearchFilterJson {
    fn into_filter(self) -> Result<SearchFilter, SearchUsersError> {
        let method = |method, field| EnumJson::number(method, &TEXT_FILTER_METHODS, field);
        Ok(match self {
            Self::UserIdFilter(TextFilterJson { id, method: m }) => {
                SearchFilter::UserId { id, method: method(m, "userIdFilter.method")? }
            }
            Self::OrganizationIdFilter(TextFilterJson { id, method: m }) => {
                SearchFilter::OrganizationId { id, method: method(m, "organizationIdFilter.method")? }
            }
            Self::StateFilter(StateFilterJson { state }) => {
                SearchFilter::State { state: EnumJson::number(state, &USER_STATES, "stateFilter.state")? }
            }
            Self::AndFilter(FiltersJson { queries }) => {
                SearchFilter::And(queries.into_iter().map(Self::into_filter).collect::<Result<_, _>>()?)
            }
            Self::OrFilter(_) => SearchFilter::Other("orFilter"),
            Self::NotFilter(_) => SearchFilter::Other("notFilter"),
            Self::UsernameFilter(_) => SearchFilter::Other("usernameFilter"),
            Self::EmailFilter(_) => SearchFilter::Other("emailFilter"),
            Self::PhoneFilter(_) => SearchFilter::Other("phoneFilter"),
            Self::SchemaIdFilter(_) => SearchFilter::Other("schemaIdFilter"),
            Self::SchemaTypeFilter(_) => SearchFilter::Other("schemaTypeFilter"),
        })
    }
}

impl SearchUsersBody {
    fn into_command(self, scope: RequestScope) -> Result<SearchUsersCommand, SearchUsersError> {
        let query = self.query.unwrap_or_default();
        let offset = match query.offset {
            None => 0,
            Some(U64Json::Number(offset)) => offset,
            Some(U64Json::Text(text)) => {
                text.parse().map_err(|_| SearchUsersError::Invalid("query.offset: not a whole number".into()))?
            }
        };
        Ok(SearchUsersCommand {
            scope,
            offset,
            limit: query.limit.unwrap_or(0),
            descending: query.desc.unwrap_or(false),
            sorting_column: EnumJson::number(self.sorting_column, &FIELD_NAMES, "sortingColumn")?,
            filters: self.filters.into_iter().map(SearchFilterJson::into_filter).collect::<Result<_, _>>()?,
        })
    }
}

/// `SearchUsersResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchUsersResponse {
    pub details: ListDetailsJson,
    pub result: Vec<UserJson>,
}

/// `ListDetails`; the counts are `uint64`, strings in protobuf JSON.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDetailsJson {
    #[schema(example = "100")]
    pub applied_limit: String,
    #[schema(example = "3")]
    pub total_result: String,
    #[schema(example = "2024-11-22T09:00:00Z")]
    pub timestamp: String,
}

impl From<UsersPage> for SearchUsersResponse {
    fn from(page: UsersPage) -> Self {
        Self {
            details: ListDetailsJson {
                applied_limit: page.applied_limit.to_string(),
                total_result: page.total.to_string(),
                timestamp: timestamp(page.at),
            },
            result: page.users.into_iter().map(|view| GetUserResponse::from(view).user).collect(),
        }
    }
}
