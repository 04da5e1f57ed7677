//! Bounds on numbers that come from the user.

/// The most worker threads (or database connections) one command may start.
/// Far above any useful setting, far below what makes thread creation fail.
pub const MAX_JOBS: usize = 256;

/// Checks a `jobs` value (0 means one per core).
pub fn check_jobs(jobs: usize) -> Result<usize, String> {
    if jobs > MAX_JOBS {
        Err(format!(
            "{jobs} jobs is more than the limit of {MAX_JOBS}; use 0 (one per core) or 1 to {MAX_JOBS}"
        ))
    } else {
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_bounded() {
        assert_eq!(check_jobs(0), Ok(0));
        assert_eq!(check_jobs(MAX_JOBS), Ok(MAX_JOBS));
        assert!(check_jobs(MAX_JOBS + 1).is_err());
        assert!(check_jobs(100_000).unwrap_err().contains("256"));
    }
}
