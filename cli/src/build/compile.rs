//! The host's compile, in the rustc wrapper: when cargo compiles the selected bin during a host
//! build, the wrapper builds the host in its place, so that cargo-hotswap's start needs no
//! compile of its own after cargo's.
//!
//! Two rustc runs go side by side: cargo's command with `--emit=dep-info,metadata` (a check:
//! the crate's warnings and errors exactly as cargo would show them for the bin, and the dep-info
//! file cargo reads), and the crate compiled as an `rlib` with the host's settings, quietly. The
//! crate is an `rlib` and not the bin cargo asked for because rustc gives an executable crate
//! another identity than a library (its `StableCrateId` covers `is_exe`): the `TypeId`s and
//! symbol hashes of the crate's items in a bin would differ from those in the patches, which
//! are `cdylib`s, and `Any::downcast` of a value the host made would fail in a patch. The crate's
//! code is generated once; only its analysis runs twice, on two processes. The host shim is then
//! linked where cargo expects the bin.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::Context;

use crate::build::capture::Capture;
use crate::build::shim::{extern_args, extern_name, link_options, main_return_type, shim_source};
use crate::build::{args, link, replay};
use crate::process::{path_arg, run_quiet};

use crate::build::host::HOST_BUILD_ENV;

/// Builds the host of the bin compile `capture` (cargo's command, run in the wrapper now) in
/// `work_root`, and links it where cargo expects the bin. Returns the exit code for cargo: the
/// check's when it fails (its diagnostics have reached cargo), else success.
///
/// # Errors
///
/// When rustc cannot be run, the `rlib` compile fails where the check did not, or the shim
/// cannot be written or linked; the message says which, with rustc's output.
pub(crate) fn host(capture: &Capture, work_root: &Path) -> anyhow::Result<ExitCode> {
    let mut check = capture.command(&check_args(capture, work_root));
    check.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let mut check = check
        .spawn()
        .with_context(|| format!("cannot run `{}`", capture.rustc.display()))?;
    let rlib = compile_rlib(capture, work_root);
    let status = check
        .wait()
        .with_context(|| format!("cannot wait for `{}`", capture.rustc.display()))?;
    if !status.success() {
        return Ok(crate::build::capture::exit_code(status));
    }
    let rlib = rlib?;
    // The crate's private functions become exported ones of the host, which thin patches
    // bind to (see `thin`).
    super::thin::export_hidden(&rlib)?;
    mark_dep_info(capture)?;
    let shim = write_shim(capture, work_root, &rlib)?;
    link_host(capture, work_root, &shim, &rlib)?;
    Ok(ExitCode::SUCCESS)
}

/// cargo's command as a check: dep-info where cargo reads it, metadata into `work_root` (not
/// beside cargo's outputs), no artifact notices (cargo would take the metadata for the bin's),
/// and an incremental cache of its own (cargo's belongs to the full compile).
fn check_args(capture: &Capture, work_root: &Path) -> Vec<String> {
    let mut out: Vec<String> = args::walk(&capture.args)
        .filter(|(arg, _)| {
            !matches!(
                arg,
                args::Arg::Option { name: "--emit", .. }
                    | args::Arg::Codegen {
                        key: "incremental",
                        ..
                    }
            )
        })
        .flat_map(|(arg, spelled)| match arg {
            args::Arg::Option {
                name: "--json",
                value,
            } => {
                let kept: Vec<&str> = value.split(',').filter(|v| *v != "artifacts").collect();
                vec!["--json".to_owned(), kept.join(",")]
            }
            _ => spelled.to_vec(),
        })
        .collect();
    out.push(format!(
        "--emit=dep-info,metadata={}",
        work_root.join("check.rmeta").display()
    ));
    push_incremental(&mut out, capture, &work_root.join("incremental/check"));
    out
}

/// Appends `-C incremental=<dir>` when cargo compiled incrementally (dev profiles): in an
/// optimised build incremental compilation splits the crate into many codegen units and costs
/// the host its inlining. The host's compiles keep caches of their own, apart from cargo's.
fn push_incremental(args: &mut Vec<String>, capture: &Capture, dir: &Path) {
    if capture.option("-C incremental").is_some() {
        replay::push_codegen(args, format!("incremental={}", dir.display()));
    }
}

/// Where the host build of `capture` in the work directory `work_root` keeps the crate compiled
/// as an rlib: `<work_root>/rlib/lib<stem>.rlib` (see [`compile_rlib`]).
pub(crate) fn host_rlib(capture: &Capture, work_root: &Path) -> PathBuf {
    work_root
        .join("rlib")
        .join(format!("lib{}.rlib", capture.stem()))
}

/// The crate compiled as an rlib into `<work_root>/rlib`, keeping the private `main` as a global
/// symbol (`-C link-dead-code`), quietly (the check shows the diagnostics); returns its path.
fn compile_rlib(capture: &Capture, work_root: &Path) -> anyhow::Result<PathBuf> {
    let rlib_dir = work_root.join("rlib");
    let mut rlib_args = replay::base_args(&capture.args);
    rlib_args.extend(
        [
            "--crate-type",
            "rlib",
            "--emit=link",
            "--cap-lints=allow",
            "--out-dir",
        ]
        .map(String::from),
    );
    rlib_args.push(path_arg(&rlib_dir));
    replay::push_codegen(&mut rlib_args, "link-dead-code");
    replay::push_codegen(&mut rlib_args, "lto=off");
    push_incremental(&mut rlib_args, capture, &work_root.join("incremental/rlib"));
    run_quiet(
        capture.command(&rlib_args).stdout(Stdio::null()),
        "compiling the crate as the host's rlib",
    )?;
    Ok(host_rlib(capture, work_root))
}

