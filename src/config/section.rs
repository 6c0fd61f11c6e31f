//! `section!`: a list of rows turned into the typed struct a component receives (its fields,
//! its `ROWS`, `resolve` from the sources, `row(name)`, and `Default` from the rows'
//! defaults), so that a setting is written once, in `settings.rs`.

/// Builds a `Setting` from the fields of a row as `section!` writes them.
#[macro_export]
#[doc(hidden)]
macro_rules! __setting_row {
    (
        [$($doc:literal)*]
        key: $key:literal,
        var: $var:literal,
        $(flag: $flag:literal on $on:expr,)?
        $(dotenv: $dotenv:expr,)?
        $(kind: $kind:expr,)?
        value: $vn:literal,
        default: $default:expr $(,)?
    ) => {
        $crate::config::row::Setting {
            key: $key,
            var: $var,
            flag: $crate::__setting_opt!($(($flag, $on))?),
            dotenv: $crate::__setting_opt!($($dotenv)?),
            default: $default,
            kind: $crate::__setting_kind!($($kind)?),
            value_name: $vn,
            help: concat!($($doc),*),
        }
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __setting_opt {
    () => {
        None
    };
    ($e:expr) => {
        Some($e)
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __setting_kind {
    () => {
        $crate::config::row::Kind::One
    };
    ($e:expr) => {
        $e
    };
}

/// A component's part of the configuration: one struct whose fields are rows (each with
/// its parser) and, after `derived`, fields the merge fills from other parts.
#[macro_export]
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ty = $parse:path { $($row:tt)* }
            )*
        }
        derived {
            $(
                $(#[doc = $ddoc:literal])*
                $dfield:ident: $dty:ty = $dinit:expr,
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            $( $(#[doc = $ddoc])* pub $dfield: $dty, )*
        }

        impl $name {
            /// The rows of this part, in order.
            pub const ROWS: &'static [$crate::config::row::Setting] = &[
                $( $crate::__setting_row!([$($doc)*] $($row)*), )*
            ];

            /// Every row's value, parsed; the derived fields at their defaults.
            pub fn resolve(
                src: &$crate::config::sources::Sources,
            ) -> Result<Self, $crate::config::ConfigError> {
                Ok($name {
                    $( $field: {
                        const ROW: $crate::config::row::Setting =
                            $crate::__setting_row!([$($doc)*] $($row)*);
                        src.get(&ROW, $parse)?
                    }, )*
                    $( $dfield: $dinit, )*
                })
            }

            /// The row of field `name` (for `Sources::is_set` and errors).
            pub fn row(name: &str) -> &'static $crate::config::row::Setting {
                const NAMES: &[&str] = &[$(stringify!($field)),*];
                let i = NAMES.iter().position(|n| *n == name);
                // Invariant: called with a field name of this section (a typo fails every
                // test that loads a configuration).
                &Self::ROWS[i.expect("a field of this section")]
            }
        }

        impl Default for $name {
            fn default() -> Self {
                let none = |_: &str| None;
                let file = $crate::config::file::FileConfig::default();
                let flags = $crate::config::sources::Flags::default();
                let src = $crate::config::sources::Sources {
                    flags: &flags,
                    env: &none,
                    file: &file,
                    dotenv: None,
                };
                // Invariant: every row's default parses (`defaults_parse` tests each).
                Self::resolve(&src).expect("the defaults parse")
            }
        }
    };
}
