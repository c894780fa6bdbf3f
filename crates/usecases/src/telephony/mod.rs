//! Telephony (R2): the provider's webhook format and signature and the compliance
//! decisions taken from a call (`retell`); what the webhook keeps of a call (`webhook`);
//! what the worker does with it afterwards (`ingest`); placing outbound calls
//! (`outbound`); the ports all of them work over (`ports`).

pub mod ingest;
pub mod outbound;
pub mod ports;
pub mod retell;
pub mod tools;
pub mod webhook;
