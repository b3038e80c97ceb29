//! [`crate::store::WaitlistStore`] and the waiting list's offer step, written once for both
//! backends ([`waitlist_store!`]) over the statements of [`super::waitlist`].

/// [`crate::store::WaitlistStore`] and the offer step for `$store` on `$db`, with `write_tx`,
/// the read pool `$reader` and `$statements` (now → the backend's order statements).
macro_rules! waitlist_store {
    ($store:ty, $db:ty, $reader:ident, $statements:expr) => {
        pub(super) mod waitlist {
            use std::collections::{HashMap, HashSet};

            use super::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use uuid::Uuid;
            use $crate::domain::waitlist::{
                ClosedReason, EntryEnd, EntryEnded, EntryStatus, InLine, JoinFacts, JoinLimits,
                JoinRequest, Joined, OfferDecision, WaitlistEntry, WaitlistFigures,
                judge_join, offer_seats,
            };
            use $crate::domain::{NewOrder, OrderLine, TierChoice, WriteOutcome};
            use $crate::store::order_batch::{self, BatchStatements, BuyerOf};
            use $crate::store::sql::{self, Dialect, EntryRow, LineRow, StoredTime};
            use $crate::store::{
                HeldKey, Page, StoreError, StoreResult, WaitlistFilter, WaitlistStore,
            };
            use $crate::store::waitlist::JoinAsk;

            type Time = <$db as Dialect>::Time;
            type Conn = <$db as sqlx::Database>::Connection;

            /// The offer step (WAITLIST.md) on `events`: run by the seat ledger in the
            /// transaction that freed seats, under the events' locks. An event nobody waits
            /// for costs one read of its row. How many offers it made.
            pub(in $crate::store) async fn offer_to_line(
                conn: &mut Conn,
                events: &[Uuid],
                now: DateTime<Utc>,
            ) -> StoreResult<usize> {
                let mut offers = 0;
                for event_id in events {
                    offers += offer_on(conn, *event_id, now).await?;
                }
                Ok(offers)
            }

            /// The offer step on one event, whose row the caller holds.
            async fn offer_on(
                conn: &mut Conn,
                event_id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<usize> {
                let line: Option<(bool, i32, Option<i32>)> = sqlx::query_as(sql::EVENT_LINE)
                    .bind(event_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some((_, waiting, event_minutes)) = line else {
                    return Ok(0);
                };
                if waiting <= 0 {
                    return Ok(0);
                }
                let statements = ($statements)(now);
                let (_, mut sales) = statements.read_sales(conn, &[event_id]).await?;
                let Some(sale) = sales.remove(&event_id) else {
                    return Ok(0);
                };
                let mut state = sale.state;
                let mut line = InLineUsers {
                    event_id,
                    capped: state.max_tickets_per_user.is_some(),
                    users: HashMap::new(),
                    held: HashMap::new(),
                };
                let mut offered = Vec::new();
                let mut closed = Vec::new();
                let mut after = i64::MIN;
                while sellable(&state, now) {
                    // A few seats back (a cancellation) need the line's first entries only.
                    let page_size = state.seats_left.saturating_mul(2).clamp(8, sql::LINE_PAGE_SIZE);
                    let page: Vec<LineRow> = sqlx::query_as(sql::LINE_PAGE)
                        .bind(event_id)
                        .bind(after)
                        .bind(page_size)
                        .fetch_all(&mut *conn)
                        .await?;
                    let Some(last) = page.last() else {
                        break;
                    };
                    after = last.seq;
                    // The per-person cap needs each user's live tickets before deciding;
                    // without one, only the users offered seats are read (below).
                    if line.capped {
                        let users = page.iter().map(|row| row.user_id);
                        line.read(&statements, conn, users, now).await?;
                    }
                    let in_line: Vec<InLine> = page
                        .iter()
                        .map(|row| InLine {
                            entry_id: row.id,
                            user_id: row.user_id,
                            request: JoinRequest {
                                tier_id: row.tier_id,
                                quantity: row.quantity,
                            },
                        })
                        .collect();
                    // Who each entry is, and how long its offer holds (the event's minutes,
                    // else the server's as the entry joined).
                    let terms: HashMap<Uuid, (Uuid, i64)> = page
                        .iter()
                        .map(|row| {
                            let seconds = event_minutes
                                .map_or(row.offer_seconds, |minutes| i64::from(minutes) * 60);
                            (row.id, (row.user_id, seconds))
                        })
                        .collect();
                    for decision in offer_seats(&mut state, &in_line, &mut line.held, now) {
                        match decision {
                            OfferDecision::Offer { entry_id, plan } => {
                                let (user, seconds) = *terms.get(&entry_id).ok_or_else(|| {
                                    StoreError::Corrupt("an offer to an entry not read".into())
                                })?;
                                offered.push((entry_id, user, plan, seconds));
                            }
                            OfferDecision::CloseForLimit { entry_id } => closed.push(entry_id),
                        }
                    }
                    if i64::try_from(page.len()).unwrap_or(i64::MAX) < page_size {
                        break;
                    }
                }
                if !line.capped {
                    let users = offered.iter().map(|(_, user, _, _)| *user);
                    line.read(&statements, conn, users, now).await?;
                }
                let mut placed = Vec::with_capacity(offered.len());
                for (entry_id, user_id, plan, seconds) in offered {
                    let Some(user) = line.users.get(&user_id) else {
                        continue;
                    };
                    let order = NewOrder {
                        order_id: Uuid::now_v7(),
                        user_id,
                        event_id,
                        lines: plan
                            .lines
                            .iter()
                            .map(|line| OrderLine {
                                tier: TierChoice::Tier(line.tier_id),
                                quantity: line.quantity,
                            })
                            .collect(),
                        hold: sql::offer_hold(seconds, sale.event.start_time, now),
                    };
                    let currency = state.currency.clone();
                    let mut details =
                        order_batch::granted_order(&order, plan, currency, &sale.event, user, now)?;
                    details.order.waitlist_entry_id = Some(entry_id);
                    placed.push(details);
                }
                if !placed.is_empty() {
                    let refs: Vec<_> = placed.iter().collect();
                    statements.insert(conn, &refs, &[], now).await?;
                }
                for details in &placed {
                    let order = &details.order;
                    let entry_id = order.waitlist_entry_id.expect("set above");
                    let line = details.lines.first().ok_or_else(|| {
                        StoreError::Corrupt("an offer without a line".into())
                    })?;
                    sqlx::query(sql::ORDER_OFFERED)
                        .bind(order.id)
                        .bind(entry_id)
                        .execute(&mut *conn)
                        .await?;
                    let moved = sqlx::query(sql::ENTRY_OFFERED)
                        .bind(entry_id)
                        .bind(order.id)
                        .bind(line.tier_id)
                        .bind(&line.tier_name)
                        .bind(line.quantity)
                        .bind(order.total_minor)
                        .bind(Time::from(now))
                        .bind(Time::from(order.expires_at))
                        .execute(&mut *conn)
                        .await?;
                    if moved.rows_affected() != 1 {
                        return Err(StoreError::Corrupt("an offered entry was not waiting".into()));
                    }
                }
                metrics::counter!("nearbytix_waitlist_offers_total")
                    .increment(u64::try_from(placed.len()).unwrap_or_default());
                for entry_id in closed {
                    sqlx::query(sql::CLOSE_ENTRY)
                        .bind(entry_id)
                        .bind(ClosedReason::Limit.as_str())
                        .bind(Time::from(now))
                        .execute(&mut *conn)
                        .await?;
                    metrics::counter!("nearbytix_waitlist_closed_total", "reason" => "limit")
                        .increment(1);
                }
                Ok(placed.len())
            }

            /// The people in line the offer step has read: who they are, and (where the
            /// event caps tickets per person) the live tickets each holds for it.
            struct InLineUsers {
                event_id: Uuid,
                capped: bool,
                users: HashMap<Uuid, $crate::domain::UserSummary>,
                held: HashMap<Uuid, i64>,
            }

            impl InLineUsers {
                /// Reads those of `users` not read yet.
                async fn read(
                    &mut self,
                    statements: &impl BatchStatements<Conn = Conn>,
                    conn: &mut Conn,
                    users: impl Iterator<Item = Uuid>,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let mut wanted: Vec<BuyerOf> = users
                        .filter(|user| !self.users.contains_key(user))
                        .map(|user_id| BuyerOf {
                            user_id,
                            event_id: self.event_id,
                            capped: self.capped,
                        })
                        .collect();
                    wanted.sort_unstable_by_key(|buyer| buyer.user_id);
                    wanted.dedup_by_key(|buyer| buyer.user_id);
                    if wanted.is_empty() {
                        return Ok(());
                    }
                    for ((user_id, _), (user, held)) in
                        statements.read_buyers(conn, &wanted, now).await?
                    {
                        self.held.insert(user_id, held);
                        self.users.insert(user_id, user);
                    }
                    Ok(())
                }
            }

            /// Whether the sale has a seat some tier sells now.
            fn sellable(state: &$crate::domain::SaleState, now: DateTime<Utc>) -> bool {
                !state.started
                    && state.seats_left > 0
                    && state.tiers.iter().any(|tier| tier.sale().selling(now) > 0)
            }

            /// A deleted tier's waiting entries close (`tier_unavailable`).
            pub(in $crate::store) async fn close_tier_line(
                conn: &mut Conn,
                tier: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let closed = sqlx::query(sql::CLOSE_TIER_LINE)
                    .bind(tier)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                count_closed(ClosedReason::TierUnavailable, closed.rows_affected());
                Ok(())
            }

            /// A disabled list's waiting entries close (`waitlist_disabled`); open offers run
            /// their course.
            pub(in $crate::store) async fn close_disabled_line(
                conn: &mut Conn,
                event: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let closed = sqlx::query(sql::CLOSE_DISABLED_LINE)
                    .bind(event)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                count_closed(ClosedReason::WaitlistDisabled, closed.rows_affected());
                Ok(())
            }

            /// Offers whose order expired end `expired` (after the ledger gave their seats
            /// back, under their events' locks).
            pub(in $crate::store) async fn end_lapsed_offers(
                conn: &mut Conn,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let ended = sqlx::query(sql::END_LAPSED_OFFERS)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                if ended > 0 {
                    metrics::counter!("nearbytix_waitlist_offers_ended_total", "outcome" => "expired")
                        .increment(ended);
                }
                Ok(())
            }

            /// Judges and writes `asks` in the caller's transaction, each as the joins before
            /// it left the line (the caller commits; a refused join writes nothing). Locks, in
            /// the order order batches take theirs: the events' rows in id order, the users' in
            /// id order (`FOR NO KEY UPDATE`, for the per-user limit across events; a buyer's
            /// `FOR KEY SHARE` passes), the keys' claims; then the events'
            /// due holds (and lapsed offers) give their seats back through the offer step, so
            /// that a join is judged on the sale as it is. An ask may fail alone (its user gone,
            /// its claim lost); an error fails them all: the transaction must not commit.
            pub(in $crate::store) async fn join_in(
                conn: &mut Conn,
                now: DateTime<Utc>,
                asks: &[&JoinAsk],
            ) -> StoreResult<Vec<StoreResult<Joined>>> {
                let mut events: Vec<Uuid> = asks.iter().map(|ask| ask.event_id).collect();
                events.sort_unstable();
                events.dedup();
                let statements = ($statements)(now);
                let (_, mut sales) = statements.read_sales(conn, &events).await?;
                let mut users: Vec<Uuid> = asks.iter().map(|ask| ask.user_id).collect();
                users.sort_unstable();
                users.dedup();
                // A user gone has no row to lock; `read_buyers` then finds no buyer.
                let lock_user = format!(
                    "SELECT id FROM users WHERE id = $1{}",
                    <$db as Dialect>::LOCK_ROW_NO_KEY
                );
                for user_id in users {
                    sqlx::query(&lock_user)
                        .bind(user_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                }
                let keys: Vec<&HeldKey> = asks.iter().filter_map(|ask| ask.key.as_ref()).collect();
                let claims = if keys.is_empty() {
                    HashSet::new()
                } else {
                    statements.hold_claims(conn, &keys).await?
                };
                if statements.release_due_holds(conn, &events, now).await? > 0 {
                    sales = statements.read_sales(conn, &events).await?.1;
                }
                let wanted: Vec<BuyerOf> = asks
                    .iter()
                    .map(|ask| BuyerOf {
                        user_id: ask.user_id,
                        event_id: ask.event_id,
                        capped: true,
                    })
                    .collect();
                let buyers = statements.read_buyers(conn, &wanted, now).await?;
                let mut lines: HashMap<Uuid, Line> = HashMap::with_capacity(sales.len());
                for (event_id, sale) in &sales {
                    lines.insert(*event_id, Line::read(conn, *event_id, &sale.state, now).await?);
                }
                let mut outcomes = Vec::with_capacity(asks.len());
                for ask in asks {
                    let Some(sale) = sales.get(&ask.event_id) else {
                        outcomes.push(Ok(Joined::EventNotFound));
                        continue;
                    };
                    // The event row was read, so the missing reference is the token's user.
                    let Some((buyer, held_by_user)) =
                        buyers.get(&(ask.user_id, ask.event_id)).cloned()
                    else {
                        outcomes.push(Err(StoreError::ForeignKeyViolation));
                        continue;
                    };
                    if ask.key.as_ref().is_some_and(|key| !claims.contains(&key.claim)) {
                        outcomes.push(Err(StoreError::ClaimLost));
                        continue;
                    }
                    let line = lines.get_mut(&ask.event_id).ok_or_else(|| {
                        StoreError::Corrupt("a join's line was not read".into())
                    })?;
                    let held = (buyer, held_by_user);
                    let joined = join_one(conn, now, ask, &sale.state, held, line).await?;
                    outcomes.push(Ok(joined));
                }
                Ok(outcomes)
            }

            /// An event's line as [`join_in`] finds it under the event's lock; only its joins
            /// move it then.
            struct Line {
                enabled: bool,
                /// The event's `waiting` entries.
                waiting: i64,
                /// Of those, the entries of tiers whose sales ended (in no one's rank; a join
                /// to such a tier is refused).
                closed: i64,
            }

            impl Line {
                async fn read(
                    conn: &mut Conn,
                    event_id: Uuid,
                    sale: &$crate::domain::SaleState,
                    now: DateTime<Utc>,
                ) -> StoreResult<Self> {
                    let (enabled, waiting, _): (bool, i32, Option<i32>) =
                        sqlx::query_as(sql::EVENT_LINE)
                            .bind(event_id)
                            .fetch_one(&mut *conn)
                            .await?;
                    let mut closed = 0;
                    let ended = sale.tiers.iter().filter(|tier| tier.sales_end.is_some_and(|end| end <= now));
                    for tier in ended {
                        let waiting: i64 = sqlx::query_scalar(sql::WAITING_OF_TIER)
                            .bind(tier.id)
                            .fetch_one(&mut *conn)
                            .await?;
                        closed += waiting;
                    }
                    Ok(Self {
                        enabled,
                        waiting: i64::from(waiting),
                        closed,
                    })
                }
            }

            /// One join of [`join_in`], on its event's sale and line and its user (with the
            /// live tickets they hold for it) as locked there.
            async fn join_one(
                conn: &mut Conn,
                now: DateTime<Utc>,
                ask: &JoinAsk,
                sale: &$crate::domain::SaleState,
                (buyer, held_by_user): ($crate::domain::UserSummary, i64),
                line: &mut Line,
            ) -> StoreResult<Joined> {
                let active_entry: Option<Uuid> = sqlx::query_scalar(sql::ACTIVE_ENTRY)
                    .bind(ask.event_id)
                    .bind(ask.user_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                let active_of_user: i64 = sqlx::query_scalar(sql::ACTIVE_OF_USER)
                    .bind(ask.user_id)
                    .fetch_one(&mut *conn)
                    .await?;
                let facts = JoinFacts {
                    sale: sale.clone(),
                    enabled: line.enabled,
                    active_entry,
                    held_by_user,
                    waiting: line.waiting,
                    active_of_user,
                };
                if let Err(refusal) = judge_join(ask.request, &facts, ask.limits, now) {
                    return Ok(Joined::Refused(refusal));
                }
                let tier = ask
                    .request
                    .tier_id
                    .and_then(|id| sale.tiers.iter().find(|tier| tier.id == id));
                let id = Uuid::now_v7();
                sqlx::query(sql::INSERT_ENTRY)
                    .bind(id)
                    .bind(ask.event_id)
                    .bind(ask.request.tier_id)
                    .bind(tier.map(|tier| tier.name.clone()))
                    .bind(ask.user_id)
                    .bind(ask.request.quantity)
                    .bind(ask.offer_seconds)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                line.waiting += 1;
                // Last in line (joins to the event wait for its lock): behind every waiting
                // entry whose line is open.
                let rank = line.waiting - line.closed;
                let row: Option<EntryRow<Time>> = sqlx::query_as(sql::FIND_JOINED)
                    .bind(Time::from(now))
                    .bind(id)
                    .bind(rank)
                    .fetch_optional(&mut *conn)
                    .await?;
                let mut entry = row
                    .map(EntryRow::into_entry)
                    .transpose()?
                    .ok_or_else(|| StoreError::Corrupt("a new entry vanished".into()))?;
                entry.user = buyer;
                if let Some(key) = &ask.key {
                    let joined = WriteOutcome::WaitlistJoined(Box::new(entry.clone()));
                    if !sql::record_outcome_on::<$db>(conn, key, &joined).await? {
                        return Err(StoreError::ClaimLost);
                    }
                }
                Ok(Joined::Joined(Box::new(entry)))
            }

            /// Locks `event_id`'s row (skipping it when another holds it and `skip`); whether
            /// it exists (and was free).
            async fn lock_event(conn: &mut Conn, event_id: Uuid, skip: bool) -> StoreResult<bool> {
                let suffix = if skip {
                    <$db as Dialect>::SKIP_LOCKED
                } else {
                    <$db as Dialect>::LOCK_ROW
                };
                let locked: Option<Uuid> = sqlx::query_scalar(&format!("{}{suffix}", sql::EVENT_ROW))
                    .bind(event_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok(locked.is_some())
            }

            async fn find_on(
                conn: &mut Conn,
                entry_id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<WaitlistEntry>> {
                let row: Option<EntryRow<Time>> = sqlx::query_as(sql::FIND_ENTRY)
                    .bind(Time::from(now))
                    .bind(entry_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                row.map(EntryRow::into_entry).transpose()
            }

            fn count_closed(reason: ClosedReason, entries: u64) {
                if entries > 0 {
                    metrics::counter!("nearbytix_waitlist_closed_total", "reason" => reason.as_str())
                        .increment(entries);
                }
            }

            #[async_trait]
            impl WaitlistStore for $store {
                async fn join_waitlist(
                    &self,
                    event_id: Uuid,
                    user_id: Uuid,
                    request: JoinRequest,
                    limits: JoinLimits,
                    offer_seconds: i64,
                    key: Option<&HeldKey>,
                ) -> StoreResult<Joined> {
                    let ask = JoinAsk {
                        event_id,
                        user_id,
                        request,
                        limits,
                        offer_seconds,
                        key: key.cloned(),
                    };
                    let joined = self.join_line(ask).await?;
                    if matches!(joined, Joined::Joined(_)) {
                        metrics::counter!("nearbytix_waitlist_joins_total").increment(1);
                    }
                    Ok(joined)
                }

                async fn waitlist_entry(
                    &self,
                    entry_id: Uuid,
                ) -> StoreResult<Option<(Uuid, WaitlistEntry)>> {
                    let now = Utc::now();
                    let mut conn = self.$reader.acquire().await?;
                    let Some(entry) = find_on(&mut conn, entry_id, now).await? else {
                        return Ok(None);
                    };
                    // `None` when the event (and so the entry) was deleted meanwhile.
                    let creator: Option<Uuid> = sqlx::query_scalar(sql::EVENT_CREATOR)
                        .bind(entry.event_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                    Ok(creator.map(|creator| (creator, entry)))
                }

                async fn user_waitlist(
                    &self,
                    user_id: Uuid,
                    filter: &WaitlistFilter,
                ) -> StoreResult<Page<WaitlistEntry>> {
                    let now = Time::from(Utc::now());
                    let status = filter.status.map(EntryStatus::as_str);
                    let rows: Vec<EntryRow<Time>> = sqlx::query_as(sql::USER_ENTRIES)
                        .bind(now)
                        .bind(user_id)
                        .bind(status)
                        .bind(filter.page.limit())
                        .bind(filter.page.skip())
                        .fetch_all(&self.$reader)
                        .await?;
                    let total = if rows.is_empty() {
                        sqlx::query_scalar(sql::COUNT_USER_ENTRIES)
                            .bind(now)
                            .bind(user_id)
                            .bind(status)
                            .fetch_one(&self.$reader)
                            .await?
                    } else {
                        0
                    };
                    paged(rows, total)
                }

                async fn event_waitlist(
                    &self,
                    event_id: Uuid,
                    filter: &WaitlistFilter,
                ) -> StoreResult<Option<(Uuid, Page<WaitlistEntry>)>> {
                    let now = Time::from(Utc::now());
                    let creator: Option<Uuid> = sqlx::query_scalar(sql::EVENT_CREATOR)
                        .bind(event_id)
                        .fetch_optional(&self.$reader)
                        .await?;
                    let Some(creator) = creator else {
                        return Ok(None);
                    };
                    let status = filter.status.map(EntryStatus::as_str);
                    let rows: Vec<EntryRow<Time>> = sqlx::query_as(sql::EVENT_ENTRIES)
                        .bind(now)
                        .bind(event_id)
                        .bind(status)
                        .bind(filter.tier_id)
                        .bind(filter.page.limit())
                        .bind(filter.page.skip())
                        .fetch_all(&self.$reader)
                        .await?;
                    let total = if rows.is_empty() {
                        sqlx::query_scalar(sql::COUNT_EVENT_ENTRIES)
                            .bind(now)
                            .bind(event_id)
                            .bind(status)
                            .bind(filter.tier_id)
                            .fetch_one(&self.$reader)
                            .await?
                    } else {
                        0
                    };
                    Ok(Some((creator, paged(rows, total)?)))
                }

                async fn end_entry(
                    &self,
                    entry_id: Uuid,
                    end: EntryEnd,
                ) -> StoreResult<EntryEnded> {
                    loop {
                        let (mut tx, now) = self.write_tx().await?;
                        let state: Option<(Uuid, Uuid, String, Option<Uuid>)> =
                            sqlx::query_as(sql::ENTRY_STATE)
                                .bind(entry_id)
                                .fetch_optional(&mut *tx)
                                .await?;
                        let Some((event_id, owner, _, order)) = state else {
                            tx.rollback().await?;
                            return Ok(EntryEnded::NotFound);
                        };
                        let creator: Option<Uuid> = sqlx::query_scalar(sql::EVENT_CREATOR)
                            .bind(event_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let Some(creator) = creator else {
                            tx.rollback().await?;
                            return Ok(EntryEnded::NotFound);
                        };
                        let (allowed, status) = match end {
                            EntryEnd::Leave { user_id } => (owner == user_id, EntryStatus::Left),
                            EntryEnd::Remove {
                                event_id: of_event,
                                creator_id,
                            } => {
                                if of_event != event_id {
                                    tx.rollback().await?;
                                    return Ok(EntryEnded::NotFound);
                                }
                                (creator == creator_id, EntryStatus::Removed)
                            }
                        };
                        if !allowed {
                            tx.rollback().await?;
                            return Ok(EntryEnded::Forbidden);
                        }
                        // The offer's order before the event, as every order writer locks.
                        if let Some(order) = order {
                            sqlx::query(&format!("{}{}", sql::ORDER_ROW, <$db as Dialect>::LOCK_ROW))
                                .bind(order)
                                .execute(&mut *tx)
                                .await?;
                        }
                        lock_event(&mut tx, event_id, false).await?;
                        let state: (Uuid, Uuid, String, Option<Uuid>) =
                            sqlx::query_as(sql::ENTRY_STATE)
                                .bind(entry_id)
                                .fetch_one(&mut *tx)
                                .await?;
                        if state.3 != order {
                            // Offered meanwhile: its order was not locked first.
                            tx.rollback().await?;
                            continue;
                        }
                        let Some(entry) = find_on(&mut tx, entry_id, now).await? else {
                            tx.rollback().await?;
                            return Ok(EntryEnded::NotFound);
                        };
                        let (effective, _) = entry.effective(now);
                        if effective.is_final() {
                            tx.rollback().await?;
                            return Ok(EntryEnded::Final(effective));
                        }
                        // The offer's order is cancelled first: one whose payment the
                        // bank is processing cannot be, and the entry stays as it is.
                        let mut cancelled = None;
                        if effective == EntryStatus::Offered
                            && let Some(order) = order
                        {
                            cancelled = sqlx::query_as(sql::CANCEL_OFFER_ORDER)
                                .bind(order)
                                .bind(Time::from(now))
                                .fetch_optional(&mut *tx)
                                .await?
                                .map(|(event, total): (Uuid, i64)| (order, event, total));
                            if cancelled.is_none() {
                                tx.rollback().await?;
                                return Ok(EntryEnded::PaymentPending);
                            }
                        }
                        sqlx::query(sql::END_ENTRY)
                            .bind(entry_id)
                            .bind(status.as_str())
                            .bind(Time::from(now))
                            .execute(&mut *tx)
                            .await?;
                        if let Some((id, event_id, total)) = cancelled {
                            // The entry ended above: its order is no longer its offer to end.
                            let order = sql::MovedOrder {
                                id,
                                event_id,
                                offer: None,
                            };
                            let moved = sql::OrderMoved::Cancelled;
                            sql::order_moved::<$db>(&mut tx, order, total, moved, now).await?;
                        }
                        let ended = find_on(&mut tx, entry_id, now)
                            .await?
                            .ok_or_else(|| StoreError::Corrupt("an entry vanished".into()))?;
                        tx.commit().await?;
                        if effective == EntryStatus::Offered {
                            metrics::counter!(
                                "nearbytix_waitlist_offers_ended_total",
                                "outcome" => status.as_str()
                            )
                            .increment(1);
                        }
                        return Ok(EntryEnded::Ended(Box::new(ended)));
                    }
                }

                async fn waitlist_figures(
                    &self,
                    event_id: Uuid,
                ) -> StoreResult<(WaitlistFigures, HashMap<Uuid, WaitlistFigures>)> {
                    let rows: Vec<(Option<Uuid>, String, i64, i64)> =
                        sqlx::query_as(sql::ENTRY_FIGURES)
                            .bind(Time::from(Utc::now()))
                            .bind(event_id)
                            .fetch_all(&self.$reader)
                            .await?;
                    let mut event = WaitlistFigures::default();
                    let mut tiers: HashMap<Uuid, WaitlistFigures> = HashMap::new();
                    for (tier, status, entries, seats) in rows {
                        let status = sql::parse_entry_status(&status)?;
                        event.count(status, entries, seats);
                        if let Some(tier) = tier {
                            tiers.entry(tier).or_default().count(status, entries, seats);
                        }
                    }
                    Ok((event, tiers))
                }

                async fn sweep_waitlists(&self) -> StoreResult<u64> {
                    // The candidates are read without the write lock: most sweeps find none.
                    let seen = Time::from(Utc::now());
                    let mut events = Vec::new();
                    for candidates in [
                        sql::STARTED_LINES,
                        sql::ENDED_TIER_LINES,
                        sql::OPENED_TIER_LINES,
                    ] {
                        let found: Vec<Uuid> = sqlx::query_scalar(candidates)
                            .bind(seen)
                            .bind(sql::SWEEP_EVENTS)
                            .fetch_all(&self.$reader)
                            .await?;
                        events.extend(found);
                    }
                    events.sort_unstable();
                    events.dedup();
                    let mut swept = 0;
                    // One transaction per event: a hot event's orders wait for its own only.
                    for event_id in events {
                        let (mut tx, now) = self.write_tx().await?;
                        // Another transaction holding the event may be its offer step; the
                        // next sweep looks again.
                        if !lock_event(&mut tx, event_id, true).await? {
                            tx.rollback().await?;
                            continue;
                        }
                        sweep_event(&mut tx, event_id, now).await?;
                        tx.commit().await?;
                        swept += 1;
                    }
                    Ok(swept)
                }
            }

            /// The clock's work on one event's line, its row held: a started event's line
            /// closes; otherwise the entries of tiers whose sales ended close, and the seats
            /// of tiers whose sales started are offered (once per `sales_start`).
            async fn sweep_event(
                conn: &mut Conn,
                event_id: Uuid,
                now: DateTime<Utc>,
            ) -> StoreResult<()> {
                let (start_time,): (Time,) = sqlx::query_as(sql::EVENT_START)
                    .bind(event_id)
                    .fetch_one(&mut *conn)
                    .await?;
                if start_time.into_utc()? <= now {
                    let closed = sqlx::query(sql::CLOSE_EVENT_LINE)
                        .bind(event_id)
                        .bind(ClosedReason::EventStarted.as_str())
                        .bind(Time::from(now))
                        .execute(&mut *conn)
                        .await?;
                    count_closed(ClosedReason::EventStarted, closed.rows_affected());
                    return Ok(());
                }
                let tiers: Vec<Uuid> = sqlx::query_scalar(sql::ENDED_TIERS)
                    .bind(event_id)
                    .bind(Time::from(now))
                    .fetch_all(&mut *conn)
                    .await?;
                for tier in tiers {
                    close_tier_line(conn, tier, now).await?;
                }
                offer_on(conn, event_id, now).await?;
                sqlx::query(sql::LINES_SERVED)
                    .bind(event_id)
                    .bind(Time::from(now))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// A page of entries as read, with the total `count` gives when the page is
            /// empty.
            fn paged(rows: Vec<EntryRow<Time>>, total: i64) -> StoreResult<Page<WaitlistEntry>> {
                let total = rows.first().map_or(total, |row| row.total);
                let items = rows
                    .into_iter()
                    .map(EntryRow::into_entry)
                    .collect::<StoreResult<_>>()?;
                Ok(Page { items, total })
            }
        }
    };
}
