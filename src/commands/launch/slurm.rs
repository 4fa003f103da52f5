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
        Field::new(
            "job_name",
            "--job-name",
            sbatch_word("job-name", &args.job_name)?,
        ),
        Field::new("last_task", "--workers", (workers - 1).to_string()),
        Field::new(
            "log_dir",
            "--log-dir",
            sbatch_word("log-dir", &path_text(&log_dir)?)?,
        ),
        Field::new(
            "warning_seconds",
            "--warning-seconds",
            args.warning_seconds.to_string(),
        ),
        Field::new(
            "sbatch_options",
            "--partition, --time, --account or --extra-sbatch",
            sbatch_options.join("\n"),
        ),
        Field::new("coordinator", "--coordinator", shell_quote(coordinator)),
        Field::new("token", "--token-file", token),
        Field::new(
            "devices",
            "--gpus-per-worker",
            if args.gpus_per_worker > 0 {
                "auto"
            } else {
                "cpu"
            },
        ),
        Field::new(
            "slots_per_device",
            "--slots-per-device",
            args.slots_per_device.to_string(),
        ),
        Field::new("data_root", "--data-root", data_root),
        Field::new("ltsweep", "--ltsweep", shell_quote(&path_text(&ltsweep)?)),
    ];
    fill(TEMPLATE, &fields)
}

/// The value of one `{{name}}` of the template, and the flag it comes from.
struct Field {
    name: &'static str,
    flag: &'static str,
    value: String,
}

impl Field {
    fn new(name: &'static str, flag: &'static str, value: impl Into<String>) -> Field {
        Field {
            name,
            flag,
            value: value.into(),
        }
    }
}

/// Fills every `{{name}}` of `template` in one pass: what a value brings in is never read as
/// template again, so one flag's value cannot open a field that a later flag fills. A value
/// holding `{{` is refused all the same, naming its flag: no legitimate value has one, and
/// such a script would be hard to read. A field whose value is empty and that stands alone on
/// its line takes the line with it.
fn fill(template: &str, fields: &[Field]) -> anyhow::Result<String> {
    for field in fields {
        if field.value.contains("{{") {
            return Err(BadInput(format!(
                "{}: `{{{{` cannot appear in a value of the script",
                field.flag
            ))
            .into());
        }
    }
    let mut script = String::with_capacity(template.len() + 1024);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..]
            .find("}}")
            .map(|end| start + end)
            .ok_or_else(|| anyhow::anyhow!("the sbatch template has an unclosed `{{{{`"))?;
        let name = &rest[start + 2..end];
        let field = fields.iter().find(|f| f.name == name).ok_or_else(|| {
            anyhow::anyhow!("the sbatch template names an unknown field `{name}`")
        })?;
        script.push_str(&rest[..start]);
        script.push_str(&field.value);
        rest = &rest[end + 2..];
        let alone = (script.is_empty() || script.ends_with('\n')) && rest.starts_with('\n');
        if field.value.is_empty() && alone {
            rest = &rest[1..];
        }
    }
    script.push_str(rest);
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
    use super::{Field, fill, shell_quote};

    #[test]
    fn the_template_is_filled_in_one_pass() {
        let fields = [
            Field::new("a", "--a", "{b}"),
            Field::new("b", "--b", "x"),
            Field::new("empty", "--e", ""),
        ];
        assert_eq!(
            fill("1 {{a}} {{b}}\n{{empty}}\n2 {{empty}}\n", &fields).unwrap(),
            "1 {b} x\n2 \n"
        );
        // A value that would open a field of its own is refused, naming its flag.
        let fields = [
            Field::new("a", "--coordinator", "http://h/{{b}}"),
            Field::new("b", "--data-root", "'; rm -rf ~; '"),
        ];
        let err = fill("A={{a}} B={{b}}", &fields).unwrap_err().to_string();
        assert!(err.contains("--coordinator") && err.contains("{{"), "{err}");
        assert!(fill("{{nosuch}}", &[]).is_err());
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("http://head:7070"), "http://head:7070");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }
}
