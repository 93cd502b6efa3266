//! The part of a `../shared/bench` run JSON (written by `lib/report.py`) that the chart shows.
//!
//! Parsing goes through `serde_json::Value` by hand so that every error names the JSON path
//! of the field that is missing or has the wrong type.

use serde_json::Value;
use std::fmt;

/// Why a run file could not be charted. The message names the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// One benchmark run: what the title says, and one [`Cell`] per workload and server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    /// `meta.date_utc`, e.g. `2026-11-27T00:06:38Z`. `None` when report.py wrote `null`.
    pub(crate) date_utc: Option<String>,
    /// `meta.cpus`.
    pub(crate) cpus: Option<u64>,
    /// `meta.cpu_model`.
    pub(crate) cpu_model: Option<String>,
    /// `meta.redis`, e.g. `redis 7.0.15`.
    pub(crate) redis: Option<String>,
    /// Server names, in the file's `servers` order (legend and bar order).
    pub(crate) servers: Vec<String>,
    /// Workload names, in the file's `workloads` order (group order).
    pub(crate) workloads: Vec<String>,
    /// `cells[workload][server]`; `None` where report.py had no measurement for that pair
    /// (it leaves the server out of `results[workload]` then).
    pub(crate) cells: Vec<Vec<Option<Cell>>>,
}

/// The numbers of one workload × server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cell {
    /// `rps_median`.
    pub(crate) rps_median: f64,
    /// Smallest value of `rps_all`.
    pub(crate) rps_min: f64,
    /// Largest value of `rps_all`.
    pub(crate) rps_max: f64,
    /// Number of runs (length of `rps_all`).
    pub(crate) runs: usize,
    /// `lat_p99_us_median`, in milliseconds.
    pub(crate) p99_ms: f64,
}

impl Run {
    /// Parses the text of a run file.
    pub(crate) fn from_json_str(text: &str) -> Result<Run, Error> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| Error(format!("not valid JSON: {e}")))?;
        Run::from_value(&root)
    }

    /// Parses an already decoded run file.
    pub(crate) fn from_value(root: &Value) -> Result<Run, Error> {
        let root = as_object(root, "(top level)")?;
        let meta = as_object(field(root, "", "meta")?, "meta")?;
        let date_utc = opt_str(field(meta, "meta", "date_utc")?, "meta.date_utc")?;
        let cpus = match field(meta, "meta", "cpus")? {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .ok_or_else(|| wrong_type("meta.cpus", "a whole number", v))?,
            ),
        };
        let cpu_model = opt_str(field(meta, "meta", "cpu_model")?, "meta.cpu_model")?;
        let redis = opt_str(field(meta, "meta", "redis")?, "meta.redis")?;

        let servers = as_array(field(root, "", "servers")?, "servers")?
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let path = format!("servers[{i}]");
                let obj = as_object(s, &path)?;
                let name = field(obj, &path, "name")?;
                name.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(&format!("{path}.name"), "a string", name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let workloads = as_array(field(root, "", "workloads")?, "workloads")?
            .iter()
            .enumerate()
            .map(|(i, w)| {
                w.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong_type(&format!("workloads[{i}]"), "a string", w))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(Error("`servers` is empty: nothing to chart".into()));
        }
        if workloads.is_empty() {
            return Err(Error("`workloads` is empty: nothing to chart".into()));
        }

        let results = as_object(field(root, "", "results")?, "results")?;
        let mut cells = Vec::with_capacity(workloads.len());
        for wl in &workloads {
            let wl_path = format!("results.{wl}");
            let per_server = as_object(field(results, "results", wl)?, &wl_path)?;
            let mut row = Vec::with_capacity(servers.len());
            for server in &servers {
                row.push(match per_server.get(server) {
                    None => None,
                    Some(v) => Some(parse_cell(v, &format!("{wl_path}.{server}"))?),
                });
            }
            cells.push(row);
        }
        if cells.iter().flatten().all(Option::is_none) {
            return Err(Error(
                "`results` has no measurement for any workload and server".into(),
            ));
        }
        Ok(Run {
            date_utc,
            cpus,
            cpu_model,
            redis,
            servers,
            workloads,
            cells,
        })
    }

    /// The smallest and largest number of runs behind a median, over all cells.
    pub(crate) fn runs_range(&self) -> (usize, usize) {
        let runs = self.cells.iter().flatten().flatten().map(|c| c.runs);
        let lo = runs.clone().min().unwrap_or(0);
        let hi = runs.max().unwrap_or(0);
        (lo, hi)
    }
}

fn parse_cell(v: &Value, path: &str) -> Result<Cell, Error> {
    let obj = as_object(v, path)?;
    let rps_median = number(
        field(obj, path, "rps_median")?,
        &format!("{path}.rps_median"),
    )?;
    let all_path = format!("{path}.rps_all");
    let all = as_array(field(obj, path, "rps_all")?, &all_path)?
        .iter()
        .enumerate()
        .map(|(i, x)| number(x, &format!("{all_path}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if all.is_empty() {
        return Err(Error(format!(
            "{all_path}: empty (expected one req/s value per run)"
        )));
    }
    let rps_min = all.iter().copied().fold(f64::INFINITY, f64::min);
    let rps_max = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let p99_us = number(
        field(obj, path, "lat_p99_us_median")?,
        &format!("{path}.lat_p99_us_median"),
    )?;
    Ok(Cell {
        rps_median,
        rps_min,
        rps_max,
        runs: all.len(),
        p99_ms: p99_us / 1000.0,
    })
}

type Object = serde_json::Map<String, Value>;

fn field<'a>(obj: &'a Object, path: &str, key: &str) -> Result<&'a Value, Error> {
    obj.get(key).ok_or_else(|| {
        if path.is_empty() {
            Error(format!("{key}: missing"))
        } else {
            Error(format!("{path}.{key}: missing"))
        }
    })
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Object, Error> {
    v.as_object()
        .ok_or_else(|| wrong_type(path, "an object", v))
}

fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, Error> {
    v.as_array().ok_or_else(|| wrong_type(path, "an array", v))
}

/// A finite, non-negative number.
fn number(v: &Value, path: &str) -> Result<f64, Error> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(wrong_type(path, "a non-negative number", v)),
    }
}

