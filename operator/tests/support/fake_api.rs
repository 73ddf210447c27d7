//! A small in-memory Kubernetes API server over real HTTP, enough for the operator's
//! controllers: get, list and watch (with label selectors), create (with `generateName`),
//! replace (with `resourceVersion` preconditions), JSON / merge patches, the `status`
//! subresource, deletion with finalizers (`deletionTimestamp`, then removal once the finalizers
//! are gone) and owner-reference garbage collection. Objects are JSON values; nothing is
//! validated against schemas. Faults can be injected per request.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Where an object lives: the collection (`<group>/<version>/<plural>`, `v1/<plural>` for the
/// core group), its namespace and name.
type Key = (String, String, String);

/// One watch event as it goes out, with what watchers filter on.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    collection: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// Injected failures: (method, path fragment, remaining count).
    faults: Vec<(Method, String, u32)>,
    /// Requests that never get an answer: (method, path fragment).
    stalls: Vec<(Method, String)>,
    /// Requests served at once and answered late: (method, path fragment, delay).
    late: Vec<(Method, String, std::time::Duration)>,
    /// Requests served, as "METHOD path".
    requests: Vec<String>,
}

/// The fake API server; dropping it stops nothing (the test runtime ends it).
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    changes: broadcast::Sender<Change>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl FakeApi {
    /// Starts a server on a free local port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (changes, _) = broadcast::channel(4096);
        let api = FakeApi {
            inner: Arc::default(),
            changes,
            addr,
        };
        let app = Router::new().fallback(handle).with_state(api.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        api
    }

    /// A kube client talking to this server.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().expect("url");
        let config = kube::Config::new(url);
        kube::Client::try_from(config).expect("client")
    }

    /// A kube client talking to this server whose calls fail after `timeout` without an
    /// answer, as the operator's reconciles make theirs.
    pub fn bounded_client(&self, timeout: std::time::Duration) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().expect("url");
        operator::context::bounded_client(kube::Config::new(url), timeout).expect("client")
    }

    /// An object as stored, if any.
    pub fn get(&self, collection: &str, namespace: &str, name: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .get(&(collection.into(), namespace.into(), name.into()))
            .cloned()
    }

    /// Every object of a collection in a namespace.
    pub fn list(&self, collection: &str, namespace: &str) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .objects
            .iter()
            .filter(|((c, ns, _), _)| c == collection && ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The next `count` requests with `method` whose path contains `fragment` fail with 500.
    pub fn fail(&self, method: Method, fragment: &str, count: u32) {
        self.inner
            .lock()
            .unwrap()
            .faults
            .push((method, fragment.into(), count));
    }

    /// From now on, requests with `method` whose path contains `fragment` are never answered
    /// (a connection lost without a reset, a stalled server).
    pub fn stall(&self, method: Method, fragment: &str) {
        self.inner
            .lock()
            .unwrap()
            .stalls
            .push((method, fragment.into()));
    }

    /// From now on, requests with `method` whose path contains `fragment` take effect at once
    /// and are answered after `delay` (a slow network back to the client).
    pub fn answer_late(&self, method: Method, fragment: &str, delay: std::time::Duration) {
        self.inner
            .lock()
            .unwrap()
            .late
            .push((method, fragment.into(), delay));
    }

    /// How many requests matched `method` and a path containing `fragment`.
    pub fn requests(&self, method: &str, fragment: &str) -> usize {
        let inner = self.inner.lock().unwrap();
        inner
            .requests
            .iter()
            .filter(|r| r.starts_with(method) && r.contains(fragment))
            .count()
    }
}

/// The parts of a request path.
struct Target {
    /// `<group>/<version>` or `v1`.
    group_version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

impl Target {
    fn collection(&self) -> String {
        format!("{}/{}", self.group_version, self.plural)
    }
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some((*name).to_owned()), false),
        [plural, name, "status"] => (*plural, Some((*name).to_owned()), true),
        _ => return None,
    };
    Some(Target {
        group_version,
        plural: plural.to_owned(),
        namespace,
        name,
        status,
    })
}

