//! `bench-chart`: turns a run JSON of the shared HTTP benchmark (`../shared/bench/run.sh`,
//! written by its `lib/report.py`) into an SVG chart for the README: median req/s per
//! workload and server, and median p99 latency below it.

mod chart;
mod model;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Turn a benchmark run JSON (../shared/bench/run.sh -o FILE) into an SVG bar chart.
#[derive(Parser, Debug)]
#[command(name = "bench-chart", version)]
struct Args {
    /// The run's JSON file, as written by run.sh.
    run_json: PathBuf,
    /// Where to write the SVG.
    #[arg(short, long, value_name = "OUT.svg")]
    out: PathBuf,
}

fn run(args: &Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.run_json)
        .map_err(|e| format!("reading {}: {e}", args.run_json.display()))?;
    let run = model::Run::from_json_str(&text)
        .map_err(|e| format!("{}: {e}", args.run_json.display()))?;
    for (w, row) in run.workloads.iter().zip(&run.cells) {
        for (s, cell) in run.servers.iter().zip(row) {
            if cell.is_none() {
                eprintln!(
                    "bench-chart: note: no result for workload {w}, server {s} (shown as n/a)"
                );
            }
        }
    }
    let svg = chart::render_svg(&run).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, svg).map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => {
            println!("wrote {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("bench-chart: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
