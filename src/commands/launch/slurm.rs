//! `ltsweep launch slurm`: the workers as a Slurm job array, submitted with sbatch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::SlurmArgs;
use crate::exit::{BadInput, ExitWith};

/// The sbatch script, with `{{field}}`s for [`render`] to fill in.
const TEMPLATE: &str = include_str!("../../../deploy/slurm/workers.sbatch");

pub fn run(args: &SlurmArgs) -> anyhow::Result<()> {
    if let Some(job) = &args.cancel {
        return cancel(job);
    }
    let script = render(args)?;
    if let Some(warning) = args
        .coordinator
        .as_deref()
        .and_then(super::loopback_warning)
    {
        eprintln!("{warning}");
    }
    if args.dry_run {
        print!("{script}");
        return Ok(());
    }
    let job = submit(&script)?;
    println!("{job}");
    eprintln!(
        "submitted Slurm job {job}: `ltsweep workers` lists the workers as they register; `ltsweep launch slurm --cancel {job}` ends them"
    );
    Ok(())
}

/// The sbatch script for these flags.
pub fn render(args: &SlurmArgs) -> anyhow::Result<String> {
    let coordinator = args
        .coordinator
        .as_deref()
        .ok_or_else(|| BadInput("--coordinator is required".to_owned()))?;
    let workers = args
        .workers
        .ok_or_else(|| BadInput("--workers is required".to_owned()))?;
    if workers == 0 {
        return Err(BadInput("--workers must be at least 1".to_owned()).into());
    }
    if args.slots_per_device == 0 {
        return Err(BadInput("--slots-per-device must be at least 1".to_owned()).into());
    }
    let mut options = Vec::new();
    if args.gpus_per_worker > 0 {
        options.push(format!("--gres=gpu:{}", args.gpus_per_worker));
    }
    if let Some(cpus) = args.cpus_per_worker {
        options.push(format!("--cpus-per-task={cpus}"));
    }
    for (flag, value) in [
        ("partition", &args.partition),
        ("time", &args.time),
        ("account", &args.account),
    ] {
        if let Some(value) = value {
            options.push(format!("--{flag}={}", sbatch_word(flag, value)?));
        }
    }
    for extra in &args.extra_sbatch {
        for option in extra.split_whitespace() {
            if !option.starts_with('-') {
                return Err(BadInput(format!(
                    "--extra-sbatch: `{option}` is not an sbatch option (they start with -; write --opt=value)"
                ))
                .into());
            }
            options.push(sbatch_word("extra-sbatch", option)?.to_owned());
        }
    }
    let sbatch_options: Vec<String> = options.iter().map(|o| format!("#SBATCH {o}")).collect();
    let token = match &args.token_file {
        Some(path) => {
            let path = private_file(path)?;
            format!(
                "export LTSWEEP_TOKEN_FILE={}",
                shell_quote(&path_text(&path)?)
            )
        }
        None if std::env::var_os("LTSWEEP_TOKEN").is_some() => {
            "# The token: LTSWEEP_TOKEN, from the environment sbatch exports to the job.".to_owned()
        }
        None => {
            eprintln!(
                "warning: no --token-file and no LTSWEEP_TOKEN: the workers present no token, so only a coordinator without one accepts them"
            );
            "# No token: the coordinator accepts anyone who reaches it.".to_owned()
        }
    };
    let data_root = match &args.data_root {
        Some(root) => format!(
            "export LTSWEEP_DATA_ROOT={}",
            shell_quote(&path_text(root)?)
        ),
        None => "# Data paths are relative to the folder the job starts in.".to_owned(),
    };
    let ltsweep = match &args.ltsweep {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("cannot find this ltsweep binary")?,
    };
    let log_dir = match &args.log_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    let fields = [
        (
            "job_name",
            sbatch_word("job-name", &args.job_name)?.to_owned(),
        ),
        ("last_task", (workers - 1).to_string()),
        (
            "log_dir",
            sbatch_word("log-dir", &path_text(&log_dir)?)?.to_owned(),
        ),
        ("sbatch_options", sbatch_options.join("\n")),
        ("coordinator", shell_quote(coordinator)),
        ("token", token),
        (
            "devices",
            if args.gpus_per_worker > 0 {
                "auto"
            } else {
                "cpu"
            }
            .to_owned(),
        ),
        ("slots_per_device", args.slots_per_device.to_string()),
        ("data_root", data_root),
        ("ltsweep", shell_quote(&path_text(&ltsweep)?)),
    ];
    let mut script = TEMPLATE.to_owned();
    if options.is_empty() {
        // No line at all rather than an empty one among the #SBATCH lines.
        script = script.replace("{{sbatch_options}}\n", "");
    }
    for (name, value) in &fields {
        script = script.replace(&format!("{{{{{name}}}}}"), value);
    }
    Ok(script)
}

