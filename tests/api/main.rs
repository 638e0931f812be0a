//! End-to-end tests: the real server on a free port, driven over HTTP (and, for crashes
//! and signals, as a separate process). Store tests run on SQLite and PostgreSQL both.

mod agent_client;
mod helpers;

mod agents;
mod audit;
mod browser;
mod chat;
mod chat_security;
mod cluster;
mod connections;
mod customer_data;
mod customers;
mod durability;
mod email;
mod hardening;
mod imap;
mod import;
mod interactions;
mod losses;
mod openapi;
mod operations;
mod overload;
mod pages;
mod phone;
mod refusals;
mod reports;
mod retention;
mod roles;
mod routing;
mod rules;
mod search;
mod service;
mod sessions;
mod simulate;
mod work;
