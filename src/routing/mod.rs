//! Routing: the rules admins write, and the pure policy that applies them.
//!
//! - [`rules`]: the rule set (`config/routing.toml`), parsed and validated with every
//!   error and warning located.
//! - [`order`]: the order waiting interactions are served in — by each tier's target
//!   bounded by the fair wait (the default), or by head starts.
//! - [`yardstick`]: the wait plain first-come-first-served would give, which the fair
//!   wait is measured by.
//! - [`index`]: the waiting interactions in buckets, so a decision's cost does not grow
//!   with the queue.
//! - [`rings`]: which agents may take an interaction, and from when.
//! - [`policy`]: which waiting interaction goes to which agent now, and why — a pure
//!   function over plain data, tested with tables of cases.

pub mod index;
pub mod order;
pub mod policy;
pub mod protocol;
pub mod rings;
pub mod router;
pub mod rules;
pub mod versions;
pub mod yardstick;
