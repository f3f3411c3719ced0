//! Tools for rule authors that run the engine in memory, with no store and
//! no network: [`replay`] (a recorded alert stream through the rules),
//! [`ruletest`] (rule unit tests on a virtual clock, with [`coverage`]) and
//! [`explain`] (one alert's path through the rules, as text).

pub mod coverage;
pub mod explain;
pub mod replay;
pub mod ruletest;
