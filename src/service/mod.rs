//! Service commitments: what a contact centre promises its customers — when it is open,
//! how soon each kind of contact is answered and resolved, that a complaint has a named
//! owner, that a caller who could not wait is called back, and asking afterwards how it
//! went.
//!
//! # Layout
//! - [`calendar`]: opening hours, time zones and holidays, and counting in open time.

pub mod calendar;
