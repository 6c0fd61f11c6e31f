//! The flags of the settings' rows, for clap: a command's argument struct flattens
//! `SettingArgs<COMMANDS>` and gets, from the table, every row whose flag that command has
//! (its name, variable, value name, help and default in `--help`). What was given comes back
//! as raw values with their origin, for `Config::load`.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::row::{Commands, Kind, Setting, Value, GLOBAL};
use super::settings::all_rows;
use super::sources::Flags;

/// The setting flags of the commands in `G` (one bit of `row::Commands`).
#[derive(Debug, Clone, Default)]
pub struct SettingArgs<const G: Commands> {
    given: Vec<(&'static Setting, Value, String)>,
}

impl<const G: Commands> SettingArgs<G> {
    /// Adds what was given to `flags`.
    pub fn apply(&self, flags: &mut Flags) {
        for (row, value, origin) in &self.given {
            flags.set(row, value.clone(), origin.clone());
        }
    }
}

fn rows_on(commands: Commands) -> impl Iterator<Item = (&'static Setting, &'static str)> {
    all_rows().filter_map(move |r| match r.flag {
        Some((name, on)) if on & commands != 0 => Some((r, name)),
        _ => None,
    })
}

fn arg_of(row: &'static Setting, name: &'static str, global: bool) -> Arg {
    let arg = Arg::new(row.key)
        .long(name)
        .env(row.var)
        .help(row.help_line())
        .global(global);
    let arg = if global {
        arg.help_heading("Global options")
    } else {
        arg
    };
    match row.kind {
        Kind::Switch { .. } => arg.action(ArgAction::SetTrue),
        Kind::List => arg
            .action(ArgAction::Append)
            .value_delimiter(',')
            .value_name(row.value_name),
        Kind::One => arg.action(ArgAction::Set).value_name(row.value_name),
    }
}

impl<const G: Commands> FromArgMatches for SettingArgs<G> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for (row, name) in rows_on(G) {
            let origin = match m.value_source(row.key) {
                Some(ValueSource::CommandLine) => format!("--{name}"),
                Some(ValueSource::EnvVariable) => row.var.to_string(),
                _ => continue,
            };
            let value = match row.kind {
                Kind::Switch { sets } if m.get_flag(row.key) => Value::One(sets.to_string()),
                Kind::Switch { .. } => continue,
                Kind::List => Value::List(
                    m.get_many::<String>(row.key)
                        .map(|v| v.cloned().collect())
                        .unwrap_or_default(),
                ),
                Kind::One => Value::One(m.get_one::<String>(row.key).cloned().unwrap_or_default()),
            };
            given.push((row, value, origin));
        }
        Ok(SettingArgs { given })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<const G: Commands> Args for SettingArgs<G> {
    fn augment_args(cmd: Command) -> Command {
        rows_on(G).fold(cmd, |cmd, (row, name)| {
            cmd.arg(arg_of(row, name, G == GLOBAL))
        })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}
