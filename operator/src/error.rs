//! What a reconcile can fail with. Invalid specs are not errors: they become `Ready=False` in
//! the resource's status. These are the failures worth retrying.

/// A reconcile failure, retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The database refused or could not be reached.
    #[error("database: {0}")]
    Store(#[from] chatboard_store::StoreError),
    /// An action on the tenant's members failed (its store call, usually).
    #[error("applying to the organization: {0}")]
    Chat(#[from] chat::ChatError),
    /// A webhook target's name could not be resolved right now.
    #[error("resolving the webhook target: {0}")]
    Resolve(String),
    /// The resource has no namespace or name (never true of what the API server sends).
    #[error("the resource has no {0}")]
    Unnamed(&'static str),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Shorthand for reconcile results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
