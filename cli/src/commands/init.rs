//! `cargo hotswap init`: adds the runtime dependency to a package's manifest (with `toml_edit`,
//! keeping the user's formatting and comments) and says what to do next. It never writes
//! `Cargo.lock`: cargo updates it at the next build.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use cargo_metadata::MetadataCommand;
use clap::Args;

use crate::errors::CliError;
use crate::output;
use crate::project::RUNTIME_PACKAGE;

use super::OutputArgs;

/// Arguments of `cargo hotswap init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Package to set up (in a workspace)
    #[arg(short, long, value_name = "SPEC", help_heading = "Package Selection")]
    pub(crate) package: Option<String>,
    /// Path to Cargo.toml
    #[arg(long, value_name = "PATH", help_heading = "Manifest Options")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Depend on a local checkout of the runtime (its `runtime-shim` directory) instead of the
    /// registry
    #[arg(long, value_name = "DIR")]
    pub(crate) path: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// What `init` did.
#[derive(Debug, PartialEq, Eq)]
enum Done {
    /// The dependency was added to the manifest.
    Added,
    /// The package already depends on the runtime; the manifest is unchanged.
    AlreadySetUp,
}

/// Adds the runtime to the chosen package's manifest and prints the next steps.
pub(super) fn init(args: &InitArgs) -> Result<(), CliError> {
    args.output.init(false);
    let (manifest, has_bin) = chosen_manifest(args)?;
    let relative = manifest
        .strip_prefix(std::env::current_dir().unwrap_or_default())
        .unwrap_or(&manifest)
        .display()
        .to_string();
    let path = args
        .path
        .as_deref()
        .map(|path| {
            std::path::absolute(path)
                .with_context(|| format!("cannot resolve `{}`", path.display()))
        })
        .transpose()?;
    match add_runtime(&manifest, path.as_deref())? {
        Done::AlreadySetUp => {
            output::status(
                "Unchanged",
                format!("`{relative}` already depends on `{RUNTIME_PACKAGE}`"),
            );
        }
        Done::Added => {
            let source = path.map_or_else(
                || format!("version {}", env!("CARGO_PKG_VERSION")),
                |path| format!("path {}", path.display()),
            );
            output::status(
                "Adding",
                format!("`{RUNTIME_PACKAGE}` ({source}) to the dependencies of `{relative}`"),
            );
            let run = if has_bin {
                "Run the program with `cargo hotswap run`, edit, save."
            } else {
                "Run the program that uses this library with `cargo hotswap run -p <its \
                 package>`, edit, save."
            };
            output::write_stderr(&format!(
                "\nNext:\n  1. Mark the functions whose edits should take effect at once:\n\
                 \n       #[hotswap::hot]\n       fn handle(request: &Request) -> Response {{ .. }}\n\
                 \n  2. {run}\n",
            ));
        }
    }
    Ok(())
}

/// The manifest of the package to set up (`-p`, else the package of `--manifest-path` or of the
/// current directory; a workspace root without a package of its own needs `-p`), and whether
/// that package has a bin target.
fn chosen_manifest(args: &InitArgs) -> anyhow::Result<(PathBuf, bool)> {
    let mut command = MetadataCommand::new();
    command.no_deps();
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.cargo_path(cargo);
    }
    if let Some(path) = &args.manifest_path {
        command.manifest_path(path);
    }
    let metadata = command
        .exec()
        .context("cannot read the project with `cargo metadata`")?;
    let members = metadata.workspace_packages();
    let names = || {
        members
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let package = match &args.package {
        Some(spec) => members
            .iter()
            .find(|p| p.name.as_str() == spec.as_str())
            .ok_or_else(|| {
                anyhow!(
                    "package `{spec}` is not a member of the workspace\nhelp: the members are: {}",
                    names()
                )
            })?,
        None => match metadata.root_package() {
            Some(package) => package,
            None if members.len() == 1 => members[0],
            None => bail!(
                "`{}` is a workspace: choose the package to set up with `-p`\nhelp: the members \
                 are: {}",
                metadata.workspace_root.join("Cargo.toml"),
                names()
            ),
        },
    };
    let has_bin = package.targets.iter().any(|t| t.is_bin());
    Ok((package.manifest_path.clone().into_std_path_buf(), has_bin))
}

