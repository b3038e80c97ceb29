//! Check-in lists: the statements of [`crate::store::CheckinListStore`], and the store written
//! once for both backends ([`checkin_list_store!`], as [`payment_store!`] is).

use sqlx::{Database, Encode, FromRow, Type};
use uuid::Uuid;

use super::Dialect;
use crate::store::StoreError;

/// `$1` event (a lock suffix follows): its creator.
pub(in crate::store) const EVENT_CREATOR: &str = "SELECT creator_id FROM events WHERE id = $1";

pub(in crate::store) const COUNT_LISTS: &str =
    "SELECT count(*) FROM checkin_lists WHERE event_id = $1";

pub(in crate::store) const EVENT_TIER_IDS: &str = "SELECT id FROM ticket_tiers WHERE event_id = $1";

pub(in crate::store) const INSERT_LIST: &str = "INSERT INTO checkin_lists
        (id, event_id, name, all_tiers, allow_reentry, activates_at, expires_at, is_default,
         created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8)";

pub(in crate::store) const INSERT_LIST_TIER: &str =
    "INSERT INTO checkin_list_tiers (list_id, tier_id, position) VALUES ($1, $2, $3)";

pub(in crate::store) const EVENT_LISTS: &str = "SELECT id, name, all_tiers, allow_reentry,
        activates_at, expires_at, is_default, created_at
     FROM checkin_lists WHERE event_id = $1 ORDER BY created_at, id";

pub(in crate::store) const EVENT_LIST_TIERS: &str = "SELECT lt.list_id, lt.tier_id
     FROM checkin_list_tiers lt JOIN checkin_lists l ON l.id = lt.list_id
     WHERE l.event_id = $1 ORDER BY lt.list_id, lt.position";

pub(in crate::store) const UPDATE_LIST: &str = "UPDATE checkin_lists SET name = $3,
        all_tiers = $4, allow_reentry = $5, activates_at = $6, expires_at = $7
     WHERE id = $1 AND event_id = $2
     RETURNING is_default, created_at";

pub(in crate::store) const CLEAR_LIST_TIERS: &str =
    "DELETE FROM checkin_list_tiers WHERE list_id = $1";

/// `$1` list, `$2` now: whether it has a check-in or a live scanner token names it.
pub(in crate::store) const LIST_IN_USE: &str =
    "SELECT EXISTS (SELECT 1 FROM checkins WHERE list_id = $1)
     OR EXISTS (SELECT 1 FROM scanner_token_lists tl JOIN scanner_tokens s ON s.id = tl.token_id
                WHERE tl.list_id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2)";

pub(in crate::store) const LIST_OF_EVENT: &str =
    "SELECT id FROM checkin_lists WHERE id = $1 AND event_id = $2";

pub(in crate::store) const DELETE_LIST: &str =
    "DELETE FROM checkin_lists WHERE id = $1 AND event_id = $2";

/// Who an event is to a caller.
pub(in crate::store) enum Caller {
    NoEvent,
    NotCreator,
    Creator,
}

/// Who event `event_id` is to `caller`, its row locked until the transaction ends.
pub(in crate::store) async fn lock_event_on<DB: Dialect>(
    conn: &mut DB::Connection,
    event_id: Uuid,
    caller: Uuid,
) -> Result<Caller, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
{
    let locked = format!("{EVENT_CREATOR}{}", DB::LOCK_ROW);
    let owner: Option<(Uuid,)> = sqlx::query_as(&locked)
        .bind(event_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match owner {
        None => Caller::NoEvent,
        Some((owner,)) if owner != caller => Caller::NotCreator,
        Some(_) => Caller::Creator,
    })
}

