//! End-to-end tests live in `tests/`; run them with `cargo xtask test`, which builds what they start.
