//! Switchboard: contact-centre middleware. Contacts from every channel become
//! interactions in one durable queue, routed by the customer's value tier, with every
//! step written to the customer's history.
//!
//! # Layout
//! - [`config`]: typed settings from the built-in defaults, a file and the environment.
//! - [`store`]: the database (SQLite by default, PostgreSQL), migrations, and the
//!   queries for customers, interactions and the history.
//! - [`customers`]: identities (email, phone, chat visitor, CRM id) and value tiers.
//! - [`intake`]: checks each new contact and commits it in groups with its customer,
//!   tier and history, answering only after the commit.
//! - [`queue`]: the waiting interactions in memory, rebuilt from the store at start.
//! - [`cluster`]: several nodes on PostgreSQL: the leader's election and fence, the bus
//!   between nodes, calls to the leader's router, websockets relayed to the leader.
//! - [`routing`]: the routing rules and the pure routing policy.
//! - [`service`]: service commitments: calendars, targets, callbacks, satisfaction.
//! - [`retention`]: old content removed per channel on the leader's schedule.
//! - [`simulation`]: the replay simulator — recorded history replayed through the policy.
//! - [`api`]: the HTTP interface (axum): the API channel, customer admin, history,
//!   health and metrics, and the OpenAPI document built from the same route table.
//! - [`telemetry`]: logs and metrics, free of customer data.
//! - [`serve`]: HTTP connections served with bounded header reads, idle time and count.
//! - [`startup`]: building, running and stopping the server.
//! - [`cli`]: the command line.
//!
//! The channel contract (what adapters hand the core) is the `switchboard-contract`
//! crate in `channels/contract`.

pub mod admission;
pub mod api;
pub mod channels;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod customers;
pub mod intake;
pub mod queue;
pub mod retention;
pub mod routing;
pub mod serve;
pub mod service;
pub mod simulation;
pub mod startup;
pub mod store;
pub mod telemetry;
