//! Wiring: the two controllers, leadership, and the HTTP side (health and metrics).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chatboard_core::probes::{metrics_reply, probe_routes};
use crds::{Organization, Webhook};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{controller, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use crate::context::{resource_key, Context};
use crate::error::Error;
use crate::reconciler::Reconciled;
use crate::trigger::controller_of;
use crate::{reconciler, webhook};

/// Which namespaces to watch.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs both controllers in each of `namespaces` (empty: one pair over every namespace) until
/// `stop` resolves, then lets the reconciles in flight finish.
pub async fn run_controllers(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    // One pair per namespace: with namespaced RBAC there is no cluster-wide list to watch.
    let pairs = scopes
        .into_iter()
        .map(|ns| controllers_in(ctx.clone(), ns, stop_rx.clone()));
    let stopper = async move {
        stop.await;
        stop_tx.send_replace(true);
    };
    tokio::join!(futures::future::join_all(pairs), stopper);
}

/// The Organization and Webhook controllers over one namespace (`None`: all), until `stop` is
/// true.
async fn controllers_in(ctx: Arc<Context>, namespace: Option<String>, stop: watch::Receiver<bool>) {
    let ns = namespace.as_deref();
    let stopped = move || {
        let mut rx = stop.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let orgs = controller_of(api::<Organization>(&ctx.watch_client, ns), ctx.clone());
    let org_store = orgs.store();
    let orgs = orgs
        .with_config(limits(&ctx))
        .graceful_shutdown_on(stopped())
        .run(
            reconciler::reconcile::<Organization>,
            reconciler::error_policy::<Organization>,
            ctx.clone(),
        )
        .for_each(|outcome| {
            report::<Organization, _, _>(&ctx, outcome);
            futures::future::ready(())
        });
    let hooks = controller_of(api::<Webhook>(&ctx.watch_client, ns), ctx.clone());
    let known = hooks.store();
    let hook_store = known.clone();
    let managed = format!("{}={}", webhook::MANAGED_BY.0, webhook::MANAGED_BY.1);
    let hooks = hooks
        .owns(
            api::<Secret>(&ctx.watch_client, ns),
            watcher::Config::default().labels(&managed),
        )
        // A webhook waiting for its Organization is looked at again as soon as that changes.
        .watches(
            api::<Organization>(&ctx.watch_client, ns),
            watcher::Config::default(),
            move |org| {
                let namespace = org.namespace();
                let name = org.name_any();
                known
                    .state()
                    .into_iter()
                    .filter(|h| h.namespace() == namespace && h.spec.organization_ref.name == name)
                    .map(|h| ObjectRef::from_obj(&*h))
                    .collect::<Vec<_>>()
            },
        )
        .with_config(limits(&ctx))
        .graceful_shutdown_on(stopped())
        .run(
            reconciler::reconcile::<Webhook>,
            reconciler::error_policy::<Webhook>,
            ctx.clone(),
        )
        .for_each(|outcome| {
            report::<Webhook, _, _>(&ctx, outcome);
            futures::future::ready(())
        });
    let sweeper = forget_the_gone(ctx.clone(), namespace, org_store, hook_store, stopped());
    tokio::join!(orgs, hooks, sweeper);
}

/// Every `recheck`, forgets what is kept about resources that are gone without their cleanup
/// having run (see [`Context::forget_gone`]): neither a watch event nor a reconcile says so.
async fn forget_the_gone(
    ctx: Arc<Context>,
    namespace: Option<String>,
    orgs: Store<Organization>,
    hooks: Store<Webhook>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    // Until both lists have come, an empty store says nothing about what exists.
    let listed = async {
        orgs.wait_until_ready()
            .await
            .and(hooks.wait_until_ready().await)
    };
    tokio::select! {
        () = &mut stop => return,
        listed = listed => if listed.is_err() { return },
    }
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(ctx.settings.recheck) => {}
        }
        forget_gone_of(&ctx, namespace.as_deref(), &orgs);
        forget_gone_of(&ctx, namespace.as_deref(), &hooks);
    }
}