/// Adds `CARGO_HOTSWAP_HOST_BUILD=1` to the environment dependencies in the bin's dep-info file,
/// as rustc writes those of `env!`: cargo then rebuilds the bin when a plain `cargo build`
/// follows, rather than keep the host as the program's executable, even when no crate of the
/// program uses the runtime's macros.
fn mark_dep_info(capture: &Capture) -> anyhow::Result<()> {
    let Some(file) = capture.dep_info() else {
        return Ok(());
    };
    let Ok(mut text) = std::fs::read_to_string(&file) else {
        return Ok(());
    };
    let line = format!("# env-dep:{HOST_BUILD_ENV}=1");
    if !text.lines().any(|l| l == line) {
        text.push_str(&line);
        text.push('\n');
        std::fs::write(&file, text)
            .with_context(|| format!("cannot write `{}`", file.display()))?;
    }
    Ok(())
}

/// The shim, whose `main` starts the runtime's agent and calls the crate's `main` through its
/// mangled name; returns the shim's source file.
fn write_shim(capture: &Capture, work_root: &Path, rlib: &Path) -> anyhow::Result<PathBuf> {
    let crate_name = capture.crate_name();
    let main_symbol = crate::symbols::find_main_symbol(rlib, crate_name)?;
    let source = capture
        .source()
        .context("the bin's rustc command names no source file")?;
    let return_type = main_return_type(&capture.cwd.join(source))?;
    let shim_dir = work_root.join("shim");
    std::fs::create_dir_all(&shim_dir)
        .with_context(|| format!("cannot create `{}`", shim_dir.display()))?;
    let shim = shim_dir.join("main.rs");
    let externs = extern_args(&capture.args);
    let extern_names: Vec<&str> = externs
        .iter()
        .skip(1)
        .step_by(2)
        .map(|a| extern_name(a))
        .collect();
    // The runtime's library is named `hotswap`, whatever name the manifest gives the dependency.
    // Without it, the agent library the shim links starts the agent itself.
    let runtime = capture
        .externs()
        .into_iter()
        .find(|(_, path)| {
            Path::new(path)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libhotswap-"))
        })
        .map(|(name, _)| name);
    if runtime.is_none() && agent_library().is_none() {
        anyhow::bail!(
            "the bin does not depend on `{}`",
            crate::project::RUNTIME_PACKAGE
        );
    }
    std::fs::write(
        &shim,
        shim_source(
            crate_name,
            &extern_names,
            runtime,
            &main_symbol,
            return_type.as_deref(),
        ),
    )
    .with_context(|| format!("cannot write `{}`", shim.display()))?;
    Ok(shim)
}

/// The agent library to link into a host without the runtime crate, if the session built one.
fn agent_library() -> Option<PathBuf> {
    std::env::var_os(crate::build::host::AGENT_LIBRARY_ENV).map(PathBuf::from)
}

/// The shim linked through the linker wrapper in host mode, with the crate's rlib and every
/// dependency whole, where cargo expects the bin (`<out-dir>/<crate><extra-filename>`).
fn link_host(capture: &Capture, work_root: &Path, shim: &Path, rlib: &Path) -> anyhow::Result<()> {
    let out_dir = capture
        .option("--out-dir")
        .context("the bin's rustc command has no `--out-dir`")?;
    let exe = capture.cwd.join(out_dir).join(capture.stem());
    let mut link_args: Vec<String> = [
        "--crate-name",
        "hotswap_host",
        "--crate-type",
        "bin",
        "--edition",
        "2021",
        "--cap-lints=allow",
    ]
    .map(String::from)
    .to_vec();
    link_args.push(path_arg(shim));
    link_args.push("-o".into());
    link_args.push(path_arg(&exe));
    // The crate's rlib is linked whole as a native library rather than named with `--extern`:
    // a package's bin and lib targets share a crate name, and an `--extern` for the bin would
    // hide the lib from every crate that depends on it. The bin's own dependencies are named
    // with its captured `--extern`s, so that rustc links them (and theirs).
    link_args.push("-L".into());
    link_args.push(format!(
        "native={}",
        rlib.parent().unwrap_or(Path::new(".")).display()
    ));
    link_args.push("-l".into());
    link_args.push(format!(
        "static:+whole-archive,+verbatim={}",
        rlib.file_name().unwrap_or_default().to_string_lossy()
    ));
    link_args.extend(extern_args(&capture.args));
    link_args.extend(link_options(&capture.args));
    if let Some(library) = agent_library() {
        // Needed even though the program refers to none of its symbols: its initialiser starts
        // the agent. Found where it was built (the run path).
        let dir = library.parent().unwrap_or(Path::new("/"));
        for arg in [
            "-Wl,--no-as-needed".to_owned(),
            path_arg(&library),
            "-Wl,--as-needed".to_owned(),
            format!("-Wl,-rpath,{}", dir.display()),
        ] {
            replay::push_codegen(&mut link_args, format!("link-arg={arg}"));
        }
    }
    replay::push_codegen(
        &mut link_args,
        format!("linker={}", crate::process::self_exe()?.display()),
    );
    let mut command = capture.command(&link_args);
    command
        .env(crate::ROLE_ENV, "link-host")
        .env(
            link::REAL_LINKER_ENV,
            capture.option("-C linker").unwrap_or("cc"),
        )
        .env(
            super::thin::HOST_LIBS_DIR_ENV,
            super::thin::host_libs_dir(work_root),
        )
        .env(
            link::ALLOCATOR_SHIM_COPY_ENV,
            work_root.join("allocator-shim.o"),
        );
    run_quiet(command.stdout(Stdio::null()), "linking the host")
}
