//! Error classes and the documented exit codes.

/// What kind of failure an error is; decides the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The operation failed (I/O, corruption found, a server error). Exit code 1.
    Failed,
    /// The command line, the configuration or an argument is wrong. Exit code 2.
    Usage,
    /// ripcord refused to act because acting would be unsafe (lock held, damaged
    /// snapshot, failed pre-flight). Exit code 3.
    Refused,
    /// `guard check` could not tell: too few samples, missing data, an empty
    /// result or NaN. Exit code 4.
    Inconclusive,
}

impl Class {
    pub fn exit_code(self) -> i32 {
        match self {
            Class::Failed => 1,
            Class::Usage => 2,
            Class::Refused => 3,
            Class::Inconclusive => 4,
        }
    }
}

/// Implemented by every library error so the binary can pick an exit code and
/// print guidance on how to fix the problem.
pub trait Classify {
    fn class(&self) -> Class;
    /// A short sentence telling the user how to fix or work around the problem.
    fn hint(&self) -> Option<String> {
        None
    }
}
