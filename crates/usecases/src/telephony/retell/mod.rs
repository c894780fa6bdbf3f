//! The telephony provider RetellAI: webhook signature, the parts of its call object we
//! use, and the compliance decisions taken from a call (recording consent, AI disclosure).

pub mod compliance;
pub mod cut;
pub mod model;
pub mod signature;
pub mod tools;
