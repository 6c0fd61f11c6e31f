//! `difyctl export kubernetes`: writes the install as manifests and says what could not be
//! mapped.

use difyctl::config::Config;
use difyctl::export::{self, IngressKind, Options};
use difyctl::stack::model::Stack;

use crate::cli::{ExportArgs, IngressArg};

use super::UsageError;

pub fn kubernetes(stack: &Stack, config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let out = &args.out;
    let earlier = out.join("kustomization.yaml").is_file();
    let occupied = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if occupied && !earlier {
        return Err(UsageError(format!(
            "{} holds other files: choose an empty or new folder with --out (an earlier export there would be replaced)",
            out.display()
        ))
        .into());
    }
    let opts = Options {
        namespace: args.namespace.clone(),
        storage_class: args.storage_class.clone(),
        replicas: args.replicas.clone(),
        ingress: match args.ingress {
            IngressArg::Gateway => IngressKind::Gateway,
            IngressArg::Ingress => IngressKind::Ingress,
        },
        class: args.class.clone(),
        domains: config.domains.clone(),
        email: config.email.clone(),
        acme_directory: config.acme.as_ref().map_or_else(
            || difyctl::config::LETSENCRYPT.to_string(),
            |a| a.directory.clone(),
        ),
    };
    let exported = export::kubernetes(stack, &opts).map_err(|e| UsageError(e.to_string()))?;
    if earlier {
        // Files of the earlier export that this one does not write would linger: remove them.
        for entry in std::fs::read_dir(out)?.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".yaml") && !exported.files.iter().any(|(f, _)| *f == name) {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    exported.write(out)?;
    let objects: usize = exported.files.iter().map(|(_, d)| d.len()).sum();
    eprintln!(
        "wrote {objects} objects in {} files to {} (apply with `kubectl apply -k {}`)",
        exported.files.len(),
        out.display(),
        out.display()
    );
    if !exported.unmapped.is_empty() {
        eprintln!(
            "not mapped (also in {}):",
            out.join("UNMAPPED.txt").display()
        );
        eprint!("{}", exported.report());
    }
    Ok(())
}
