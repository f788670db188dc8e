//! privacyIDEA's realm and resolver endpoints for API admins: `GET/POST/DELETE /realm/<name>`,
//! `GET/POST/DELETE /defaultrealm[/<name>]` and `GET/POST/DELETE /resolver/<name>`, carried out
//! by [`countersign::resolvers::Realms`] with the admin named in the audit and the admin actions
//! privacyIDEA checks (`resolverread`, `resolverwrite`, `resolverdelete`). Realms are readable
//! by every API admin, as in privacyIDEA.
//!
//! Never lists a bind password: `censor_keys` says one is set.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use countersign_core::error::Refusal;
use serde_json::{json, Map, Value};

use super::admin::{allowed, audit_read, PiAdmin, Subject};
use super::envelope::{respond, ErrorKind, PiResponse};
use super::params::Params;
use super::resolver_params;
use crate::{AppState, SharedState};
use countersign::resolvers::realms::{NewResolver, ResolverUpdate};
use countersign::resolvers::{Realms, ResolverError};
use countersign::store::RealmRecord;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/realm/", get(realms))
        .route("/realm/{realm}", post(set_realm).delete(delete_realm))
        .route("/defaultrealm", get(default_realm).delete(clear_default_realm))
        .route("/defaultrealm/{realm}", post(set_default_realm))
        .route("/resolver/", get(resolvers))
        .route("/resolver/{resolver}", get(resolver).post(set_resolver).delete(delete_resolver))
}

pub(super) fn resolver_error(e: ResolverError) -> PiResponse {
    PiResponse::failure(&e)
}

/// Runs `f` on the realms from a blocking thread (resolver changes reload from the store).
async fn with_realms<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&Realms) -> Result<T, ResolverError> + Send + 'static,
) -> Result<T, PiResponse> {
    st.realms.run(f).await.map_err(resolver_error)
}

/// `{"<realm>": {"default": bool, "id": n, "option": "", "resolver": [{"name", "type",
/// "priority", "node": ""}]}}` (no per-node resolvers in Countersign: `node` is always empty).
fn realm_map(list: &[RealmRecord], resolvers: &[countersign::resolvers::realms::ResolverView]) -> Value {
    let mut out = Map::new();
    for (i, realm) in list.iter().enumerate() {
        let res: Vec<Value> = realm
            .resolvers
            .iter()
            .enumerate()
            .map(|(prio, name)| {
                let kind = resolvers.iter().find(|x| &x.name == name).map(|x| x.kind.as_str()).unwrap_or_default();
                json!({ "name": name, "type": resolver_params::pi_type(kind), "priority": prio + 1, "node": "" })
            })
            .collect();
        out.insert(realm.name.clone(), json!({ "default": realm.default, "id": i + 1, "option": "", "resolver": res }));
    }
    Value::Object(out)
}

