//! Types and rules of the product. Pure code: no I/O here.

pub mod event;
pub mod geo;
pub mod ticket;
pub mod user;
pub mod validation;

pub use event::{Event, EventChanges, EventDraft, NearbyEvent, Venue};
pub use geo::GeoPoint;
pub use ticket::{EventSummary, Ticket, TicketDetails, TicketStatus, UserSummary};
pub use user::{Email, NewUser, Password, User};
pub use validation::{FieldError, Violations};
