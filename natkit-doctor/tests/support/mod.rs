//! What the doctor's lab tests share: the LAN helper's run of the doctor,
//! printed for the test that started it.

use std::time::Instant;

/// Runs the doctor `runs` times in this process (a lab helper body) and prints,
/// after `mark`, the first report's text (`text LINE`, one per line) and every
/// report as `json {"ms": …, "report": …}`.
pub(crate) fn print_runs(config: &natkit_doctor::Config, mark: &str, runs: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for run in 0..runs {
        let started = Instant::now();
        let report = rt.block_on(natkit_doctor::diagnose(config.clone()));
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if run == 0 {
            let text = natkit_doctor::render::text(&report, natkit_doctor::render::Style::PLAIN);
            for line in text.lines() {
                println!("{mark}text {line}");
            }
        }
        println!(
            "{mark}json {}",
            serde_json::json!({ "ms": ms, "report": natkit_doctor::render::json(&report) })
        );
    }
    rt.shutdown_background();
}

/// Fails with every violation when `report` does not follow
/// `docs/doctor.schema.json`.
pub(crate) fn assert_schema(report: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(natkit_doctor::SCHEMA).expect("schema json");
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "report fails the schema: {errors:#?}\n{report:#}"
    );
}

/// The report's finding with `code`.
pub(crate) fn finding<'a>(
    report: &'a serde_json::Value,
    code: &str,
) -> Option<&'a serde_json::Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == code)
}
