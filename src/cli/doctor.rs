//! `sesame doctor`.

use std::process::ExitCode;

use serde_json::json;
use sesame::Config;

use super::Output;

/// Prints one line per finding, with the fix for each problem. Exits 1 when any check
/// failed. Changes nothing: it neither migrates nor installs.
pub async fn run(config: Config, output: &Output) -> anyhow::Result<ExitCode> {
    let findings = sesame::doctor::diagnose(&config).await;
    let healthy = findings.iter().all(|finding| finding.ok);
    let mut text = String::new();
    for finding in &findings {
        let mark = if finding.ok { "ok     " } else { "PROBLEM" };
        text.push_str(&format!("{mark} {:<8} {}", finding.check, finding.message));
        if let Some(fix) = &finding.fix {
            text.push_str(&format!(" -> fix: {fix}"));
        }
        text.push('\n');
    }
    output.print(
        &json!({"healthy": healthy, "findings": findings}),
        text.trim_end(),
    );
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
