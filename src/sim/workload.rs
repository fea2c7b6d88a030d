//! Workload (being written).
