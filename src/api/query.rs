//! Query parameters several listings share: paging limits, radius and timestamps.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, Object, SchemaFormat};
use utoipa::openapi::{ObjectBuilder, Type};

use super::extract::Input;
use crate::domain::paging::{MAX_DEPTH, PageLimits};
use crate::domain::time::parse_timestamp;
use crate::domain::{PageRequest, RadiusKm, TicketStatus, ViolationKind, Violations};

/// `skip` and `limit` of a listing whose pages hold `DEFAULT` rows unless asked otherwise and
/// at most `MAX`: declared, checked and documented here once for every listing.
#[derive(Deserialize)]
pub struct Paging<const DEFAULT: i64, const MAX: i64> {
    #[serde(default)]
    skip: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

/// `/events/` and `/tickets/my-tickets`.
pub type ListingPaging = Paging<100, 1000>;
/// Distance searches (`/events/nearby`, `/for-you/`).
pub type SearchPaging = Paging<20, 100>;

impl<const DEFAULT: i64, const MAX: i64> Input for Paging<DEFAULT, MAX> {
    type Valid = PageRequest;

    fn validate(self) -> Result<PageRequest, Violations> {
        let mut violations = Violations::new();
        let limits = PageLimits {
            default: DEFAULT,
            max: MAX,
        };
        let page = PageRequest::parse(&mut violations, self.skip, self.limit, limits);
        violations.finish(|| page)
    }
}

impl<const DEFAULT: i64, const MAX: i64> IntoParams for Paging<DEFAULT, MAX> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let parameter = |name: &str, description: String, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        let integer = || ObjectBuilder::new().schema_type(Type::Integer);
        vec![
            parameter(
                "skip",
                format!("Rows to skip (≥ 0); `skip + limit` at most {MAX_DEPTH}, else 422."),
                integer()
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0))
                    .maximum(Some(MAX_DEPTH - 1))
                    .default(Some(0.into())),
            ),
            parameter(
                "limit",
                format!("Page size, 1–{MAX}."),
                integer()
                    .minimum(Some(1))
                    .maximum(Some(MAX))
                    .default(Some(DEFAULT.into())),
            ),
        ]
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
/// `?status=`, the effective status a listing of tickets or orders keeps.
pub struct StatusQuery {
    #[serde(default)]
    #[param(schema_with = status_filter)]
    status: Option<String>,
}

/// A ticket status, or empty (what the web client sends for "all").
fn status_filter() -> Object {
    let statuses = [
        TicketStatus::Reserved,
        TicketStatus::Paid,
        TicketStatus::Expired,
        TicketStatus::Cancelled,
    ];
    let names = statuses.map(TicketStatus::as_str);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Effective status to keep: reserved, paid, expired or cancelled; empty keeps all.",
        ))
        .enum_values(Some(std::iter::once("").chain(names)))
        .build()
}

impl Input for StatusQuery {
    type Valid = Option<TicketStatus>;

    fn validate(self) -> Result<Option<TicketStatus>, Violations> {
        let mut violations = Violations::new();
        let status = match self.status.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(raw) => {
                let status = TicketStatus::parse(&raw.to_ascii_lowercase());
                if status.is_none() {
                    violations.push_kind(
                        &["status"],
                        "Input should be 'reserved', 'paid', 'expired' or 'cancelled'",
                        ViolationKind::Choice,
                    );
                }
                status.map(Some)
            }
        };
        violations.finish(|| status)
    }
}

/// An optional radius; `None` when given but out of range (recorded at `field`).
pub fn radius(
    violations: &mut Violations,
    field: &str,
    raw: Option<f64>,
) -> Option<Option<RadiusKm>> {
    match raw {
        None => Some(None),
        Some(km) => violations.check(&[field], RadiusKm::new(km)).map(Some),
    }
}

/// An optional RFC 3339 timestamp; `None` when given but malformed (recorded at `field`).
pub fn timestamp(
    violations: &mut Violations,
    field: &str,
    raw: Option<&str>,
) -> Option<Option<DateTime<Utc>>> {
    match raw {
        None => Some(None),
        Some(raw) => match parse_timestamp(raw) {
            Ok(at) => Some(Some(at)),
            Err(error) => {
                violations.push_kind(&[field], error.to_string(), ViolationKind::DateTime);
                None
            }
        },
    }
}
