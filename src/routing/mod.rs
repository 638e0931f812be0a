//! Routing: the rules admins write, and the pure policy that applies them.
//!
//! - [`rules`]: the rule set (`config/routing.toml`), parsed and validated with every
//!   error and warning located.
//! - [`index`]: the waiting interactions in buckets, so a decision's cost does not grow
//!   with the queue.
//! - [`policy`]: which waiting interaction goes to which agent now, and why — a pure
//!   function over plain data, tested with tables of cases.

pub mod index;
pub mod policy;
pub mod protocol;
pub mod router;
pub mod rules;
pub mod versions;