/// Forgets the resources of `store`'s kind in `namespace` (`None`: all) that it no longer holds.
fn forget_gone_of<K: Reconciled>(ctx: &Context, namespace: Option<&str>, store: &Store<K>) {
    let present: HashSet<String> = store
        .state()
        .iter()
        .filter_map(|obj| resource_key(&**obj).ok())
        .collect();
    let gone = |key: &str| {
        let in_scope = namespace.is_none_or(|ns| key.split_once('/').is_some_and(|(n, _)| n == ns));
        in_scope && !present.contains(key)
    };
    ctx.forget_gone(K::KIND, &gone);
}

/// How many reconciles of one kind run at once.
fn limits(ctx: &Context) -> controller::Config {
    controller::Config::default().concurrency(ctx.settings.concurrency)
}

/// Logs what a controller's stream yields besides reconciles. A failed reconcile was logged by
/// `error_policy`, and an object gone before its turn is expected; a list or watch that fails
/// (a missing CRD, RBAC, the API server) means nothing of the kind is reconciled meanwhile, so
/// it is a warning and counted.
fn report<K, T, Q>(ctx: &Context, outcome: Result<T, controller::Error<Error, Q>>)
where
    K: Reconciled,
    Q: std::error::Error,
{
    match outcome {
        Ok(_) => {}
        Err(
            e @ (controller::Error::ReconcilerFailed(..) | controller::Error::ObjectNotFound(_)),
        ) => {
            tracing::debug!(kind = K::KIND, error = %e, "controller");
        }
        Err(e) => {
            ctx.metrics.watch_failed(K::KIND);
            tracing::warn!(kind = K::KIND, error = %e, "cannot list or watch the resources");
        }
    }
}

/// Runs the controllers whenever `leading` is true, until `shutdown` is true.
pub async fn run_while_leading(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = leading.wait_for(|l| *l) => if r.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
        ctx.metrics.leader.set(1);
        tracing::info!("leading: controllers started");
        let mut lost = leading.clone();
        let mut stop = shutdown.clone();
        // A closed leadership channel (nobody left to say otherwise) is not a lost Lease.
        let lost = async move {
            if lost.wait_for(|l| !*l).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let controllers = run_controllers(ctx.clone(), namespaces.clone(), async move {
            let _ = stop.wait_for(|s| *s).await;
        });
        // Shutting down, the reconciles in flight finish before the Lease is given up. Losing
        // it, they are dropped at once: another replica may be reconciling the same objects
        // already, and one finishing late would write an older spec over its work (a database
        // transaction left open rolls back; the new leader reconciles everything anyway).
        tokio::select! {
            () = controllers => {}
            () = lost => tracing::warn!("leadership lost: reconciles in flight dropped"),
        }
        ctx.metrics.forget_readiness();
        ctx.metrics.leader.set(0);
        tracing::info!("controllers stopped");
        if *shutdown.borrow() {
            return;
        }
    }
}

/// What the health endpoints look at.
#[derive(Clone)]
pub struct ServiceState {
    /// Reconciles' context (database, metrics).
    pub ctx: Arc<Context>,
    /// Whether this replica leads.
    pub leading: watch::Receiver<bool>,
}

/// `/health/live`, `/health/ready` and `/metrics`.
pub fn router(state: ServiceState) -> Router {
    probe_routes(get(ready), get(metrics)).with_state(state)
}

/// Ready when the database answers, and NATS too when the operator announces on it (seat
/// changes of the admins it applies); standby replicas are ready too (they take over on their
/// own), and the body says who leads.
async fn ready(State(state): State<ServiceState>) -> Response {
    let leader = *state.leading.borrow();
    let mut body = json!({"status": "ok", "database": "ok", "leader": leader});
    let mut ready = true;
    if let Err(e) = state.ctx.store.ping().await {
        ready = false;
        body["database"] = json!(e.to_string());
    }
    let bus = state.ctx.chat.bus();
    // The in-process bus (tests) cannot fail; NATS can.
    if bus.kind() == "nats" {
        body["nats"] = match bus.ping().await {
            Ok(()) => json!("ok"),
            Err(e) => {
                ready = false;
                json!(e.to_string())
            }
        };
    }
    if ready {
        Json(body).into_response()
    } else {
        body["status"] = json!("unavailable");
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn metrics(State(state): State<ServiceState>) -> Response {
    metrics_reply(state.ctx.metrics.registry.render())
}
