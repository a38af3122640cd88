//! Integration tests of heal-generator.