/// Adds `cargo-hotswap-runtime` to `[dependencies]` of `manifest` (a path dependency on `path`,
/// else the registry version of this tool), keeping everything else of the file as it is.
///
/// # Errors
///
/// When the manifest cannot be read, parsed or written, or its `dependencies` is not a table.
fn add_runtime(manifest: &Path, path: Option<&Path>) -> anyhow::Result<Done> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read `{}`", manifest.display()))?;
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("cannot edit `{}`: it is not valid TOML", manifest.display()))?;
    if depends_on_runtime(&document) {
        return Ok(Done::AlreadySetUp);
    }
    let dependencies = document
        .entry("dependencies")
        .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
    let Some(dependencies) = dependencies.as_table_like_mut() else {
        bail!(
            "cannot edit `{}`: its `dependencies` is not a table",
            manifest.display()
        );
    };
    let value = match path {
        Some(path) => {
            let mut table = toml_edit::InlineTable::new();
            table.insert("path", path.display().to_string().into());
            toml_edit::value(table)
        }
        None => toml_edit::value(env!("CARGO_PKG_VERSION")),
    };
    dependencies.insert(RUNTIME_PACKAGE, value);
    std::fs::write(manifest, document.to_string())
        .with_context(|| format!("cannot write `{}`", manifest.display()))?;
    Ok(Done::Added)
}

/// Whether the manifest already has the runtime among its dependencies of any kind (by key, or
/// renamed with `package = "cargo-hotswap-runtime"`).
fn depends_on_runtime(document: &toml_edit::DocumentMut) -> bool {
    let names_runtime = |(key, item): (&str, &toml_edit::Item)| {
        key == RUNTIME_PACKAGE
            || item
                .get("package")
                .and_then(|p| p.as_str())
                .is_some_and(|p| p == RUNTIME_PACKAGE)
    };
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|table| document.get(table).and_then(|t| t.as_table_like()))
        .any(|table| table.iter().any(names_runtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Cargo.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_dependency_is_added_keeping_comments_and_layout() {
        let (_dir, path) = manifest(
            "[package]\nname = \"app\"  # the app\nversion = \"0.1.0\"\n\n# What it uses.\n\
             [dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\n",
        );
        assert_eq!(add_runtime(&path, None).unwrap(), Done::Added);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!(
                "[package]\nname = \"app\"  # the app\nversion = \"0.1.0\"\n\n# What it uses.\n\
                 [dependencies]\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
                 cargo-hotswap-runtime = \"{}\"\n",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(add_runtime(&path, None).unwrap(), Done::AlreadySetUp);
    }

    #[test]
    fn a_path_dependency_and_a_missing_table() {
        let (_dir, path) = manifest("[package]\nname = \"app\"\nversion = \"0.1.0\"\n");
        add_runtime(&path, Some(Path::new("/src/cargo-hotswap/runtime-shim"))).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\n\n[dependencies]\n\
             cargo-hotswap-runtime = { path = \"/src/cargo-hotswap/runtime-shim\" }\n"
        );
    }

    #[test]
    fn a_renamed_dependency_counts_and_bad_manifests_are_refused() {
        let (_dir, path) = manifest(
            "[package]\nname = \"app\"\n[dependencies]\nhotswap = { package = \
             \"cargo-hotswap-runtime\", version = \"0.1\" }\n",
        );
        assert_eq!(add_runtime(&path, None).unwrap(), Done::AlreadySetUp);
        let (_dir, path) = manifest("[package\nname = \"app\"\n");
        let err = add_runtime(&path, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("it is not valid TOML"),
            "{err:#}"
        );
        let (_dir, path) = manifest("dependencies = 3\n");
        let err = add_runtime(&path, None).unwrap_err();
        assert!(
            format!("{err:#}").contains("its `dependencies` is not a table"),
            "{err:#}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "dependencies = 3\n"
        );
    }
}
