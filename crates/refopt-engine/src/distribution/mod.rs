//! Getting a plan to people: notifications of its events and the approval policy.

pub mod approvals;
pub mod notify;
