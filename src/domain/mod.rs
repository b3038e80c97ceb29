//! Types and rules of the product. Pure code: no I/O, no wire formats, no database. (Orders
//! derive serde so that the store can record a write's outcome; how it is shown is `api`'s.)
//!
//! Values that come from outside (`*Fields`) are checked once by a constructor into types that
//! cannot hold an invalid value (`EventDraft`, `Venue`, `GeoPoint`, `Email`, …); a broken rule
//! is a [`Violation`] with the path of the offending field.

pub mod availability;
pub mod checkin_list;
pub mod event;
pub mod geo;
pub mod order;
pub mod outcome;
pub mod paging;
pub mod payment;
pub mod scan;
pub mod scanner;
pub mod seats;
pub mod stats;
pub mod text;
pub mod ticket;
pub mod tier;
pub mod time;
pub mod user;
pub mod validation;
pub mod waitlist;

pub use availability::{EventAvailability, SaleStatus, Snapshot, TierAvailability};
pub use checkin_list::{
    CheckinList, ListChanged, ListCreated, ListDeleted, ListDraft, ListFields, ListPatch,
};
pub use event::{
    Event, EventChanges, EventDelete, EventDetails, EventDraft, EventFields, EventPatchFields,
    EventUpdate, NearbyEvent, NewEvent, Venue, VenueFields, WaitlistSettings,
};
pub use geo::{GeoPoint, RadiusKm};
pub use order::{
    NewOrder, Order, OrderChange, OrderDetails, OrderFields, OrderLine, OrderOutcome, OrderPlan,
    OrderRefusal, PlannedLine, SaleState, Shortage, TierChoice,
};
pub use outcome::{ReissuedCode, WriteOutcome};
pub use paging::PageRequest;
pub use payment::{Payment, PaymentProvider, PaymentStatus};
pub use scan::{
    BundleTicket, Checkin, DoorBundle, ListStatus, OfflineResult, Redeemed, Revocation, Scan,
    ScanHistory, ScanKind, ScanReason, ScanResult, ScannedCode, ScannedTicket,
};
pub use scanner::{Scanner, ScannerToken, TokenCreated, TokenDraft, TokenFields, TokenRevoked};
pub use seats::{SeatsBack, SeatsBackCause};
pub use stats::{EventStats, SalesFigures};
pub use ticket::{
    Change, EventSummary, Ticket, TicketDetails, TicketOrder, TicketStatus, TierSummary,
    UserSummary,
};
pub use tier::{Tier, TierDraft, TierFields, TierOutcome, TierPatchFields, TierSale};
pub use user::{Credentials, Email, NewUser, Password, Registration, RegistrationFields, User};
pub use validation::{PathSegment, Violation, ViolationKind, Violations};
