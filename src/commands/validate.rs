//! `ltsweep validate SPEC.toml [--json]`: the expanded grid, as a table or JSON, each stage-2
//! job with the stage-1 job it waits for (the graph the scheduler follows).

use serde_json::{Map, Value, json};

use crate::cli::ValidateArgs;

pub fn run(args: &ValidateArgs) -> anyhow::Result<()> {
    let (_, spec) = super::load_spec(&args.spec)?;
    let jobs = spec.jobs();
    if args.json {
        let jobs: Vec<Value> = jobs
            .iter()
            .map(|job| {
                let mut row = Map::new();
                row.insert("id".into(), json!(job.id));
                row.insert("plan".into(), json!(job.plan.to_string()));
                row.insert("comp".into(), json!(job.plan.comp));
                row.insert("pc".into(), json!(job.plan.pc));
                row.insert("base".into(), json!(job.losses.base.kind()));
                row.insert("sampler".into(), json!(job.train.sampler));
                row.insert("seed".into(), json!(job.seed));
                for axis in &job.axes {
                    row.insert(axis.name.clone(), json!(axis.value));
                }
                if let Some(stage2) = &job.stage2 {
                    row.insert("stage2".into(), json!(stage2.method.to_string()));
                    row.insert("after".into(), json!(stage2.parent));
                }
                Value::Object(row)
            })
            .collect();
        let mut sweep = json!({
            "sweep": spec.name,
            "sweep_id": jobs.first().map(|_| spec.sweep_id()),
            "keep_models": spec.keep_models,
            "jobs": jobs,
        });
        if spec.search.method != ltsweep_domain::SearchMethod::Grid {
            sweep["search"] = json!({
                "method": spec.search.method,
                "metric": spec.search.metric(),
                "reduction_factor": spec.search.reduction_factor(),
                "rungs": spec.rungs(),
                "brackets": brackets(&spec),
            });
        }
        println!("{}", serde_json::to_string_pretty(&sweep)?);
        return Ok(());
    }
    let axes = spec.axes();
    let sampled = spec.sampled_axes();
    // Base loss and sampler are shown when the spec names anything but the defaults.
    let show_base = spec.bases() != [ltsweep_domain::BaseKind::Ce];
    let show_sampler = spec.samplers() != [ltsweep_domain::Sampler::Instance];
    let mut header = vec!["#".to_owned(), "id".to_owned()];
    if show_base {
        header.push("base".to_owned());
    }
    if show_sampler {
        header.push("sampler".to_owned());
    }
    header.push("plan".to_owned());
    header.extend(axes.iter().map(|(name, _)| (*name).to_owned()));
    header.extend(sampled.iter().map(|axis| axis.name.to_owned()));
    header.push("seed".to_owned());
    let stage2 = spec.stage2_methods();
    if !stage2.is_empty() {
        header.extend(["stage 2".to_owned(), "after".to_owned()]);
    }
    // A stage-2 job waits for its stage-1 job: shown by that job's row number.
    let row_of: std::collections::HashMap<&ltsweep_domain::JobId, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| (&job.id, i + 1))
        .collect();
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let mut row = vec![(i + 1).to_string(), job.id.to_string()];
            if show_base {
                row.push(job.losses.base.kind().to_string());
            }
            if show_sampler {
                row.push(job.train.sampler.to_string());
            }
            row.push(job.plan.to_string());
            row.extend(job.axes.iter().map(|a| a.value.to_string()));
            row.push(job.seed.to_string());
            if !stage2.is_empty() {
                match &job.stage2 {
                    Some(s) => row.extend([
                        s.method.to_string(),
                        format!("#{} ({})", row_of[&s.parent], s.parent),
                    ]),
                    None => row.extend(["none".to_owned(), String::new()]),
                }
            }
            row
        })
        .collect();
    print!("{}", crate::table::render(&header, &rows));
    let mut shape = String::new();
    if show_base {
        shape.push_str(&format!("{} base losses x ", spec.bases().len()));
    }
    if show_sampler {
        shape.push_str(&format!("{} samplers x ", spec.samplers().len()));
    }
    shape.push_str(&format!("{} plans", spec.plans().len()));
    for (name, values) in &axes {
        shape.push_str(&format!(" x {} {name}", values.len()));
    }
    if !sampled.is_empty() {
        let names: Vec<&str> = sampled.iter().map(|axis| axis.name).collect();
        shape.push_str(&format!(
            " x {} samples of ({})",
            spec.sample_count(),
            names.join(", ")
        ));
    }
    shape.push_str(&format!(" x {} seeds", spec.seeds().len()));
    if !stage2.is_empty() {
        shape.push_str(&format!(
            " x (1 stage-1 job + {} stage-2 jobs after it)",
            stage2.len()
        ));
    }
    println!(
        "sweep {} ({}): {} jobs = {shape}",
        spec.name,
        spec.sweep_id(),
        jobs.len()
    );
    if !sampled.is_empty() {
        println!(
            "samples: {} configurations drawn from a scrambled Halton sequence (search.seed = {})",
            spec.sample_count(),
            spec.search.seed
        );
    }
    let rungs = spec.rungs();
    if !rungs.is_empty() {
        let listed: Vec<String> = rungs.iter().map(u32::to_string).collect();
        println!(
            "search: {} on {}, reduction factor {}: rungs at epochs {} (each configuration's seeds judged together on their mean), the promoted train to epoch {}",
            spec.search.method,
            spec.search.metric(),
            spec.search.reduction_factor(),
            listed.join(", "),
            spec.train.epochs.first()
        );
        if spec.search.method == ltsweep_domain::SearchMethod::Hyperband {
            for (b, count) in brackets(&spec).iter().enumerate() {
                let judged = rungs.get(b).map_or(
                    format!("no rung: they train to epoch {}", spec.train.epochs.first()),
                    |r| format!("judged from the rung at epoch {r} on"),
                );
                println!("  bracket {b}: {count} configurations, {judged}");
            }
        }
    }
    if spec.keep_models {
        println!("keep_models: every stage-1 job's model is kept until the sweep is deleted");
    }
    Ok(())
}

/// How many configurations each of a search's brackets holds (one entry under ASHA).
fn brackets(spec: &ltsweep_domain::SweepSpec) -> Vec<usize> {
    let configurations = spec.job_count() as usize / spec.seeds().len().max(1);
    let mut counts = vec![0; spec.brackets().max(1) as usize];
    for b in ltsweep_domain::hyperband_brackets(
        configurations,
        spec.rungs().len(),
        spec.brackets(),
        spec.search.reduction_factor(),
    ) {
        counts[b as usize] += 1;
    }
    counts
}
