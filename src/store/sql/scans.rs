//! The door: the statements of [`crate::store::ScanStore`] (scanner tokens, scans, list counts,
//! the offline bundle), and the store written once for both backends ([`scan_store!`], as
//! [`checkin_list_store!`] is).

use uuid::Uuid;

/// `$1` the SHA-256 of a token's text: the token, one row per list it names (by position).
pub(in crate::store) const TOKEN_BY_HASH: &str = "SELECT s.id, s.event_id, s.label, s.all_lists,
        s.created_at, s.expires_at, s.revoked_at, tl.list_id
     FROM scanner_tokens s LEFT JOIN scanner_token_lists tl ON tl.token_id = s.id
     WHERE s.token_hash = $1 ORDER BY tl.position";

/// `$1` event: its tokens, one row per list each names.
pub(in crate::store) const EVENT_TOKENS: &str = "SELECT s.id, s.event_id, s.label, s.all_lists,
        s.created_at, s.expires_at, s.revoked_at, tl.list_id
     FROM scanner_tokens s LEFT JOIN scanner_token_lists tl ON tl.token_id = s.id
     WHERE s.event_id = $1 ORDER BY s.created_at, s.id, tl.position";

/// `$1` event, `$2` now.
pub(in crate::store) const COUNT_LIVE_TOKENS: &str = "SELECT count(*) FROM scanner_tokens
     WHERE event_id = $1 AND revoked_at IS NULL AND expires_at > $2";

pub(in crate::store) const EVENT_LIST_IDS: &str =
    "SELECT id FROM checkin_lists WHERE event_id = $1";

