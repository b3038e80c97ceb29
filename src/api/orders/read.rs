//! The caller's orders.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;

use super::response::{MyOrdersResponse, OrderResponse};
use crate::api::current_user::CurrentUser;
use crate::api::error::ApiError;
use crate::api::extract::{PathId, ValidQuery};
use crate::api::query::{ListingPaging, StatusQuery};
use crate::api::schemas::PageInfo;
use crate::api::schemas::shared::{
    Invalid, NotYourOrder, OrderNotFound, OrderPath, Unauthenticated,
};
use crate::service::Orders;

/// One of the caller's orders.
#[utoipa::path(
    get, path = "/orders/{order_id}", tag = "orders",
    security(("bearer" = [])), params(OrderPath),
    responses(
        (status = 200, description = "The order", body = OrderResponse),
        Unauthenticated, Invalid, OrderNotFound, NotYourOrder,
    )
)]
pub async fn get_order(
    State(orders): State<Arc<Orders>>,
    CurrentUser(user): CurrentUser,
    PathId(order_id): PathId,
) -> Result<Json<OrderResponse>, ApiError> {
    let details = orders.get(user.id, order_id).await?;
    Ok(Json(OrderResponse::new(
        details,
        Utc::now(),
        orders.provider(),
    )))
}

/// The caller's orders, newest first.
#[utoipa::path(
    get, path = "/orders/my-orders", tag = "orders",
    security(("bearer" = [])), params(StatusQuery, ListingPaging),
    responses(
        (status = 200, description = "A page of orders", body = MyOrdersResponse),
        Unauthenticated, Invalid,
    )
)]
pub async fn my_orders(
    State(orders): State<Arc<Orders>>,
    CurrentUser(user): CurrentUser,
    ValidQuery(status): ValidQuery<StatusQuery>,
    ValidQuery(page): ValidQuery<ListingPaging>,
) -> Result<Json<MyOrdersResponse>, ApiError> {
    let found = orders.of_user(user.id, status, page).await?;
    let now = Utc::now();
    let provider = orders.provider();
    let (orders, page) = PageInfo::split(found, page, |order| {
        OrderResponse::new(order, now, provider)
    });
    Ok(Json(MyOrdersResponse { orders, page }))
}
