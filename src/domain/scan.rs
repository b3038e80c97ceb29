//! Scans at the door (CHECKIN.md § Redeem): what a scan asks, the reasons it may be refused
//! and, in [`judge`], the one rule that decides them in the contract's order.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::checkin_list::CheckinList;
use super::ticket::TicketStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    Entry,
    Exit,
}

impl ScanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanKind::Entry => "entry",
            ScanKind::Exit => "exit",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "entry" => Some(ScanKind::Entry),
            "exit" => Some(ScanKind::Exit),
            _ => None,
        }
    }
}

/// Why a scan is refused, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScanReason {
    Invalid,
    WrongEvent,
    Revoked,
    Cancelled,
    Unpaid,
    NotOnList,
    ListInactive,
    AlreadyRedeemed,
}

impl ScanReason {
    pub const ALL: [ScanReason; 8] = [
        ScanReason::Invalid,
        ScanReason::WrongEvent,
        ScanReason::Revoked,
        ScanReason::Cancelled,
        ScanReason::Unpaid,
        ScanReason::NotOnList,
        ScanReason::ListInactive,
        ScanReason::AlreadyRedeemed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ScanReason::Invalid => "invalid",
            ScanReason::WrongEvent => "wrong_event",
            ScanReason::Revoked => "revoked",
            ScanReason::Cancelled => "cancelled",
            ScanReason::Unpaid => "unpaid",
            ScanReason::NotOnList => "not_on_list",
            ScanReason::ListInactive => "list_inactive",
            ScanReason::AlreadyRedeemed => "already_redeemed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == raw)
    }

    /// What a refusal says to the person at the door.
    pub fn detail(self) -> &'static str {
        match self {
            ScanReason::Invalid => "This is not a valid NearbyTix ticket code",
            ScanReason::WrongEvent => "This ticket is for another event",
            ScanReason::Revoked => "This code was replaced by a newer one",
            ScanReason::Cancelled => "This ticket was cancelled or has expired",
            ScanReason::Unpaid => "This ticket is not paid",
            ScanReason::NotOnList => "This ticket's tier is not admitted here",
            ScanReason::ListInactive => "This door is not open at this time",
            ScanReason::AlreadyRedeemed => "This ticket has already been used here",
        }
    }

    /// Force cannot override these: there is no ticket of this event to admit.
    pub fn overridable(self) -> bool {
        !matches!(self, ScanReason::Invalid | ScanReason::WrongEvent)
    }
}

/// What a scanned code names, decoded (and its signature checked) before it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScannedCode {
    /// Not an NTX1 code with a good signature, nor a ticket id.
    Unreadable,
    /// A signed code.
    Signed { ticket_id: Uuid, serial: u32 },
    /// A ticket id typed in by hand: stands for the ticket's current serial.
    TicketId(Uuid),
}

impl ScannedCode {
    pub fn ticket_id(self) -> Option<Uuid> {
        match self {
            ScannedCode::Unreadable => None,
            ScannedCode::Signed { ticket_id, .. } | ScannedCode::TicketId(ticket_id) => {
                Some(ticket_id)
            }
        }
    }
}

/// A scan as the door sends it (checked: nonce, sizes, not in the future).
#[derive(Debug, Clone)]
pub struct Scan {
    pub list_id: Uuid,
    pub code: String,
    pub nonce: String,
    pub kind: ScanKind,
    pub scanned_at: DateTime<Utc>,
    pub force: bool,
    pub gate: Option<String>,
}

/// A ticket as a scan shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedTicket {
    pub id: Uuid,
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub tier_id: Uuid,
    pub tier_name: String,
    pub status: TicketStatus,
    pub serial: u32,
    pub holder_name: String,
}

/// A successful scan as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkin {
    pub id: Uuid,
    pub list_id: Uuid,
    pub kind: ScanKind,
    pub nonce: String,
    pub scanned_at: DateTime<Utc>,
    pub gate: Option<String>,
    pub forced: bool,
    pub created_at: DateTime<Utc>,
}

/// The answer to a scan: admitted when `checkin` is there (`reason` then names what `force`
/// overrode, if anything), refused for `reason` otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    pub reason: Option<ScanReason>,
    pub checkin: Option<Checkin>,
    pub ticket: Option<ScannedTicket>,
    pub first_entry_at: Option<DateTime<Utc>>,
}

impl ScanResult {
    pub fn admitted(&self) -> bool {
        self.checkin.is_some()
    }

    pub fn forced(&self) -> bool {
        self.checkin.as_ref().is_some_and(|checkin| checkin.forced)
    }
}

