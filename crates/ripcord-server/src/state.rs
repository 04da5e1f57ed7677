//! What every handler shares.

use std::sync::Arc;

use ripcord_ops::Ctx;

use crate::auth::Auth;
use crate::board::Boards;
use crate::live::Live;
use crate::runs::Runs;

pub type Shared = Arc<State>;

pub struct State {
    /// The configuration; reports to the server's log.
    pub ctx: Ctx,
    pub auth: Auth,
    pub boards: Arc<Boards>,
    /// Runs this process started, and their progress.
    pub runs: Runs,
    pub live: Arc<Live>,
    /// Served over TLS: cookies are `Secure`.
    pub tls: bool,
    pub reports: Arc<crate::board::Reports>,
}
