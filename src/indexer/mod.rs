//! The auto-indexer (DESIGN.md decisions 7-9). [`run`] is the loop every
//! replica runs and only the [`leader`] acts in: facts about the database
//! ([`model`], read by [`catalog`]) and the measured [`workload`] become
//! [`candidates`], costed by [`plan`] with the [`cost`] model and the
//! planner ([`whatif`], HypoPG), built carefully ([`ddl`]), verified and
//! reverted — every step in the mutation [`lineage`] log.

pub mod candidates;
pub mod catalog;
pub mod cost;
pub mod ddl;
pub mod leader;
pub mod lineage;
pub mod model;
pub mod plan;
pub mod run;
pub mod select;
pub mod whatif;
pub mod workload;
