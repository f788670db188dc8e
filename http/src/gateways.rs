//! Gateway definitions and routes on `admin.sock` (`/v1/admin/gateways`,
//! `/v1/admin/gateway-routes`). The request bodies not yet in `countersign_api` live here;
//! [`countersign::gateways`] does the work.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use countersign_api::gateway::{Attempt, DeliveryList, Gateway, GatewayList, Route, RouteList, RouteRequest};
use countersign_plugin_abi::protocol::OutgoingMessage;
use serde::Deserialize;

use super::answer::Answer;
use super::error::ApiError;
use super::extract::{Body, Origin, Path};
use super::SharedState;
use countersign::gateways::NewGateway;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/admin/gateways", get(list).post(define))
        .route("/v1/admin/gateways/{name}", get(show).delete(remove))
        .route("/v1/admin/gateways/{name}/test", post(test))
        .route("/v1/admin/gateway-routes", get(routes_list))
        .route("/v1/admin/gateway-routes/{token_type}", put(set_route))
        .route("/v1/admin/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn deliveries(
    State(st): State<SharedState>,
    super::extract::Query(q): super::extract::Query<DeliveryQuery>,
) -> Result<Answer<DeliveryList>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    Ok(Answer(DeliveryList { deliveries: st.challenges.deliveries(q.status, limit).await? }))
}

async fn define(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Body(b): Body<NewGateway>,
) -> Result<(StatusCode, Answer<Gateway>), ApiError> {
    Ok((StatusCode::CREATED, Answer(st.gateways.define(caller, b).await?)))
}

async fn list(State(st): State<SharedState>) -> Result<Answer<GatewayList>, ApiError> {
    Ok(Answer(GatewayList { gateways: st.gateways.list().await? }))
}

async fn show(State(st): State<SharedState>, Path(name): Path<String>) -> Result<Answer<Gateway>, ApiError> {
    Ok(Answer(st.gateways.show(name).await?))
}

async fn remove(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.gateways.remove(caller, name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A test message: the recipient and the text (variables optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    to: String,
    #[serde(default)]
    subject: String,
    #[serde(default = "default_text")]
    text: String,
    #[serde(default)]
    variables: std::collections::BTreeMap<String, String>,
}

fn default_text() -> String {
    "Countersign gateway test".into()
}

async fn test(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(name): Path<String>,
    Body(b): Body<TestBody>,
) -> Result<Answer<Attempt>, ApiError> {
    let m = OutgoingMessage { to: b.to, subject: b.subject, text: b.text, variables: b.variables };
    Ok(Answer(st.gateways.test(caller, name, m).await?))
}

async fn routes_list(State(st): State<SharedState>) -> Result<Answer<RouteList>, ApiError> {
    let routes = st.gateways.routes().await?.into_iter().map(|(token_type, gateways)| Route { token_type, gateways });
    Ok(Answer(RouteList { routes: routes.collect() }))
}

async fn set_route(
    State(st): State<SharedState>,
    Origin(caller): Origin,
    Path(token_type): Path<String>,
    Body(b): Body<RouteRequest>,
) -> Result<StatusCode, ApiError> {
    st.gateways.set_route(caller, token_type, b.gateways).await?;
    Ok(StatusCode::NO_CONTENT)
}
