//! What protects logins: the failure throttle, in this process and across replicas through Redis ([`throttle`],
//! [`shared_throttle`]), device cookies that keep the real user's browser out of an attacker's lockout
//! ([`device`]), password hashing on threads of its own ([`passwords`]), and the count of things under way per key
//! (`under_way`) the accept loop and the session bridge share.

pub mod device;
pub mod passwords;
pub mod shared_throttle;
pub mod throttle;
pub(crate) mod under_way;
