//! CRM schema and data (being written).
