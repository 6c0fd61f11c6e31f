//! `difyctl export kubernetes`: writes the install as manifests and says what could not be
//! mapped.

use difyctl::config::Config;
use difyctl::export::{self, IngressKind, Options};
use difyctl::stack::model::Stack;

use difyctl::config::row::EXPORT;
use difyctl::config::SettingArgs;

use super::{Globals, UsageError};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Kubernetes: Deployments, StatefulSets, Services, Secrets, ConfigMaps, NetworkPolicies,
    /// Gateway API routes (or an Ingress) and cert-manager objects, with a kustomization.yaml
    Kubernetes(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Folder the manifests are written to (created; an earlier export there is replaced)
    #[arg(long, default_value = "kubernetes", value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// Namespace of every object
    #[arg(long, default_value = "dify", value_name = "N")]
    pub namespace: String,
    /// StorageClass of the volume claims [default: the cluster's default]
    #[arg(long, value_name = "C")]
    pub storage_class: Option<String>,
    /// Replicas of a service that scales (api, worker, web), e.g. api=3 (repeatable)
    #[arg(long = "replicas", value_name = "SVC=N", value_parser = parse_replicas)]
    pub replicas: Vec<(String, u32)>,
    /// How traffic comes in: Gateway API routes, or an Ingress
    #[arg(long, value_enum, default_value = "gateway")]
    pub ingress: IngressArg,
    /// The cluster's GatewayClass (or IngressClass)
    #[arg(long = "class", default_value = "default", value_name = "NAME")]
    pub class: String,
    /// Enable a profile (repeatable), in addition to COMPOSE_PROFILES
    #[arg(long = "profile", value_name = "P")]
    pub profiles: Vec<String>,
    /// `--domain`, `--email`, `--acme-directory`.
    #[command(flatten)]
    pub settings: SettingArgs<EXPORT>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IngressArg {
    Gateway,
    Ingress,
}

fn parse_replicas(s: &str) -> Result<(String, u32), String> {
    let (svc, n) = s.split_once('=').ok_or("expected SVC=N, e.g. api=3")?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| format!("`{n}` is not a number of replicas"))?;
    Ok((svc.trim().to_string(), n))
}

impl Args {
    pub fn run(self, g: &Globals) -> anyhow::Result<()> {
        let Args::Kubernetes(args) = self;
        let mut stack =
            super::load_stack(&g.load(args.profiles.clone()), &difyctl::dify::replaced())?;
        let config = g.config_with(&args.settings)?;
        // What `up` runs: the URL settings derived from the domain (served on 443 there).
        if let Some(domain) = config.domains.first() {
            for note in difyctl::stack::urls::apply_public_urls(&mut stack, domain, 443) {
                eprintln!("{note}");
            }
        }
        kubernetes(&stack, &config, &args)
    }
}

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
