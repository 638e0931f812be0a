//! Customers: identities that find one person across channels, and value tiers.

pub mod identity;
pub mod tier;
pub mod waiting;
