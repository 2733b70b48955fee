//! The HTTP plumbing: the accept loop ([`accept`]) with its connection limits, the layers it puts around each
//! connection (a write deadline, a deadline on a streamed answer) and the idle set near the cap, request bodies
//! (`body`), the client's address behind trusted proxies ([`proxy`]), error answers ([`error`]) and sampled logging
//! of refusals.

pub mod accept;
pub mod body;
mod deadline_body;
pub mod error;
mod idle;
pub mod limits;
pub(crate) mod log;
pub mod proxy;
mod write_deadline;
