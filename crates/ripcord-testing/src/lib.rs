//! Test fixtures for ripcord.
