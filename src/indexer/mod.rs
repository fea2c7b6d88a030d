//! The auto-indexer (issue 4, in progress): facts about the database
//! ([`model`]), read from the catalog, turned into index candidates and
//! costed, built carefully, verified and reverted, every step in lineage.

pub mod candidates;
pub mod catalog;
pub mod cost;
pub mod ddl;
pub mod lineage;
pub mod model;
