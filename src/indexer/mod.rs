//! The auto-indexer (issue 4, in progress): facts about the database
//! ([`model`]), read from the catalog, turned into index candidates and
//! costed, built carefully, verified and reverted, every step in lineage.

pub mod model;