async fn realms(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    // Every API admin may read the realms, as in privacyIDEA (its UI needs them).
    let r = with_realms(&st, |r| Ok((r.list_realms()?, r.list_resolvers()?))).await;
    let r = r.map(|(list, resolvers)| PiResponse::value(realm_map(&list, &resolvers)));
    audit_read(&st, &admin, "/realm/", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

/// Creates the realm or replaces its resolvers: `resolvers` (comma-separated or a list), in
/// the order of `priority.<resolver>` where given (lower first), else as listed. Unknown
/// resolvers are reported in `failed`, as privacyIDEA does; the others make up the realm.
async fn set_realm(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("realm");
    let r = async {
        allowed(&st, &admin, "resolverwrite", &Subject::system())?;
        let mut wanted = p.list("resolvers")?;
        if wanted.is_empty() {
            return Err(PiResponse::error(ErrorKind::Parameter, "Missing parameter: 'resolvers'"));
        }
        let priorities: Vec<(String, u32)> = p
            .with_prefix("priority.")
            .map(|(r, v)| {
                v.trim().parse::<u32>().map(|n| (r.to_owned(), n)).map_err(|_| {
                    PiResponse::error(ErrorKind::Parameter, &format!("priority.{r} must be a whole number"))
                })
            })
            .collect::<Result<_, _>>()?;
        let rank = |r: &String| priorities.iter().find(|(n, _)| n == r).map_or(u32::MAX, |(_, n)| *n);
        wanted.sort_by_key(rank);
        let caller = admin.caller.clone();
        let (added, failed) = with_realms(&st, move |realms| {
            let known = realms.list_resolvers()?;
            let (added, failed): (Vec<String>, Vec<String>) =
                wanted.into_iter().partition(|w| known.iter().any(|k| &k.name == w));
            if added.is_empty() {
                return Err(ResolverError::Refused(Refusal::Invalid(format!(
                    "none of the resolvers {} exists; define them first (POST /resolver/<name>)",
                    failed.join(", ")
                ))));
            }
            if realms.list_realms()?.iter().any(|r| r.name == name) {
                realms.set_resolvers(&caller, &name, &added)?;
            } else {
                realms.create_realm(&caller, &name, &added, false)?;
                // As in privacyIDEA: the first realm made becomes the default.
                realms.take_over_unused_default(&caller, &name)?;
            }
            Ok((added, failed))
        })
        .await?;
        Ok(PiResponse::value(json!({ "added": added, "failed": failed })))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn delete_realm(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("realm");
    let r = async {
        allowed(&st, &admin, "resolverdelete", &Subject::system())?;
        let caller = admin.caller.clone();
        with_realms(&st, move |r| r.remove_realm(&caller, &name)).await?;
        Ok(PiResponse::value(json!(1)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn default_realm(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    // Every API admin may read the realms, as in privacyIDEA (its UI needs them).
    let r = with_realms(&st, |r| Ok((r.list_realms()?, r.list_resolvers()?))).await;
    let r = r.map(|(list, resolvers)| {
        let default: Vec<RealmRecord> = list.into_iter().filter(|r| r.default).collect();
        PiResponse::value(realm_map(&default, &resolvers))
    });
    audit_read(&st, &admin, "/defaultrealm", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn set_default_realm(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("realm");
    let r = async {
        allowed(&st, &admin, "resolverwrite", &Subject::system())?;
        let caller = admin.caller.clone();
        with_realms(&st, move |r| r.set_default(&caller, &name)).await?;
        Ok(PiResponse::value(json!(1)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

/// privacyIDEA can run without a default realm; Countersign cannot (a user named without a
/// realm must land somewhere definite), so this is refused with what to do instead.
async fn clear_default_realm(State(st): State<SharedState>, _a: PiAdmin, p: Params) -> Response {
    let e = PiResponse::error(
        ErrorKind::Parameter,
        "Countersign always has a default realm; make another realm the default with POST /defaultrealm/<realm>",
    );
    respond(&st.responses, p.nonce().as_deref(), Err(e))
}

/// `{"<resolver>": {"resolvername", "type", "censor_keys", "data"}}`
fn resolver_map(list: &[countersign::resolvers::realms::ResolverView]) -> Value {
    let mut out = Map::new();
    for x in list {
        let censor: Vec<&str> = if x.bind_password_set { vec!["BINDPW"] } else { Vec::new() };
        out.insert(
            x.name.clone(),
            json!({
                "resolvername": x.name,
                "type": resolver_params::pi_type(&x.kind),
                "censor_keys": censor,
                "data": resolver_params::to_pi_data(&x.kind, &x.options, x.bind_password_set),
            }),
        );
    }
    Value::Object(out)
}

async fn resolvers(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let r = async {
        allowed(&st, &admin, "resolverread", &Subject::system())?;
        let list = with_realms(&st, |r| r.list_resolvers()).await?;
        Ok(PiResponse::value(resolver_map(&list)))
    }
    .await;
    audit_read(&st, &admin, "/resolver/", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn resolver(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("resolver");
    let r = async {
        allowed(&st, &admin, "resolverread", &Subject::system())?;
        let one = with_realms(&st, move |r| r.show_resolver(&name)).await?;
        Ok(PiResponse::value(resolver_map(&[one])))
    }
    .await;
    audit_read(&st, &admin, "/resolver/{resolver}", &r).await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

/// Defines the resolver, or replaces the options of the one of that name (its type cannot
/// change; its bind password is kept unless `BINDPW` gives a new one). Answers its id.
async fn set_resolver(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("resolver");
    let r = async {
        allowed(&st, &admin, "resolverwrite", &Subject::system())?;
        let def = resolver_params::from_params(&p).map_err(|m| PiResponse::error(ErrorKind::Parameter, &m))?;
        let caller = admin.caller.clone();
        let view = with_realms(&st, move |realms| match realms.show_resolver(&name) {
            Ok(old) if old.kind != def.kind.as_str() => Err(ResolverError::Refused(Refusal::Invalid(format!(
                "resolver {name} is of type {}; delete it to define a {} resolver of that name",
                resolver_params::pi_type(&old.kind),
                resolver_params::pi_type(def.kind.as_str())
            )))),
            Ok(_) => realms.update_resolver(
                &caller,
                &name,
                ResolverUpdate { options: def.options, bind_password: def.bind_password, clear_bind_password: false },
            ),
            Err(ResolverError::Refused(Refusal::NotFound(_))) => realms.define_resolver(
                &caller,
                NewResolver { name, kind: def.kind, options: def.options, bind_password: def.bind_password },
            ),
            Err(e) => Err(e),
        })
        .await?;
        Ok(PiResponse::value(json!(view.id)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}

async fn delete_resolver(State(st): State<SharedState>, admin: PiAdmin, p: Params) -> Response {
    let name = p.view_arg("resolver");
    let r = async {
        allowed(&st, &admin, "resolverdelete", &Subject::system())?;
        let caller = admin.caller.clone();
        with_realms(&st, move |r| r.remove_resolver(&caller, &name)).await?;
        Ok(PiResponse::value(json!(1)))
    }
    .await;
    respond(&st.responses, p.nonce().as_deref(), r)
}
