//! The open-files limit of a serving process.

/// Raises the soft limit on open files to the hard one and logs where it stands. Container
/// runtimes commonly start processes with a soft limit of 1,024 under a far higher hard one,
/// which would cap a gateway at about a thousand sockets (each also needs its descriptor), and
/// Kubernetes has no setting for it: so the process raises its own, as Go's runtime does.
pub fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => tracing::info!(open_files = soft, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "the open-files limit could not be raised"),
    }
}