/// [`crate::store::CheckinListStore`] for `$store` on `$db`, with `write_tx` and the read pool
/// `$reader` (as [`payment_store!`] has them).
macro_rules! checkin_list_store {
    ($store:ty, $db:ty, $reader:ident) => {
        mod checkin_lists {
            use std::collections::{HashMap, HashSet};

            use super::*;
            use async_trait::async_trait;
            use uuid::Uuid;
            use $crate::domain::{
                CheckinList, ListChanged, ListCreated, ListDeleted, ListDraft, WriteOutcome,
            };
            use $crate::store::checkin_lists::CheckinListStore;
            use $crate::store::sql::{self, Dialect, StoredTime};
            use $crate::store::{HeldKey, StoreError, StoreResult};

            type Time = <$db as Dialect>::Time;

            type ListRow = (
                Uuid,
                String,
                bool,
                bool,
                Option<Time>,
                Option<Time>,
                bool,
                Time,
            );

            type Conn = <$db as sqlx::Database>::Connection;

            /// The first of `tiers` that is not one of the event's.
            async fn unknown_tier(
                conn: &mut Conn,
                event_id: Uuid,
                tiers: Option<&Vec<Uuid>>,
            ) -> StoreResult<Option<usize>> {
                let Some(tiers) = tiers else {
                    return Ok(None);
                };
                let known: HashSet<Uuid> = sqlx::query_scalar(sql::EVENT_TIER_IDS)
                    .bind(event_id)
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .collect();
                Ok(tiers.iter().position(|tier| !known.contains(tier)))
            }

            /// Whether `list_id` is a list of `event_id`, its row locked until the transaction ends.
            async fn lock_list(
                conn: &mut Conn,
                event_id: Uuid,
                list_id: Uuid,
            ) -> StoreResult<bool> {
                let locked = format!("{}{}", sql::LIST_OF_EVENT, <$db as Dialect>::LOCK_ROW);
                let found: Option<Uuid> = sqlx::query_scalar(&locked)
                    .bind(list_id)
                    .bind(event_id)
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok(found.is_some())
            }

            async fn insert_tiers(
                conn: &mut Conn,
                list_id: Uuid,
                tiers: Option<&Vec<Uuid>>,
            ) -> StoreResult<()> {
                for (position, tier) in tiers.into_iter().flatten().enumerate() {
                    sqlx::query(sql::INSERT_LIST_TIER)
                        .bind(list_id)
                        .bind(*tier)
                        .bind(i32::try_from(position).unwrap_or(i32::MAX))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            #[async_trait]
            impl CheckinListStore for $store {
                async fn create_checkin_list(
                    &self,
                    event_id: Uuid,
                    creator: Uuid,
                    draft: &ListDraft,
                    max_lists: i64,
                    key: Option<&HeldKey>,
                ) -> StoreResult<ListCreated> {
                    let (mut tx, now) = self.write_tx().await?;
                    let refusal =
                        match sql::lock_event_on::<$db>(&mut tx, event_id, creator).await? {
                            sql::Caller::NoEvent => Some(ListCreated::EventNotFound),
                            sql::Caller::NotCreator => Some(ListCreated::NotCreator),
                            sql::Caller::Creator => None,
                        };
                    if let Some(refusal) = refusal {
                        tx.rollback().await?;
                        return Ok(refusal);
                    }
                    let lists: i64 = sqlx::query_scalar(sql::COUNT_LISTS)
                        .bind(event_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    if lists >= max_lists {
                        tx.rollback().await?;
                        return Ok(ListCreated::TooMany);
                    }
                    let tiers = draft.tier_ids.as_ref();
                    if let Some(index) = unknown_tier(&mut tx, event_id, tiers).await? {
                        tx.rollback().await?;
                        return Ok(ListCreated::UnknownTier(index));
                    }
                    let list = CheckinList {
                        id: Uuid::now_v7(),
                        event_id,
                        name: draft.name.clone(),
                        tier_ids: draft.tier_ids.clone(),
                        allow_reentry: draft.allow_reentry,
                        activates_at: draft.activates_at,
                        expires_at: draft.expires_at,
                        is_default: false,
                        created_at: now,
                    };
                    sqlx::query(sql::INSERT_LIST)
                        .bind(list.id)
                        .bind(event_id)
                        .bind(&list.name)
                        .bind(list.tier_ids.is_none())
                        .bind(list.allow_reentry)
                        .bind(list.activates_at.map(Time::from))
                        .bind(list.expires_at.map(Time::from))
                        .bind(Time::from(now))
                        .execute(&mut *tx)
                        .await?;
                    insert_tiers(&mut tx, list.id, list.tier_ids.as_ref()).await?;
                    if let Some(key) = key {
                        let created = WriteOutcome::ListCreated(Box::new(list.clone()));
                        if !sql::record_outcome_on::<$db>(&mut tx, key, &created).await? {
                            return Err(StoreError::ClaimLost);
                        }
                    }
                    tx.commit().await?;
                    Ok(ListCreated::Created(Box::new(list)))
                }

                async fn update_checkin_list(
                    &self,
                    event_id: Uuid,
                    list_id: Uuid,
                    creator: Uuid,
                    draft: &ListDraft,
                ) -> StoreResult<ListChanged> {
                    let (mut tx, _) = self.write_tx().await?;
                    let refusal =
                        match sql::lock_event_on::<$db>(&mut tx, event_id, creator).await? {
                            sql::Caller::NoEvent => Some(ListChanged::EventNotFound),
                            sql::Caller::NotCreator => Some(ListChanged::NotCreator),
                            sql::Caller::Creator => None,
                        };
                    if let Some(refusal) = refusal {
                        tx.rollback().await?;
                        return Ok(refusal);
                    }
                    let tiers = draft.tier_ids.as_ref();
                    if let Some(index) = unknown_tier(&mut tx, event_id, tiers).await? {
                        tx.rollback().await?;
                        return Ok(ListChanged::UnknownTier(index));
                    }
                    let updated: Option<(bool, Time)> = sqlx::query_as(sql::UPDATE_LIST)
                        .bind(list_id)
                        .bind(event_id)
                        .bind(&draft.name)
                        .bind(tiers.is_none())
                        .bind(draft.allow_reentry)
                        .bind(draft.activates_at.map(Time::from))
                        .bind(draft.expires_at.map(Time::from))
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some((is_default, created_at)) = updated else {
                        tx.rollback().await?;
                        return Ok(ListChanged::ListNotFound);
                    };
                    sqlx::query(sql::CLEAR_LIST_TIERS)
                        .bind(list_id)
                        .execute(&mut *tx)
                        .await?;
                    insert_tiers(&mut tx, list_id, tiers).await?;
                    tx.commit().await?;
                    Ok(ListChanged::Changed(Box::new(CheckinList {
                        id: list_id,
                        event_id,
                        name: draft.name.clone(),
                        tier_ids: draft.tier_ids.clone(),
                        allow_reentry: draft.allow_reentry,
                        activates_at: draft.activates_at,
                        expires_at: draft.expires_at,
                        is_default,
                        created_at: created_at.into_utc()?,
                    })))
                }

                async fn checkin_lists(
                    &self,
                    event_id: Uuid,
                ) -> StoreResult<Option<(Uuid, Vec<CheckinList>)>> {
                    let owner: Option<Uuid> = sqlx::query_scalar(sql::EVENT_CREATOR)
                        .bind(event_id)
                        .fetch_optional(&self.$reader)
                        .await?;
                    let Some(owner) = owner else {
                        return Ok(None);
                    };
                    let rows: Vec<ListRow> = sqlx::query_as(sql::EVENT_LISTS)
                        .bind(event_id)
                        .fetch_all(&self.$reader)
                        .await?;
                    let named: Vec<(Uuid, Uuid)> = sqlx::query_as(sql::EVENT_LIST_TIERS)
                        .bind(event_id)
                        .fetch_all(&self.$reader)
                        .await?;
                    let mut tiers: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
                    for (list, tier) in named {
                        tiers.entry(list).or_default().push(tier);
                    }
                    let utc = |at: Option<Time>| at.map(StoredTime::into_utc).transpose();
                    let lists = rows
                        .into_iter()
                        .map(|row| {
                            let (id, name, all, reentry, activates, expires, default, created) =
                                row;
                            Ok::<_, StoreError>(CheckinList {
                                id,
                                event_id,
                                name,
                                tier_ids: (!all).then(|| tiers.remove(&id).unwrap_or_default()),
                                allow_reentry: reentry,
                                activates_at: utc(activates)?,
                                expires_at: utc(expires)?,
                                is_default: default,
                                created_at: created.into_utc()?,
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    Ok(Some((owner, lists)))
                }

                async fn delete_checkin_list(
                    &self,
                    event_id: Uuid,
                    list_id: Uuid,
                    creator: Uuid,
                ) -> StoreResult<ListDeleted> {
                    let (mut tx, now) = self.write_tx().await?;
                    let outcome = match sql::lock_event_on::<$db>(&mut tx, event_id, creator)
                        .await?
                    {
                        sql::Caller::NoEvent => ListDeleted::EventNotFound,
                        sql::Caller::NotCreator => ListDeleted::NotCreator,
                        sql::Caller::Creator if !lock_list(&mut tx, event_id, list_id).await? => {
                            ListDeleted::ListNotFound
                        }
                        sql::Caller::Creator => {
                            // Under the list's lock: a scan recording a check-in holds it
                            // (its foreign key) until it commits, so the check sees it.
                            let in_use: bool = sqlx::query_scalar(sql::LIST_IN_USE)
                                .bind(list_id)
                                .bind(Time::from(now))
                                .fetch_one(&mut *tx)
                                .await?;
                            if in_use {
                                ListDeleted::InUse
                            } else {
                                sqlx::query(sql::DELETE_LIST)
                                    .bind(list_id)
                                    .bind(event_id)
                                    .execute(&mut *tx)
                                    .await?;
                                ListDeleted::Deleted
                            }
                        }
                    };
                    tx.commit().await?;
                    Ok(outcome)
                }
            }
        }
    };
}
