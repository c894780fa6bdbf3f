//! Telephony (R2): the provider's webhook format and signature and the compliance
//! decisions taken from a call (`retell`).

pub mod retell;
