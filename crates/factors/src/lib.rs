//! The factors service: configuration, telemetry, wiring of ports to adapters, and the
//! command line. `main` stays thin; everything here is callable from tests.

pub mod cli;
pub mod factories;
pub mod healthcheck;
pub mod metrics;
pub mod policy_client;
pub mod secrets;
pub mod serve;
pub mod settings;
pub mod startup;
pub mod store;
pub mod system;
pub mod telemetry;

pub use settings::{Environment, Settings};
pub use startup::Application;
