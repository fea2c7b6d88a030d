//! Expression profiles (being written).
