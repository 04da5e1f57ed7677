fn main() {
    tune_malloc();
    default_sigpipe();
    std::process::exit(ripcord_cli::run());
}

/// The pipeline allocates and frees megabyte buffers on a dozen threads.
/// glibc's defaults give each thread an arena and map every such buffer
/// afresh, which costs page faults and half again the peak memory. One arena
/// and a high mmap threshold let the buffers be reused instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_malloc() {
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}

/// `ripcord snapshots | head` should end quietly, as other Unix tools do,
/// not panic on a closed pipe: restore the default SIGPIPE action that the
/// Rust runtime replaces.
#[cfg(unix)]
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}
