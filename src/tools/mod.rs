//! Tools for rule authors that run the engine in memory, with no store and
//! no network: [`replay`] (a recorded alert stream through the rules) and
//! [`ruletest`] (rule unit tests on a virtual clock).

pub mod replay;
pub mod ruletest;