/// What redeeming a scan came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// Judged now (and recorded: a check-in, or a row of the refused log).
    Judged(ScanResult),
    /// The nonce already has a check-in for this code: its first answer, nothing recorded.
    Replayed(ScanResult),
    /// The nonce already has a check-in (or, uploaded, a refusal) for another code.
    NonceTaken,
    /// The list was deleted since it was read: nothing recorded.
    ListGone,
}

/// How an offline device judged a scan it uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineResult {
    /// Admitted at the door: recorded as a forced redeem.
    Admitted,
    /// Refused at the door for this reason: logged as it is, not judged again.
    Refused(ScanReason),
}

/// The successful scans of one ticket on one list before this one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanHistory {
    pub first_entry_at: Option<DateTime<Utc>>,
    pub last_kind: Option<ScanKind>,
}

/// What a ticket's state and history say about `scan` on `list`: the first reason that
/// applies (CHECKIN.md's order; an exit is judged by the first six), and whether it is
/// admitted (no reason, or `force` and the reason can be overridden).
pub fn judge(
    scan: &Scan,
    code: ScannedCode,
    ticket: Option<&ScannedTicket>,
    expired: bool,
    list: &CheckinList,
    history: ScanHistory,
) -> (Option<ScanReason>, bool) {
    let reason = first_reason(scan, code, ticket, expired, list, history);
    let admitted = reason.is_none_or(|reason| scan.force && reason.overridable());
    (reason, admitted)
}

fn first_reason(
    scan: &Scan,
    code: ScannedCode,
    ticket: Option<&ScannedTicket>,
    expired: bool,
    list: &CheckinList,
    history: ScanHistory,
) -> Option<ScanReason> {
    let Some(ticket) = ticket else {
        return Some(ScanReason::Invalid);
    };
    if ticket.event_id != list.event_id {
        return Some(ScanReason::WrongEvent);
    }
    if let ScannedCode::Signed { serial, .. } = code {
        if serial != ticket.serial {
            return Some(ScanReason::Revoked);
        }
    }
    match ticket.status {
        TicketStatus::Cancelled | TicketStatus::Expired => return Some(ScanReason::Cancelled),
        TicketStatus::Reserved if expired => return Some(ScanReason::Cancelled),
        TicketStatus::Reserved => return Some(ScanReason::Unpaid),
        TicketStatus::Paid => {}
    }
    if list
        .tier_ids
        .as_ref()
        .is_some_and(|tiers| !tiers.contains(&ticket.tier_id))
    {
        return Some(ScanReason::NotOnList);
    }
    if scan.kind == ScanKind::Exit {
        return None;
    }
    let opened = list.activates_at.is_none_or(|at| at <= scan.scanned_at);
    let open = list.expires_at.is_none_or(|at| scan.scanned_at < at);
    if !(opened && open) {
        return Some(ScanReason::ListInactive);
    }
    let used = if list.allow_reentry {
        history.last_kind == Some(ScanKind::Entry)
    } else {
        history.first_entry_at.is_some()
    };
    used.then_some(ScanReason::AlreadyRedeemed)
}

/// A list's counts (CHECKIN.md § List status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListStatus {
    pub expected: i64,
    pub admitted: i64,
    pub inside: i64,
    pub scans_ok: i64,
    pub scans_refused: i64,
    pub forced: i64,
    /// Per tier the list admits, by position: (tier, expected, admitted).
    pub by_tier: Vec<(Uuid, i64, i64)>,
    pub event_admitted_distinct: i64,
}

/// A ticket whose codes were revoked: the one serial still valid, `None` once it left `paid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub ticket_id: Uuid,
    pub valid_serial: Option<u32>,
}

/// A paid ticket as the offline bundle lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleTicket {
    pub id: Uuid,
    pub tier_id: Uuid,
    pub serial: u32,
    pub holder_name: String,
}