fn opt_str(v: &Value, path: &str) -> Result<Option<String>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(wrong_type(path, "a string or null", other)),
    }
}

fn wrong_type(path: &str, expected: &str, got: &Value) -> Error {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Error(format!("{path}: expected {expected}, found {kind}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small run in report.py's shape: two servers, two workloads, `b` has no `write` result.
    pub(crate) fn fixture() -> Value {
        json!({
            "meta": {
                "date_utc": "2026-11-27T00:06:38Z",
                "cpus": 2,
                "cpu_model": "AMD EPYC",
                "redis": "redis 7.0.15",
                "kernel": "6.18"
            },
            "options": { "repeats": 3 },
            "servers": [
                { "name": "b", "command": "./b" },
                { "name": "a", "command": "./a" }
            ],
            "workloads": ["write", "read"],
            "results": {
                "read": {
                    "a": { "runs": 3, "rps_median": 200.0, "rps_all": [190.0, 200.0, 230.5],
                           "lat_p99_us_median": 1500 },
                    "b": { "runs": 3, "rps_median": 100.0, "rps_all": [100.0, 90.0, 110.0],
                           "lat_p99_us_median": 2500.0 }
                },
                "write": {
                    "a": { "runs": 3, "rps_median": 50.0, "rps_all": [50.0, 50.0, 50.0],
                           "lat_p99_us_median": 9000 }
                }
            }
        })
    }

    #[test]
    fn parses_in_file_order() {
        let run = Run::from_value(&fixture()).unwrap();
        assert_eq!(run.date_utc.as_deref(), Some("2026-11-27T00:06:38Z"));
        assert_eq!(run.cpus, Some(2));
        assert_eq!(run.cpu_model.as_deref(), Some("AMD EPYC"));
        assert_eq!(run.redis.as_deref(), Some("redis 7.0.15"));
        // Order comes from `servers` and `workloads`, not from the keys of `results`.
        assert_eq!(run.servers, ["b", "a"]);
        assert_eq!(run.workloads, ["write", "read"]);
        // write: b missing, a present.
        assert_eq!(run.cells[0][0], None);
        let write_a = run.cells[0][1].as_ref().unwrap();
        assert_eq!(write_a.rps_median, 50.0);
        assert_eq!(write_a.p99_ms, 9.0);
        // read: b, a.
        let read_b = run.cells[1][0].as_ref().unwrap();
        assert_eq!((read_b.rps_min, read_b.rps_max), (90.0, 110.0));
        assert_eq!(read_b.p99_ms, 2.5);
        let read_a = run.cells[1][1].as_ref().unwrap();
        assert_eq!(read_a.rps_median, 200.0);
        assert_eq!((read_a.rps_min, read_a.rps_max), (190.0, 230.5));
        assert_eq!(read_a.runs, 3);
        assert_eq!(run.runs_range(), (3, 3));
    }

    #[test]
    fn null_meta_values_are_unknown_not_errors() {
        let mut v = fixture();
        v["meta"]["cpu_model"] = Value::Null;
        v["meta"]["redis"] = Value::Null;
        let run = Run::from_value(&v).unwrap();
        assert_eq!(run.cpu_model, None);
        assert_eq!(run.redis, None);
    }

    #[test]
    fn missing_field_names_its_path() {
        let mut v = fixture();
        v["results"]["read"]["b"]
            .as_object_mut()
            .unwrap()
            .remove("rps_median");
        let err = Run::from_value(&v).unwrap_err();
        assert_eq!(err.0, "results.read.b.rps_median: missing");

        let mut v = fixture();
        v["meta"].as_object_mut().unwrap().remove("date_utc");
        assert_eq!(Run::from_value(&v).unwrap_err().0, "meta.date_utc: missing");

        let mut v = fixture();
        v["results"].as_object_mut().unwrap().remove("write");
        assert_eq!(Run::from_value(&v).unwrap_err().0, "results.write: missing");
    }

    #[test]
    fn wrong_types_are_errors() {
        let mut v = fixture();
        v["results"]["read"]["a"]["lat_p99_us_median"] = json!("1.5 ms");
        assert_eq!(
            Run::from_value(&v).unwrap_err().0,
            "results.read.a.lat_p99_us_median: expected a non-negative number, found a string"
        );

        let mut v = fixture();
        v["results"]["read"]["a"]["rps_all"] = json!([]);
        assert!(Run::from_value(&v)
            .unwrap_err()
            .0
            .starts_with("results.read.a.rps_all: empty"));

        let mut v = fixture();
        v["servers"] = json!([]);
        assert!(Run::from_value(&v)
            .unwrap_err()
            .0
            .contains("nothing to chart"));

        assert!(Run::from_json_str("{\"meta\": ")
            .unwrap_err()
            .0
            .starts_with("not valid JSON"));
        assert_eq!(
            Run::from_json_str("[]").unwrap_err().0,
            "(top level): expected an object, found an array"
        );
    }
}
