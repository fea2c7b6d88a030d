//! Genome catalog (being written).
