//! One file per subcommand. Each takes its validated part of the configuration.

pub mod proxy;
