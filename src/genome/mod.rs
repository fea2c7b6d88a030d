//! The genome and expression profiles (DESIGN.md decision 10): the
//! [`catalog`] is the canonical schema, field by field, discovered from the
//! database and overridable in config; [`expression`] profiles say which
//! tenant uses which field, observed from traffic or declared. Both steer
//! which indexes the indexer proposes.

pub mod catalog;
pub mod expression;