/// Submits the script on sbatch's standard input; the job id.
fn submit(script: &str) -> anyhow::Result<String> {
    let mut child = match Command::new("sbatch")
        .arg("--parsable")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_slurm("sbatch")),
        Err(e) => return Err(anyhow::anyhow!("cannot run sbatch: {e}")),
    };
    let written = child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(script.as_bytes());
    // An sbatch that refuses before reading the whole script closes the pipe: its own message
    // below says why.
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(anyhow::Error::new(e).context("cannot write the script to sbatch"));
    }
    let output = child.wait_with_output().context("sbatch")?;
    if !output.status.success() {
        return Err(refused("sbatch", &output).into());
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let job = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    if job.is_empty() {
        anyhow::bail!("sbatch accepted the script but printed no job id");
    }
    Ok(job)
}

fn cancel(job: &str) -> anyhow::Result<()> {
    let valid = !job.is_empty()
        && job
            .split(['_', '.'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Err(BadInput(format!(
            "--cancel {job}: not a Slurm job id (such as 1234 or 1234_0)"
        ))
        .into());
    }
    // A plain scancel: Slurm sends SIGTERM, and SIGKILL only after its KillWait, which the
    // workers use to checkpoint and give their jobs back.
    let output = match Command::new("scancel").arg(job).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_slurm("scancel")),
        Err(e) => return Err(anyhow::anyhow!("cannot run scancel: {e}")),
    };
    if !output.status.success() {
        return Err(refused("scancel", &output).into());
    }
    println!("cancelled Slurm job {job}: its workers checkpoint and give their jobs back");
    Ok(())
}

fn no_slurm(tool: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`{tool}` is not on the PATH: launching workers on Slurm needs Slurm's client tools (sbatch, scancel; Debian's slurm-client); run this on a login node of the cluster, or add --dry-run to print the script"
    )
}

/// Slurm's own message and exit code, passed on.
fn refused(tool: &str, output: &std::process::Output) -> ExitWith {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code().unwrap_or(1);
    ExitWith {
        code: u8::try_from(code).unwrap_or(1),
        message: format!("{tool} refused (exit code {code}): {}", stderr.trim()),
    }
}

/// A token file the workers may read, checked as every command checks one (a regular file of
/// yours that no one else can read or write, holding a token long enough), as the absolute
/// path the script exports.
fn private_file(path: &Path) -> anyhow::Result<PathBuf> {
    ltsweep_proto::token::read_token_file(path)
        .map_err(|e| BadInput(format!("--token-file: {e}")))?;
    std::fs::canonicalize(path)
        .map_err(|e| BadInput(format!("--token-file {}: {e}", path.display())).into())
}

fn path_text(path: &Path) -> anyhow::Result<String> {
    path.to_str().map(str::to_owned).ok_or_else(|| {
        BadInput(format!(
            "{}: not UTF-8, which a script cannot hold",
            path.display()
        ))
        .into()
    })
}

/// A value of an #SBATCH line: sbatch reads those lines itself, so no spaces or line breaks.
fn sbatch_word<'a>(flag: &str, value: &'a str) -> anyhow::Result<&'a str> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(BadInput(format!(
            "--{flag} `{value}`: an sbatch value must be one word, without spaces or line breaks"
        ))
        .into());
    }
    Ok(value)
}

/// `value` as one shell word.
fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@%+=,".contains(&b))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("http://head:7070"), "http://head:7070");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }
}
