//! One module per `cargo xtask` command, as cargo keeps one file per subcommand.

pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod dev;
pub(crate) mod dist;
pub(crate) mod fuzz;
pub(crate) mod image;
pub(crate) mod pkg;
pub(crate) mod setup;
pub(crate) mod test;
pub(crate) mod widget;

pub(crate) use bench::bench;
pub(crate) use demo::*;
pub(crate) use dev::*;
pub(crate) use fuzz::*;
pub(crate) use pkg::*;
pub(crate) use setup::*;
pub(crate) use test::*;