fn status_error(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn labels_match(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return true;
        };
        object["metadata"]["labels"][k.trim()].as_str() == Some(v.trim_start_matches('=').trim())
    })
}

/// Resources with a status subresource (ours): the main endpoint ignores status changes and
/// the status endpoint ignores everything else.
fn has_status_subresource(collection: &str) -> bool {
    collection.starts_with("chatboard.io/")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn handle(
    State(api): State<FakeApi>,
    method: Method,
    uri: Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let stalled = {
        let inner = api.inner.lock().unwrap();
        inner
            .stalls
            .iter()
            .any(|(m, f)| *m == method && path.contains(f.as_str()))
    };
    if stalled {
        std::future::pending::<()>().await;
    }
    {
        let mut inner = api.inner.lock().unwrap();
        inner.requests.push(format!("{method} {path}"));
        if let Some(fault) = inner
            .faults
            .iter_mut()
            .find(|(m, f, n)| *m == method && path.contains(f.as_str()) && *n > 0)
        {
            fault.2 -= 1;
            return status_error(500, "InternalError", "injected failure".into());
        }
    }
    let Some(target) = parse_path(&path) else {
        return status_error(404, "NotFound", format!("no route for {path}"));
    };
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let late = {
        let inner = api.inner.lock().unwrap();
        inner
            .late
            .iter()
            .find(|(m, f, _)| *m == method && path.contains(f.as_str()))
            .map(|(_, _, delay)| *delay)
    };
    let response = match (method.clone(), target.name.is_some()) {
        (Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(&api, &target, &query)
        }
        (Method::GET, false) => list(&api, &target, &query),
        (Method::GET, true) => get(&api, &target),
        (Method::POST, false) => create(&api, &target, body),
        (Method::PUT, true) => replace(&api, &target, body),
        (Method::PATCH, true) => patch(&api, &target, body, &content_type),
        (Method::DELETE, true) => delete(&api, &target),
        _ => status_error(405, "MethodNotAllowed", format!("{method} {path}")),
    };
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    response
}

fn key_of(target: &Target) -> Key {
    (
        target.collection(),
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    )
}

fn get(api: &FakeApi, target: &Target) -> Response {
    let inner = api.inner.lock().unwrap();
    match inner.objects.get(&key_of(target)) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => status_error(
            404,
            "NotFound",
            format!("{} {:?} not found", target.plural, target.name),
        ),
    }
}

fn list(api: &FakeApi, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let inner = api.inner.lock().unwrap();
    let collection = target.collection();
    let items: Vec<Value> = inner
        .objects
        .iter()
        .filter(|((c, ns, _), object)| {
            *c == collection
                && target.namespace.as_ref().is_none_or(|want| want == ns)
                && labels_match(object, query.get("labelSelector"))
        })
        .map(|(_, v)| v.clone())
        .collect();
    axum::Json(json!({
        "apiVersion": target.group_version, "kind": "List",
        "metadata": {"resourceVersion": inner.rv.to_string()}, "items": items,
    }))
    .into_response()
}

