//! Event generator (being written).
