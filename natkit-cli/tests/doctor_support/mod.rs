//! Running `natkit doctor` in a lab's LAN host, for the doctor's lab tests: its
//! `--json` document validated against `docs/doctor.schema.json`.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use natkit_lab::{Lab, Node};
use serde_json::Value;

pub(crate) fn natkit() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_natkit"))
}

/// Runs `natkit doctor ARGS` in the LAN host with stdout and stderr piped; its
/// output and wall time.
pub(crate) fn doctor(lab: &Lab, args: &[&str]) -> (Output, Duration) {
    let mut argv = vec![natkit().display().to_string(), "doctor".into()];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let started = Instant::now();
    let out = lab
        .exec_timeout(Node::Lan, &argv, Duration::from_secs(60))
        .expect("natkit doctor runs");
    (out, started.elapsed())
}

/// `natkit doctor --json ARGS`: the document (schema-checked), the output and the
/// wall time.
pub(crate) fn json(lab: &Lab, args: &[&str]) -> (Value, Output, Duration) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (out, took) = doctor(lab, &all);
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            natkit_lab::dump_output(&out)
        )
    });
    let schema: Value = serde_json::from_str(natkit_doctor::SCHEMA).expect("schema json");
    let validator = jsonschema::draft202012::new(&schema).expect("schema");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}\n{doc:#}");
    (doc, out, took)
}

/// The findings' codes, in order.
pub(crate) fn codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}