pub(in crate::store) const INSERT_TOKEN: &str = "INSERT INTO scanner_tokens
        (id, event_id, label, all_lists, token_hash, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(in crate::store) const INSERT_TOKEN_LIST: &str =
    "INSERT INTO scanner_token_lists (token_id, list_id, position) VALUES ($1, $2, $3)";

/// `$1` token, `$2` event, `$3` now: revoked unless it was already.
pub(in crate::store) const REVOKE_TOKEN: &str = "UPDATE scanner_tokens
     SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND event_id = $2";

/// `$1` list: it, its event's creator, one row per tier it names (by position).
pub(in crate::store) const LIST_BY_ID: &str = "SELECT l.id, l.event_id, l.name, l.all_tiers,
        l.allow_reentry, l.activates_at, l.expires_at, l.is_default, l.created_at,
        e.creator_id, lt.tier_id
     FROM checkin_lists l JOIN events e ON e.id = l.event_id
     LEFT JOIN checkin_list_tiers lt ON lt.list_id = l.id
     WHERE l.id = $1 ORDER BY lt.position";

/// What a scan shows of tickets, and their holds' deadlines ([`ScannedTicketRow`]; each
/// backend appends which tickets, and its lock: `Dialect::lock_scanned_tickets`).
pub(in crate::store) const SCANNED_TICKETS: &str = "SELECT t.id, t.event_id, t.order_id,
        t.tier_id,
        coalesce((SELECT name FROM ticket_tiers WHERE id = t.tier_id),
                 (SELECT tier_name FROM order_items WHERE order_id = t.order_id
                  AND tier_id = t.tier_id), ''),
        t.status, t.expires_at, t.code_serial,
        (SELECT name FROM users WHERE id = t.user_id)
     FROM tickets t";

/// A row of [`SCANNED_TICKETS`]: id, event, order, tier, tier name, status, hold deadline,
/// code serial, holder's name.
pub(in crate::store) type ScannedTicketRow<Time> =
    (Uuid, Uuid, Uuid, Uuid, String, String, Time, i32, String);

/// `$1` list, `$2` ticket, `$3` nonce: the ticket's first entry and last successful scan
/// here, whether the nonce has a check-in, and the reason and code it was last refused for.
/// (A ticket's scans are ordered by the whole of `checkins_ticket_idx`, so that no plan,
/// however stale its statistics, walks the primary key in `seq` order instead: that costs
/// every check-in. The nonce's unique index is the only one that leads with the list.)
pub(in crate::store) const SCAN_FACTS: &str = "SELECT
        (SELECT scanned_at FROM checkins WHERE ticket_id = $2 AND list_id = $1 AND kind = 'entry'
         ORDER BY ticket_id, list_id, seq LIMIT 1),
        (SELECT kind FROM checkins WHERE ticket_id = $2 AND list_id = $1
         ORDER BY ticket_id DESC, list_id DESC, seq DESC LIMIT 1),
        EXISTS (SELECT 1 FROM checkins WHERE list_id = $1 AND nonce = $3),
        (SELECT reason FROM checkin_refusals WHERE list_id = $1 AND nonce = $3),
        (SELECT code FROM checkin_refusals WHERE list_id = $1 AND nonce = $3)";

/// `$1` list, `$2` nonce: its check-in as first answered.
pub(in crate::store) const STORED_CHECKIN: &str = "SELECT c.id, c.code, c.kind, c.scanned_at,
        c.gate, c.forced, c.reason, c.first_entry_at, c.ticket_id, c.event_id, t.order_id,
        t.tier_id, c.ticket_status, c.ticket_serial, c.tier_name, c.holder_name, c.created_at
     FROM checkins c JOIN tickets t ON t.id = c.ticket_id
     WHERE c.list_id = $1 AND c.nonce = $2";

/// A nonce's check-in, unless the nonce already has one (then no row comes back).
pub(in crate::store) const INSERT_CHECKIN: &str = "INSERT INTO checkins
        (id, list_id, event_id, ticket_id, kind, nonce, code, scanned_at, gate, forced, reason,
         first_entry_at, ticket_status, ticket_serial, tier_name, holder_name, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
     ON CONFLICT (list_id, nonce) DO NOTHING RETURNING seq";

/// The refused log keeps the last judgement of a nonce, and about `$8` rows a list at most
/// (past them a refused scan is answered but not logged; refusals at once may pass it by a
/// few); `$9` the nonce's counter ([`refusal_shard`]).
pub(in crate::store) const LOG_REFUSAL: &str = "INSERT INTO checkin_refusals
        (list_id, nonce, code, reason, scanned_at, gate, created_at, shard)
     SELECT $1, $2, $3, $4, $5, $6, $7, $9
     WHERE (SELECT coalesce(sum(logged), 0) FROM checkin_refusal_counts WHERE list_id = $1) < $8
     ON CONFLICT (list_id, nonce) DO UPDATE SET code = excluded.code, reason = excluded.reason,
        scanned_at = excluded.scanned_at, gate = excluded.gate, created_at = excluded.created_at";

/// Which of its list's 16 refusal counters counts a nonce's row (any spread will do: it only
/// keeps concurrent refusals off one counter row).
pub(in crate::store) fn refusal_shard(nonce: &str) -> i32 {
    let hash = nonce.bytes().fold(0u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    });
    i32::try_from(hash % 16).unwrap_or(0)
}

/// A nonce refused before and admitted now names one scan, the admitted one.
pub(in crate::store) const FORGET_REFUSAL: &str =
    "DELETE FROM checkin_refusals WHERE list_id = $1 AND nonce = $2";

/// `$1` event: its paid tickets per tier.
pub(in crate::store) const PAID_BY_TIER: &str = "SELECT tier_id, count(*) FROM tickets
     WHERE event_id = $1 AND status = 'paid' GROUP BY tier_id";

/// `$1` event: its tiers by position.
pub(in crate::store) const EVENT_TIERS: &str =
    "SELECT id, name FROM ticket_tiers WHERE event_id = $1 ORDER BY position";

/// `$1` list: the distinct tickets with an entry here, per tier.
pub(in crate::store) const ADMITTED_BY_TIER: &str = "SELECT t.tier_id, count(DISTINCT c.ticket_id)
     FROM checkins c JOIN tickets t ON t.id = c.ticket_id
     WHERE c.list_id = $1 AND c.kind = 'entry' GROUP BY t.tier_id";

/// `$1` list, `$2` event: tickets inside (last scan here an entry), successful and forced
/// scans, refused scans, and tickets entered on any list of the event.
pub(in crate::store) const LIST_COUNTS: &str = "SELECT
        (SELECT count(*) FROM (
            SELECT kind, row_number() OVER (PARTITION BY ticket_id ORDER BY seq DESC) AS latest
            FROM checkins WHERE list_id = $1) last_scans
         WHERE latest = 1 AND kind = 'entry'),
        (SELECT count(*) FROM checkins WHERE list_id = $1),
        (SELECT count(*) FROM checkins WHERE list_id = $1 AND forced),
        (SELECT count(*) FROM checkin_refusals WHERE list_id = $1),
        (SELECT count(DISTINCT ticket_id) FROM checkins WHERE event_id = $2 AND kind = 'entry')";

pub(in crate::store) const BUNDLE_EVENT: &str =
    "SELECT title, start_time, end_time, creator_id FROM events WHERE id = $1";

/// `$1` event: the revocation log's head (no row: nothing revoked yet).
pub(in crate::store) const REVOCATION_HEAD: &str =
    "SELECT last_seq FROM ticket_code_heads WHERE event_id = $1";

/// `$1` event, `$2` log position: the tickets revoked after it, as they are now.
pub(in crate::store) const REVOKED_SINCE: &str = "SELECT id, status, code_serial FROM tickets
     WHERE id IN (SELECT ticket_id FROM ticket_code_changes WHERE event_id = $1 AND seq > $2)
     ORDER BY id";

/// `$1` event, `$2` limit, `$3` skip: a page of its paid tickets, with how many there are.
pub(in crate::store) const PAID_TICKETS: &str = "SELECT t.id, t.tier_id, t.code_serial, u.name,
        count(*) OVER ()
     FROM tickets t JOIN users u ON u.id = t.user_id
     WHERE t.event_id = $1 AND t.status = 'paid' ORDER BY t.id LIMIT $2 OFFSET $3";

pub(in crate::store) const COUNT_PAID_TICKETS: &str =
    "SELECT count(*) FROM tickets WHERE event_id = $1 AND status = 'paid'";

/// [`crate::store::ScanStore`] for `$store` on `$db`, with `write_tx`, `scan_tx` (a `$tx`),
/// the read pool `$reader` and `redeem_scan` (which redeems through [`scans::redeem_in`]).
macro_rules! scan_store {
    ($store:ty, $db:ty, $tx:ty, $reader:ident) => {
        mod scans {
            use std::collections::{BTreeMap, HashMap};

            use super::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use uuid::Uuid;
            use $crate::domain::scan::judge;
            use $crate::domain::{
                BundleTicket, Checkin, CheckinList, DoorBundle, ListStatus, OfflineResult,
                Redeemed, Revocation, Scan, ScanHistory, ScanKind, ScanReason, ScanResult,
                ScannedCode, ScannedTicket, ScannerToken, TicketStatus, TokenCreated, TokenDraft,
                TokenRevoked,
            };
            use $crate::store::scans::{BundleRequest, RecordScan, ScanRequest, ScanStore};
            use $crate::store::sql::{self, Dialect, StoredTime, parse_status};
            use $crate::store::{StoreError, StoreResult};

            type Time = <$db as Dialect>::Time;
            type Conn = <$db as sqlx::Database>::Connection;

            fn utc(at: Option<Time>) -> StoreResult<Option<DateTime<Utc>>> {
                at.map(StoredTime::into_utc).transpose()
            }

            fn serial(raw: i32) -> StoreResult<u32> {
                u32::try_from(raw).map_err(|_| StoreError::Corrupt(format!("code serial {raw}")))
            }

            fn kind(raw: &str) -> StoreResult<ScanKind> {
                ScanKind::parse(raw).ok_or_else(|| StoreError::Corrupt(format!("scan {raw:?}")))
            }

            fn reason(raw: Option<String>) -> StoreResult<Option<ScanReason>> {
                raw.map(|raw| {
                    ScanReason::parse(&raw)
                        .ok_or_else(|| StoreError::Corrupt(format!("scan reason {raw:?}")))
                })
                .transpose()
            }

            type TokenRow = (
                Uuid,
                Uuid,
                String,
                bool,
                Time,
                Time,
                Option<Time>,
                Option<Uuid>,
            );

            /// Tokens from rows of one token per list it names, in order.
            fn tokens(rows: Vec<TokenRow>) -> StoreResult<Vec<ScannerToken>> {
                let mut tokens: Vec<ScannerToken> = Vec::new();
                for (id, event_id, label, all, created, expires, revoked, list) in rows {
                    if tokens.last().is_none_or(|token| token.id != id) {
                        tokens.push(ScannerToken {
                            id,
                            event_id,
                            label,
                            list_ids: (!all).then(Vec::new),
                            created_at: created.into_utc()?,
                            expires_at: expires.into_utc()?,
                            revoked_at: utc(revoked)?,
                        });
                    }
                    if let (Some(lists), Some(list)) =
                        (tokens.last_mut().and_then(|t| t.list_ids.as_mut()), list)
                    {
                        lists.push(list);
                    }
                }
                Ok(tokens)
            }

            /// The tickets `scans` name that exist, their rows locked until the transaction
            /// ends (in id order), and whether each one's hold lapsed by `now`.
            async fn lock_tickets(
                conn: &mut Conn,
                scans: &[RecordScan<'_>],
                now: DateTime<Utc>,
            ) -> StoreResult<HashMap<Uuid, (ScannedTicket, bool)>> {
                let mut ids: Vec<Uuid> = scans.iter().filter_map(|s| s.code.ticket_id()).collect();
                ids.sort_unstable();
                ids.dedup();
                let rows = <$db as Dialect>::lock_scanned_tickets(conn, &ids).await?;
                rows.into_iter()
                    .map(
                        |(
                            id,
                            event_id,
                            order_id,
                            tier_id,
                            tier_name,
                            status,
                            expires,
                            code,
                            holder,
                        )| {
                            let ticket = ScannedTicket {
                                id,
                                event_id,
                                order_id,
                                tier_id,
                                tier_name,
                                status: parse_status(&status)?,
                                serial: serial(code)?,
                                holder_name: holder,
                            };
                            // Only a hold lapses; a paid ticket keeps its old deadline.
                            let lapsed = ticket.status == TicketStatus::Reserved
                                && expires.into_utc()? <= now;
                            Ok((id, (ticket, lapsed)))
                        },
                    )
                    .collect()
            }

            #[derive(sqlx::FromRow)]
            struct StoredRow {
                id: Uuid,
                code: String,
                kind: String,
                scanned_at: Time,
                gate: Option<String>,
                forced: bool,
                reason: Option<String>,
                first_entry_at: Option<Time>,
                ticket_id: Uuid,
                event_id: Uuid,
                order_id: Uuid,
                tier_id: Uuid,
                ticket_status: String,
                ticket_serial: i32,
                tier_name: String,
                holder_name: String,
                created_at: Time,
            }

            /// The check-in of `nonce` on `list_id` as first answered, and its code.
            async fn stored_checkin(
                conn: &mut Conn,
                list_id: Uuid,
                nonce: &str,
            ) -> StoreResult<Option<(ScanResult, String)>> {
                let row: Option<StoredRow> = sqlx::query_as(sql::STORED_CHECKIN)
                    .bind(list_id)
                    .bind(nonce)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let result = ScanResult {
                    reason: reason(row.reason)?,
                    checkin: Some(Checkin {
                        id: row.id,
                        list_id,
                        kind: kind(&row.kind)?,
                        nonce: nonce.to_owned(),
                        scanned_at: row.scanned_at.into_utc()?,
                        gate: row.gate,
                        forced: row.forced,
                        created_at: row.created_at.into_utc()?,
                    }),
                    ticket: Some(ScannedTicket {
                        id: row.ticket_id,
                        event_id: row.event_id,
                        order_id: row.order_id,
                        tier_id: row.tier_id,
                        tier_name: row.tier_name,
                        status: parse_status(&row.ticket_status)?,
                        serial: serial(row.ticket_serial)?,
                        holder_name: row.holder_name,
                    }),
                    first_entry_at: utc(row.first_entry_at)?,
                };
                Ok(Some((result, row.code)))
            }

            /// A nonce's first answer when its code is `code`; taken by another code otherwise.
            async fn replay(conn: &mut Conn, scan: &Scan) -> StoreResult<Redeemed> {
                Ok(
                    match stored_checkin(conn, scan.list_id, &scan.nonce).await? {
                        Some((result, code)) if code == scan.code => Redeemed::Replayed(result),
                        _ => Redeemed::NonceTaken,
                    },
                )
            }

            /// What a transaction of scans does to the refused log, done last and in counter order
            /// (list, shard, nonce): every write to the log moves its nonce's counter
            /// ([`sql::refusal_shard`]), so no two transactions take two counters in opposite
            /// orders (each counter is locked before its row is written: a trigger, see
            /// migration `0018`). Scans after a refusal in the same transaction see it through
            /// [`RefusedLog::standing`].
            #[derive(Default)]
            struct RefusedLog<'a> {
                changes: BTreeMap<(Uuid, i32, &'a str), RefusedChange<'a>>,
            }

            enum RefusedChange<'a> {
                /// The nonce's last judgement, by the scan at `index`.
                Log {
                    index: usize,
                    scan: &'a Scan,
                    reason: ScanReason,
                },
                /// The nonce's logged refusal, forgotten: a nonce refused before and admitted
                /// now names one scan, the admitted one.
                Forget,
            }

            impl<'a> RefusedLog<'a> {
                fn key(scan: &'a Scan) -> (Uuid, i32, &'a str) {
                    (
                        scan.list_id,
                        sql::refusal_shard(&scan.nonce),
                        scan.nonce.as_str(),
                    )
                }

                fn refused(&mut self, index: usize, scan: &'a Scan, reason: ScanReason) {
                    let change = RefusedChange::Log {
                        index,
                        scan,
                        reason,
                    };
                    self.changes.insert(Self::key(scan), change);
                }

                /// Where `scan`'s nonce stands in the refused log in this transaction: the
                /// refusal (reason, code) of an earlier scan of it here, none if one was
                /// forgotten, else what the log held (`logged`).
                fn standing(
                    &self,
                    scan: &'a Scan,
                    logged: Option<(ScanReason, String)>,
                ) -> Option<(ScanReason, String)> {
                    match self.changes.get(&Self::key(scan)) {
                        Some(RefusedChange::Log { scan, reason, .. }) => {
                            Some((*reason, scan.code.clone()))
                        }
                        Some(RefusedChange::Forget) => None,
                        None => logged,
                    }
                }

                /// `scan` admitted; `logged`: the log held a refusal of its nonce.
                fn admitted(&mut self, scan: &'a Scan, logged: bool) {
                    if logged {
                        self.changes.insert(Self::key(scan), RefusedChange::Forget);
                    } else {
                        self.changes.remove(&Self::key(scan));
                    }
                }

                /// Logs at most about `max_refusals` rows a list (past them a refused scan is
                /// answered but not logged). `Err(index)`: the scan at `index` met its list
                /// deleted meanwhile.
                async fn write(
                    self,
                    conn: &mut Conn,
                    now: DateTime<Utc>,
                    max_refusals: i64,
                ) -> StoreResult<Result<(), usize>> {
                    for ((list_id, shard, nonce), change) in self.changes {
                        let RefusedChange::Log {
                            index,
                            scan,
                            reason,
                        } = change
                        else {
                            sqlx::query(sql::FORGET_REFUSAL)
                                .bind(list_id)
                                .bind(nonce)
                                .execute(&mut *conn)
                                .await?;
                            continue;
                        };
                        let logged = sqlx::query(sql::LOG_REFUSAL)
                            .bind(list_id)
                            .bind(nonce)
                            .bind(&scan.code)
                            .bind(reason.as_str())
                            .bind(Time::from(scan.scanned_at))
                            .bind(scan.gate.as_deref())
                            .bind(Time::from(now))
                            .bind(max_refusals)
                            .bind(shard)
                            .execute(&mut *conn)
                            .await;
                        if list_gone(logged)? {
                            return Ok(Err(index));
                        }
                    }
                    Ok(Ok(()))
                }
            }

            type ListRow = (
                Uuid,
                Uuid,
                String,
                bool,
                bool,
                Option<Time>,
                Option<Time>,
                bool,
                Time,
                Uuid,
                Option<Uuid>,
            );

            type FactsRow = (
                Option<Time>,
                Option<String>,
                bool,
                Option<String>,
                Option<String>,
            );

            /// Judges the scan at `index` of a transaction (begun at `now`) and records it:
            /// its check-in at once, its refusal in `refused_log`. `ticket`: the one its code
            /// names, locked, and whether its hold lapsed.
            async fn redeem_on<'a>(
                conn: &mut Conn,
                now: DateTime<Utc>,
                index: usize,
                record: &RecordScan<'a>,
                ticket: Option<(ScannedTicket, bool)>,
                refused_log: &mut RefusedLog<'a>,
            ) -> StoreResult<Redeemed> {
                let RecordScan {
                    scan,
                    code,
                    list,
                    offline,
                } = *record;
                let ticket_id = ticket.as_ref().map_or(Uuid::nil(), |(t, _)| t.id);
                let (first_entry, last_kind, has_checkin, refused, refused_code): FactsRow =
                    sqlx::query_as(sql::SCAN_FACTS)
                        .bind(list.id)
                        .bind(ticket_id)
                        .bind(&scan.nonce)
                        .fetch_one(&mut *conn)
                        .await?;
                if has_checkin {
                    return replay(conn, scan).await;
                }
                let logged = reason(refused)?;
                let standing = refused_log.standing(scan, logged.zip(refused_code));
                if let (Some(_), Some((refused, refused_code))) = (offline, standing) {
                    if refused_code != scan.code {
                        return Ok(Redeemed::NonceTaken);
                    }
                    return Ok(Redeemed::Replayed(ScanResult {
                        reason: Some(refused),
                        checkin: None,
                        ticket: None,
                        first_entry_at: None,
                    }));
                }
                let history = ScanHistory {
                    first_entry_at: utc(first_entry)?,
                    last_kind: last_kind.as_deref().map(kind).transpose()?,
                };
                let (ticket, expired) = match ticket {
                    Some((ticket, expired)) => (Some(ticket), expired),
                    None => (None, false),
                };
                let (reason, admitted) = match offline {
                    Some(OfflineResult::Refused(reason)) => (Some(reason), false),
                    Some(OfflineResult::Admitted) => {
                        let forced = Scan {
                            force: true,
                            ..scan.clone()
                        };
                        judge(&forced, code, ticket.as_ref(), expired, list, history)
                    }
                    None => judge(scan, code, ticket.as_ref(), expired, list, history),
                };
                // A ticket of another event is none of this door's business.
                let shown = ticket.filter(|ticket| ticket.event_id == list.event_id);
                let shown = shown.map(|ticket| ScannedTicket {
                    status: if expired {
                        TicketStatus::Expired
                    } else {
                        ticket.status
                    },
                    ..ticket
                });
                let mut result = ScanResult {
                    reason,
                    checkin: None,
                    ticket: shown,
                    first_entry_at: history.first_entry_at,
                };
                let (Some(ticket), true) = (result.ticket.as_ref(), admitted) else {
                    refused_log.refused(index, scan, reason.unwrap_or(ScanReason::Invalid));
                    return Ok(Redeemed::Judged(result));
                };
                let checkin = Checkin {
                    id: Uuid::now_v7(),
                    list_id: list.id,
                    kind: scan.kind,
                    nonce: scan.nonce.clone(),
                    scanned_at: scan.scanned_at,
                    gate: scan.gate.clone(),
                    forced: reason.is_some(),
                    created_at: now,
                };
                let inserted = sqlx::query_scalar::<_, i64>(sql::INSERT_CHECKIN)
                    .bind(checkin.id)
                    .bind(list.id)
                    .bind(list.event_id)
                    .bind(ticket.id)
                    .bind(scan.kind.as_str())
                    .bind(&scan.nonce)
                    .bind(&scan.code)
                    .bind(Time::from(scan.scanned_at))
                    .bind(scan.gate.as_deref())
                    .bind(checkin.forced)
                    .bind(reason.map(ScanReason::as_str))
                    .bind(history.first_entry_at.map(Time::from))
                    .bind(ticket.status.as_str())
                    .bind(i32::try_from(ticket.serial).unwrap_or(i32::MAX))
                    .bind(&ticket.tier_name)
                    .bind(&ticket.holder_name)
                    .bind(Time::from(now))
                    .fetch_optional(&mut *conn)
                    .await;
                let inserted = match inserted {
                    Ok(inserted) => inserted,
                    Err(error) => {
                        list_gone(Err::<(), _>(error))?;
                        return Ok(Redeemed::ListGone);
                    }
                };
                if inserted.is_none() {
                    // Another code's scan took the nonce since the facts were read.
                    return replay(conn, scan).await;
                }
                refused_log.admitted(scan, logged.is_some());
                result.checkin = Some(checkin);
                Ok(Redeemed::Judged(result))
            }

            /// Judges and records `scans` in the caller's transaction (begun at `now`), each as
            /// if alone after the ones before it: every ticket they name locked first, in id
            /// order; the refused log written last ([`RefusedLog`]). `Err(index)`: the scan at
            /// `index` met its list deleted meanwhile; the transaction is to be rolled back.
            async fn record_scans(
                conn: &mut Conn,
                now: DateTime<Utc>,
                scans: &[RecordScan<'_>],
                max_refusals: i64,
            ) -> StoreResult<Result<Vec<Redeemed>, usize>> {
                let tickets = lock_tickets(conn, scans, now).await?;
                let mut refused_log = RefusedLog::default();
                let mut redeemed = Vec::with_capacity(scans.len());
                for (index, record) in scans.iter().enumerate() {
                    let ticket = record.code.ticket_id().and_then(|id| tickets.get(&id));
                    let ticket = ticket.cloned();
                    let judged =
                        redeem_on(conn, now, index, record, ticket, &mut refused_log).await?;
                    if judged == Redeemed::ListGone {
                        return Ok(Err(index));
                    }
                    redeemed.push(judged);
                }
                Ok(refused_log
                    .write(conn, now, max_refusals)
                    .await?
                    .map(|()| redeemed))
            }

            /// Redeems `requests` in `tx` (begun at `now`) and ends it, each answered as if
            /// alone. A batch that meets a deleted list fails whole, so that each of its
            /// scans is redeemed again alone ([`crate::store::batch::write`]).
            pub(in crate::store) async fn redeem_in(
                mut tx: $tx,
                now: DateTime<Utc>,
                requests: &[&ScanRequest],
            ) -> StoreResult<Vec<StoreResult<Redeemed>>> {
                let scans: Vec<RecordScan<'_>> =
                    requests.iter().map(|request| request.record()).collect();
                let max_refusals = requests.iter().map(|r| r.max_refusals).min().unwrap_or(0);
                match record_scans(&mut tx, now, &scans, max_refusals).await? {
                    Ok(redeemed) => {
                        tx.commit().await?;
                        Ok(redeemed.into_iter().map(Ok).collect())
                    }
                    Err(_) => {
                        tx.rollback().await?;
                        if requests.len() > 1 {
                            return Err(StoreError::ForeignKeyViolation);
                        }
                        Ok(vec![Ok(Redeemed::ListGone)])
                    }
                }
            }

            /// Whether a write failed because its list was deleted since it was read (its
            /// foreign key); any other failure is the store's.
            fn list_gone<T>(written: Result<T, sqlx::Error>) -> StoreResult<bool> {
                match written {
                    Ok(_) => Ok(false),
                    Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => {
                        Ok(true)
                    }
                    Err(error) => Err(error.into()),
                }
            }

            #[async_trait]
            impl ScanStore for $store {
                async fn create_scanner_token(
                    &self,
                    event_id: Uuid,
                    creator: Uuid,
                    draft: &TokenDraft,
                    token_hash: &[u8; 32],
                    max_live: i64,
                ) -> StoreResult<TokenCreated> {
                    let (mut tx, now) = self.write_tx().await?;
                    let refusal =
                        match sql::lock_event_on::<$db>(&mut tx, event_id, creator).await? {
                            sql::Caller::NoEvent => Some(TokenCreated::EventNotFound),
                            sql::Caller::NotCreator => Some(TokenCreated::NotCreator),
                            sql::Caller::Creator => None,
                        };
                    if let Some(refusal) = refusal {
                        tx.rollback().await?;
                        return Ok(refusal);
                    }
                    let live: i64 = sqlx::query_scalar(sql::COUNT_LIVE_TOKENS)
                        .bind(event_id)
                        .bind(Time::from(now))
                        .fetch_one(&mut *tx)
                        .await?;
                    if live >= max_live {
                        tx.rollback().await?;
                        return Ok(TokenCreated::TooMany);
                    }
                    if let Some(lists) = &draft.list_ids {
                        let known: Vec<Uuid> = sqlx::query_scalar(sql::EVENT_LIST_IDS)
                            .bind(event_id)
                            .fetch_all(&mut *tx)
                            .await?;
                        if let Some(index) = lists.iter().position(|id| !known.contains(id)) {
                            tx.rollback().await?;
                            return Ok(TokenCreated::UnknownList(index));
                        }
                    }
                    let token = ScannerToken {
                        id: Uuid::now_v7(),
                        event_id,
                        label: draft.label.clone(),
                        list_ids: draft.list_ids.clone(),
                        created_at: now,
                        expires_at: now + draft.lifetime,
                        revoked_at: None,
                    };
                    sqlx::query(sql::INSERT_TOKEN)
                        .bind(token.id)
                        .bind(event_id)
                        .bind(&token.label)
                        .bind(token.list_ids.is_none())
                        .bind(&token_hash[..])
                        .bind(Time::from(now))
                        .bind(Time::from(token.expires_at))
                        .execute(&mut *tx)
                        .await?;
                    for (position, list) in token.list_ids.iter().flatten().enumerate() {
                        sqlx::query(sql::INSERT_TOKEN_LIST)
                            .bind(token.id)
                            .bind(*list)
                            .bind(i32::try_from(position).unwrap_or(i32::MAX))
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(TokenCreated::Created(Box::new(token)))
                }

                async fn scanner_tokens(
                    &self,
                    event_id: Uuid,
                ) -> StoreResult<Option<(Uuid, Vec<ScannerToken>)>> {
                    let owner: Option<Uuid> = sqlx::query_scalar(sql::EVENT_CREATOR)
                        .bind(event_id)
                        .fetch_optional(&self.$reader)
                        .await?;
                    let Some(owner) = owner else {
                        return Ok(None);
                    };
                    let rows: Vec<TokenRow> = sqlx::query_as(sql::EVENT_TOKENS)
                        .bind(event_id)
                        .fetch_all(&self.$reader)
                        .await?;
                    Ok(Some((owner, tokens(rows)?)))
                }

                async fn revoke_scanner_token(
                    &self,
                    event_id: Uuid,
                    token_id: Uuid,
                    creator: Uuid,
                ) -> StoreResult<TokenRevoked> {
                    let (mut tx, now) = self.write_tx().await?;
                    let outcome =
                        match sql::lock_event_on::<$db>(&mut tx, event_id, creator).await? {
                            sql::Caller::NoEvent => TokenRevoked::EventNotFound,
                            sql::Caller::NotCreator => TokenRevoked::NotCreator,
                            sql::Caller::Creator => {
                                let revoked = sqlx::query(sql::REVOKE_TOKEN)
                                    .bind(token_id)
                                    .bind(event_id)
                                    .bind(Time::from(now))
                                    .execute(&mut *tx)
                                    .await?;
                                if revoked.rows_affected() == 0 {
                                    TokenRevoked::TokenNotFound
                                } else {
                                    TokenRevoked::Revoked
                                }
                            }
                        };
                    tx.commit().await?;
                    Ok(outcome)
                }

                async fn scanner_token(
                    &self,
                    token_hash: &[u8; 32],
                ) -> StoreResult<Option<ScannerToken>> {
                    let rows: Vec<TokenRow> = sqlx::query_as(sql::TOKEN_BY_HASH)
                        .bind(&token_hash[..])
                        .fetch_all(&self.$reader)
                        .await?;
                    Ok(tokens(rows)?.pop())
                }

                async fn checkin_list(
                    &self,
                    list_id: Uuid,
                ) -> StoreResult<Option<(Uuid, CheckinList)>> {
                    let rows: Vec<ListRow> = sqlx::query_as(sql::LIST_BY_ID)
                        .bind(list_id)
                        .fetch_all(&self.$reader)
                        .await?;
                    let tier_ids: Vec<Uuid> = rows.iter().filter_map(|row| row.10).collect();
                    let Some(row) = rows.into_iter().next() else {
                        return Ok(None);
                    };
                    let (id, event_id, name, all, reentry, activates, expires, default) =
                        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
                    let list = CheckinList {
                        id,
                        event_id,
                        name,
                        tier_ids: (!all).then_some(tier_ids),
                        allow_reentry: reentry,
                        activates_at: utc(activates)?,
                        expires_at: utc(expires)?,
                        is_default: default,
                        created_at: row.8.into_utc()?,
                    };
                    Ok(Some((row.9, list)))
                }

                async fn redeem(
                    &self,
                    scan: &Scan,
                    code: ScannedCode,
                    list: &CheckinList,
                    max_refusals: i64,
                ) -> StoreResult<Redeemed> {
                    let request = ScanRequest {
                        scan: scan.clone(),
                        code,
                        list: list.clone(),
                        max_refusals,
                    };
                    self.redeem_scan(request).await
                }

                async fn upload(
                    &self,
                    scans: &[RecordScan<'_>],
                    max_refusals: i64,
                ) -> StoreResult<Result<Vec<Redeemed>, (usize, Redeemed)>> {
                    let mut order: Vec<usize> = (0..scans.len()).collect();
                    order.sort_by_key(|&index| scans[index].scan.scanned_at);
                    let by_time: Vec<RecordScan<'_>> =
                        order.iter().map(|&index| scans[index]).collect();
                    let (mut tx, now) = self.scan_tx().await?;
                    let recorded = record_scans(&mut tx, now, &by_time, max_refusals).await?;
                    let refused = match recorded {
                        Err(at) => Some((order[at], Redeemed::ListGone)),
                        Ok(ref redeemed) => redeemed
                            .iter()
                            .position(|r| *r == Redeemed::NonceTaken)
                            .map(|at| (order[at], Redeemed::NonceTaken)),
                    };
                    if let Some(refused) = refused {
                        tx.rollback().await?;
                        return Ok(Err(refused));
                    }
                    tx.commit().await?;
                    let mut results = vec![None; scans.len()];
                    for (index, redeemed) in order.into_iter().zip(recorded.unwrap_or_default()) {
                        results[index] = Some(redeemed);
                    }
                    Ok(Ok(results.into_iter().flatten().collect()))
                }

                async fn list_status(&self, list: &CheckinList) -> StoreResult<ListStatus> {
                    let paid: HashMap<Uuid, i64> = sqlx::query_as(sql::PAID_BY_TIER)
                        .bind(list.event_id)
                        .fetch_all(&self.$reader)
                        .await?
                        .into_iter()
                        .collect();
                    let tiers: Vec<(Uuid, String)> = sqlx::query_as(sql::EVENT_TIERS)
                        .bind(list.event_id)
                        .fetch_all(&self.$reader)
                        .await?;
                    let entered: HashMap<Uuid, i64> = sqlx::query_as(sql::ADMITTED_BY_TIER)
                        .bind(list.id)
                        .fetch_all(&self.$reader)
                        .await?
                        .into_iter()
                        .collect();
                    let (inside, scans_ok, forced, scans_refused, event_admitted_distinct): (
                        i64,
                        i64,
                        i64,
                        i64,
                        i64,
                    ) = sqlx::query_as(sql::LIST_COUNTS)
                        .bind(list.id)
                        .bind(list.event_id)
                        .fetch_one(&self.$reader)
                        .await?;
                    let by_tier: Vec<(Uuid, i64, i64)> = tiers
                        .into_iter()
                        .map(|(tier, _)| tier)
                        .filter(|tier| list.tier_ids.as_ref().is_none_or(|ids| ids.contains(tier)))
                        .map(|tier| {
                            let expected = paid.get(&tier).copied().unwrap_or(0);
                            (tier, expected, entered.get(&tier).copied().unwrap_or(0))
                        })
                        .collect();
                    Ok(ListStatus {
                        expected: by_tier.iter().map(|(_, expected, _)| expected).sum(),
                        admitted: entered.values().sum(),
                        inside,
                        scans_ok,
                        scans_refused,
                        forced,
                        by_tier,
                        event_admitted_distinct,
                    })
                }

                async fn door_bundle(
                    &self,
                    event_id: Uuid,
                    request: BundleRequest,
                ) -> StoreResult<Option<Result<DoorBundle, i64>>> {
                    let mut conn = self.$reader.acquire().await?;
                    let event: Option<(String, Time, Time, Uuid)> =
                        sqlx::query_as(sql::BUNDLE_EVENT)
                            .bind(event_id)
                            .fetch_optional(&mut *conn)
                            .await?;
                    let Some((title, start_time, end_time, creator_id)) = event else {
                        return Ok(None);
                    };
                    // The head first: the log read after it holds at least every entry up to it.
                    let head: Option<i64> = sqlx::query_scalar(sql::REVOCATION_HEAD)
                        .bind(event_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    let head = head.unwrap_or(0);
                    if request.since > head {
                        return Ok(Some(Err(head)));
                    }
                    let revoked: Vec<(Uuid, String, i32)> = sqlx::query_as(sql::REVOKED_SINCE)
                        .bind(event_id)
                        .bind(request.since)
                        .fetch_all(&mut *conn)
                        .await?;
                    let revocations = revoked
                        .into_iter()
                        .map(|(ticket_id, status, code)| {
                            let paid = parse_status(&status)? == TicketStatus::Paid;
                            Ok::<_, StoreError>(Revocation {
                                ticket_id,
                                valid_serial: if paid { Some(serial(code)?) } else { None },
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    let tiers: Vec<(Uuid, String)> = sqlx::query_as(sql::EVENT_TIERS)
                        .bind(event_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    let tickets = match request.tickets {
                        None => None,
                        Some((skip, limit)) => {
                            let rows: Vec<(Uuid, Uuid, i32, String, i64)> =
                                sqlx::query_as(sql::PAID_TICKETS)
                                    .bind(event_id)
                                    .bind(limit)
                                    .bind(skip)
                                    .fetch_all(&mut *conn)
                                    .await?;
                            let total = match rows.first() {
                                Some(row) => row.4,
                                None => {
                                    sqlx::query_scalar(sql::COUNT_PAID_TICKETS)
                                        .bind(event_id)
                                        .fetch_one(&mut *conn)
                                        .await?
                                }
                            };
                            let page = rows
                                .into_iter()
                                .map(|(id, tier_id, code, holder_name, _)| {
                                    Ok::<_, StoreError>(BundleTicket {
                                        id,
                                        tier_id,
                                        serial: serial(code)?,
                                        holder_name,
                                    })
                                })
                                .collect::<Result<_, _>>()?;
                            Some((page, total))
                        }
                    };
                    Ok(Some(Ok(DoorBundle {
                        event_id,
                        title,
                        start_time: start_time.into_utc()?,
                        end_time: end_time.into_utc()?,
                        creator_id,
                        tiers,
                        revocations,
                        cursor: head,
                        tickets,
                    })))
                }
            }
        }
    };
}