fn watch(api: &FakeApi, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let collection = target.collection();
    let namespace = target.namespace.clone();
    let selector = query.get("labelSelector").cloned();
    let wanted = move |c: &Change| {
        c.collection == collection
            && namespace.as_ref().is_none_or(|ns| *ns == c.namespace)
            && labels_match(&c.object, selector.as_ref())
    };
    // Replay and subscribe under one lock, so no change falls between them.
    let (replay, mut live) = {
        let inner = api.inner.lock().unwrap();
        let replay: Vec<Change> = inner
            .history
            .iter()
            .filter(|c| c.rv > since && wanted(c))
            .cloned()
            .collect();
        (replay, api.changes.subscribe())
    };
    let line = |c: &Change| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "{}\n",
            json!({"type": c.kind, "object": c.object})
        )))
    };
    let stream = then_from_channel(replay.iter().map(line).collect(), move |tx| async move {
        loop {
            match live.recv().await {
                Ok(c) if c.rv > since && wanted(&c) => {
                    if tx.send(line(&c)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| status_error(500, "InternalError", "body".into()))
}

/// A stream of `first` then whatever `more` sends.
fn then_from_channel<F, Fut>(
    first: Vec<Result<Bytes, Infallible>>,
    more: F,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(more(tx));
    futures::stream::iter(first).chain(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Stores `object` at `key` as a new version and tells watchers.
fn commit(
    api: &FakeApi,
    inner: &mut Inner,
    key: &Key,
    mut object: Value,
    kind: &'static str,
) -> Value {
    inner.rv += 1;
    object["metadata"]["resourceVersion"] = json!(inner.rv.to_string());
    if kind == "DELETED" {
        inner.objects.remove(key);
    } else {
        inner.objects.insert(key.clone(), object.clone());
    }
    let change = Change {
        rv: inner.rv,
        collection: key.0.clone(),
        namespace: key.1.clone(),
        kind,
        object: object.clone(),
    };
    inner.history.push(change.clone());
    let _ = api.changes.send(change);
    object
}

fn create(api: &FakeApi, target: &Target, mut object: Value) -> Response {
    let mut inner = api.inner.lock().unwrap();
    let namespace = target.namespace.clone().unwrap_or_default();
    let name = match (
        object["metadata"]["name"].as_str(),
        object["metadata"]["generateName"].as_str(),
    ) {
        (Some(name), _) => name.to_owned(),
        (None, Some(prefix)) => format!("{prefix}{:05x}", rand::random::<u32>() & 0xfffff),
        (None, None) => return status_error(422, "Invalid", "metadata.name is required".into()),
    };
    let key = (target.collection(), namespace.clone(), name.clone());
    if let Some(refused) = invalid_event(&key.0, &object) {
        return refused;
    }
    if inner.objects.contains_key(&key) {
        return status_error(
            409,
            "AlreadyExists",
            format!("{} {name} already exists", target.plural),
        );
    }
    let meta = &mut object["metadata"];
    meta["name"] = json!(name);
    if !namespace.is_empty() {
        meta["namespace"] = json!(namespace);
    }
    meta["uid"] = json!(format!("{:032x}", rand::random::<u128>()));
    meta["creationTimestamp"] = json!(now());
    meta["generation"] = json!(1);
    if has_status_subresource(&key.0) {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    let stored = commit(api, &mut inner, &key, object, "ADDED");
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

/// Applies the rules of the main endpoint and the status subresource to a new version.
fn settle(old: &Value, mut new: Value, collection: &str, status_only: bool) -> Value {
    if has_status_subresource(collection) {
        if status_only {
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        } else {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
    }
    // Identity fields never change through an update.
    for field in ["uid", "creationTimestamp", "name", "namespace"] {
        new["metadata"][field] = old["metadata"][field].clone();
    }
    if old["metadata"]["deletionTimestamp"].is_string() {
        new["metadata"]["deletionTimestamp"] = old["metadata"]["deletionTimestamp"].clone();
    }
    let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
    new["metadata"]["generation"] = json!(if new.get("spec") != old.get("spec") {
        generation + 1
    } else {
        generation
    });
    new
}

/// Commits an update; an object being deleted whose last finalizer went is removed.
fn commit_update(api: &FakeApi, inner: &mut Inner, key: &Key, object: Value) -> Response {
    let finalizers_left = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if object["metadata"]["deletionTimestamp"].is_string() && !finalizers_left {
        let gone = commit(api, inner, key, object, "DELETED");
        collect_garbage(api, inner, &gone);
        return axum::Json(gone).into_response();
    }
    axum::Json(commit(api, inner, key, object, "MODIFIED")).into_response()
}

fn replace(api: &FakeApi, target: &Target, object: Value) -> Response {
    let mut inner = api.inner.lock().unwrap();
    let key = key_of(target);
    let Some(old) = inner.objects.get(&key).cloned() else {
        return status_error(
            404,
            "NotFound",
            format!("{} {} not found", target.plural, key.2),
        );
    };
    if let Some(rv) = object["metadata"]["resourceVersion"]
        .as_str()
        .filter(|rv| !rv.is_empty())
    {
        if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
            return status_error(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version"
                    .into(),
            );
        }
    }
    let new = settle(&old, object, &key.0, target.status);
    commit_update(api, &mut inner, &key, new)
}

fn patch(api: &FakeApi, target: &Target, body: Value, content_type: &str) -> Response {
    let mut inner = api.inner.lock().unwrap();
    let key = key_of(target);
    let Some(old) = inner.objects.get(&key).cloned() else {
        return status_error(
            404,
            "NotFound",
            format!("{} {} not found", target.plural, key.2),
        );
    };
    let mut new = old.clone();
    if content_type.starts_with("application/json-patch+json") {
        // The API server treats a missing field as null for `test`; json-patch does not.
        let had_finalizers = new["metadata"].get("finalizers").is_some();
        if !had_finalizers {
            new["metadata"]["finalizers"] = Value::Null;
        }
        let ops: json_patch::Patch = match serde_json::from_value(body) {
            Ok(ops) => ops,
            Err(e) => return status_error(400, "BadRequest", e.to_string()),
        };
        if let Err(e) = json_patch::patch(&mut new, &ops) {
            return status_error(422, "Invalid", e.to_string());
        }
        if new["metadata"]["finalizers"].is_null() {
            if let Some(meta) = new["metadata"].as_object_mut() {
                meta.remove("finalizers");
            }
        }
    } else {
        // Merge, strategic merge and apply patches all merge here (no list strategies).
        json_patch::merge(&mut new, &body);
    }
    if let Some(refused) = invalid_event(&key.0, &new) {
        return refused;
    }
    let new = settle(&old, new, &key.0, target.status);
    commit_update(api, &mut inner, &key, new)
}

/// The API server's refusal of an Event whose note is over 1 KiB (`NoteLengthLimit` in its
/// Event validation), which it answers 422.
fn invalid_event(collection: &str, object: &Value) -> Option<Response> {
    let note = object["note"].as_str()?;
    (collection.ends_with("/events") && note.len() > 1024).then(|| {
        status_error(
            422,
            "Invalid",
            format!(
                "note: Too long: may not be more than 1024 bytes ({})",
                note.len()
            ),
        )
    })
}

fn delete(api: &FakeApi, target: &Target) -> Response {
    let mut inner = api.inner.lock().unwrap();
    let key = key_of(target);
    let Some(mut object) = inner.objects.get(&key).cloned() else {
        return status_error(
            404,
            "NotFound",
            format!("{} {} not found", target.plural, key.2),
        );
    };
    delete_object(api, &mut inner, &key, &mut object);
    axum::Json(object).into_response()
}

fn delete_object(api: &FakeApi, inner: &mut Inner, key: &Key, object: &mut Value) {
    let has_finalizers = object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if !object["metadata"]["deletionTimestamp"].is_string() {
            object["metadata"]["deletionTimestamp"] = json!(now());
            *object = commit(api, inner, key, object.clone(), "MODIFIED");
        }
    } else {
        *object = commit(api, inner, key, object.clone(), "DELETED");
        collect_garbage(api, inner, object);
    }
}

/// Deletes what `owner` owned (by uid), as the garbage collector does.
fn collect_garbage(api: &FakeApi, inner: &mut Inner, owner: &Value) {
    let Some(uid) = owner["metadata"]["uid"].as_str() else {
        return;
    };
    let owned: Vec<(Key, Value)> = inner
        .objects
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, mut object) in owned {
        delete_object(api, inner, &key, &mut object);
    }
}
