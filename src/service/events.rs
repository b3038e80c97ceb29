//! Event management rules around the store.

use chrono::Utc;
use uuid::Uuid;

use crate::app::AppState;
use crate::domain::{Event, EventChanges, EventDraft};
use crate::error::ApiError;
use crate::store::{EventDelete, EventWrite};

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("Event with ID {id} not found"))
}

#[tracing::instrument(skip(state, draft))]
pub async fn create(
    state: &AppState,
    creator_id: Uuid,
    draft: EventDraft,
) -> Result<Event, ApiError> {
    draft.check(Utc::now()).map_err(ApiError::Validation)?;
    let event = state
        .store
        .insert_event(Uuid::now_v7(), creator_id, &draft)
        .await?;
    tracing::info!(event_id = %event.id, "event created");
    Ok(event)
}

pub async fn get(state: &AppState, id: Uuid) -> Result<Event, ApiError> {
    state
        .store
        .find_event(id)
        .await?
        .ok_or_else(|| not_found(id))
}

#[tracing::instrument(skip(state, changes))]
pub async fn update(
    state: &AppState,
    user_id: Uuid,
    id: Uuid,
    changes: EventChanges,
) -> Result<Event, ApiError> {
    let current = get(state, id).await?;
    if current.creator_id != user_id {
        return Err(ApiError::Forbidden(
            "You can only modify your own events".into(),
        ));
    }
    let draft = EventDraft::merged(&current, changes);
    draft.check(Utc::now()).map_err(ApiError::Validation)?;
    // The store re-checks ownership and the sold count atomically; the read above only
    // chooses the right answer for the common cases.
    match state.store.update_event(id, user_id, &draft).await? {
        EventWrite::Done(event) => Ok(*event),
        EventWrite::NotFound => Err(not_found(id)),
        EventWrite::NotCreator => Err(ApiError::Forbidden(
            "You can only modify your own events".into(),
        )),
        EventWrite::BelowSold => Err(ApiError::Conflict(
            "total_tickets cannot be lower than the number of tickets already sold".into(),
        )),
    }
}

#[tracing::instrument(skip(state))]
pub async fn delete(state: &AppState, user_id: Uuid, id: Uuid) -> Result<(), ApiError> {
    match state.store.delete_event(id, user_id).await? {
        EventDelete::Deleted => {
            tracing::info!(event_id = %id, "event deleted");
            Ok(())
        }
        EventDelete::NotFound => Err(not_found(id)),
        EventDelete::NotCreator => Err(ApiError::Forbidden(
            "You can only delete your own events".into(),
        )),
        EventDelete::HasTickets => Err(ApiError::Conflict(
            "Event has reserved or paid tickets and cannot be deleted".into(),
        )),
    }
}