/// What a door needs to scan offline, beside the keys and lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorBundle {
    pub event_id: Uuid,
    pub title: String,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// The event's creator (who may read it, beside its scanner tokens).
    pub creator_id: Uuid,
    /// The event's tiers by position: (id, name).
    pub tiers: Vec<(Uuid, String)>,
    /// Revocations logged after the cursor asked for, by ticket id.
    pub revocations: Vec<Revocation>,
    /// The revocation log's position this bundle is complete to.
    pub cursor: i64,
    /// With `?include=tickets`: a page of paid tickets, and how many there are.
    pub tickets: Option<(Vec<BundleTicket>, i64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(event_id: Uuid) -> CheckinList {
        CheckinList {
            id: Uuid::now_v7(),
            event_id,
            name: "Main entrance".into(),
            tier_ids: None,
            allow_reentry: false,
            activates_at: None,
            expires_at: None,
            is_default: true,
            created_at: Utc::now(),
        }
    }

    fn paid_ticket(event_id: Uuid) -> ScannedTicket {
        ScannedTicket {
            id: Uuid::now_v7(),
            event_id,
            order_id: Uuid::now_v7(),
            tier_id: Uuid::now_v7(),
            tier_name: "Regular".into(),
            status: TicketStatus::Paid,
            serial: 2,
            holder_name: "Ada".into(),
        }
    }

    fn scan(kind: ScanKind, force: bool) -> Scan {
        Scan {
            list_id: Uuid::now_v7(),
            code: String::new(),
            nonce: "nonce-0001".into(),
            kind,
            scanned_at: Utc::now(),
            force,
            gate: None,
        }
    }

    #[test]
    fn reasons_come_in_the_contracts_order() {
        let event = Uuid::now_v7();
        let mut ticket = paid_ticket(event);
        let entry = scan(ScanKind::Entry, false);
        let old_code = ScannedCode::Signed {
            ticket_id: ticket.id,
            serial: 1,
        };
        let door = list(event);
        let used = ScanHistory {
            first_entry_at: Some(Utc::now()),
            last_kind: Some(ScanKind::Exit),
        };
        // Revoked before cancelled, cancelled before already redeemed.
        ticket.status = TicketStatus::Cancelled;
        let judged = judge(&entry, old_code, Some(&ticket), false, &door, used);
        assert_eq!(judged, (Some(ScanReason::Revoked), false));
        let by_id = ScannedCode::TicketId(ticket.id);
        let judged = judge(&entry, by_id, Some(&ticket), false, &door, used);
        assert_eq!(judged, (Some(ScanReason::Cancelled), false));
        ticket.status = TicketStatus::Paid;
        let judged = judge(&entry, by_id, Some(&ticket), false, &door, used);
        assert_eq!(judged, (Some(ScanReason::AlreadyRedeemed), false));
        // With re-entry, a ticket that left may enter again.
        let reentry = CheckinList {
            allow_reentry: true,
            ..door.clone()
        };
        let judged = judge(&entry, by_id, Some(&ticket), false, &reentry, used);
        assert_eq!(judged, (None, true));
        // An exit is not judged by the window or by earlier scans.
        let closed = CheckinList {
            expires_at: Some(Utc::now() - chrono::Duration::hours(1)),
            ..door.clone()
        };
        let exit = scan(ScanKind::Exit, false);
        let judged = judge(&exit, by_id, Some(&ticket), false, &closed, used);
        assert_eq!(judged, (None, true));
        let judged = judge(&entry, by_id, Some(&ticket), false, &closed, used);
        assert_eq!(judged, (Some(ScanReason::ListInactive), false));
    }

    #[test]
    fn force_overrides_all_but_invalid_and_wrong_event() {
        let event = Uuid::now_v7();
        let ticket = paid_ticket(event);
        let forced = scan(ScanKind::Entry, true);
        let by_id = ScannedCode::TicketId(ticket.id);
        let used = ScanHistory {
            first_entry_at: Some(Utc::now()),
            last_kind: Some(ScanKind::Entry),
        };
        let judged = judge(&forced, by_id, Some(&ticket), false, &list(event), used);
        assert_eq!(judged, (Some(ScanReason::AlreadyRedeemed), true));
        let elsewhere = list(Uuid::now_v7());
        let judged = judge(&forced, by_id, Some(&ticket), false, &elsewhere, used);
        assert_eq!(judged, (Some(ScanReason::WrongEvent), false));
        let unreadable = ScannedCode::Unreadable;
        let judged = judge(&forced, unreadable, None, false, &list(event), used);
        assert_eq!(judged, (Some(ScanReason::Invalid), false));
    }

    #[test]
    fn a_lapsed_hold_is_cancelled_a_live_one_unpaid() {
        let event = Uuid::now_v7();
        let mut ticket = paid_ticket(event);
        ticket.status = TicketStatus::Reserved;
        let entry = scan(ScanKind::Entry, false);
        let by_id = ScannedCode::TicketId(ticket.id);
        let none = ScanHistory::default();
        let door = list(event);
        let judged = judge(&entry, by_id, Some(&ticket), false, &door, none);
        assert_eq!(judged.0, Some(ScanReason::Unpaid));
        let judged = judge(&entry, by_id, Some(&ticket), true, &door, none);
        assert_eq!(judged.0, Some(ScanReason::Cancelled));
    }
}
