//! deploy/ checked against the real tools and the real proxy: the alert rules with
//! `promtool check rules` and `promtool test rules`; every metric the alert rules and the
//! Grafana dashboard use against a live scrape of a running pgvigil; the systemd unit with
//! `systemd-analyze verify`; logrotate's shipped config run by the real logrotate against a
//! running pgvigil under load; and the container, compose, unit, chart and logrotate files
//! agreeing with the reference config on ports, paths and flags.
//!
//! Container images cannot be pulled here, so the Dockerfile and compose file are checked
//! as text against the config rather than run.

mod common;

use common::{cluster, psql, wait_until, Proxy, ProxyOptions};
use pgvigil::config::ConfigFile;
use pgvigil::demo::cluster::Cluster;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Runs a command, panicking with its output unless it succeeds; returns stdout+stderr.
fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed? .ci/run installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// Every `pgvigil_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("pgvigil_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The reference config, parsed by pgvigil's own config types (unknown keys refused).
fn reference(rel: &str) -> ConfigFile {
    toml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let dir = deploy().join("prometheus");
    let out = run_ok(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(dir.join("alerts.yml")),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let out = run_ok(Command::new("promtool").current_dir(&dir).args([
        "test",
        "rules",
        "alerts_test.yml",
    ]));
    assert!(out.contains("SUCCESS"), "{out}");
    // Every rule has at least one test that expects it to fire.
    let rules = read("prometheus/alerts.yml");
    let tests = read("prometheus/alerts_test.yml");
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            if name == "PgvigilDown" {
                assert!(tests.contains("alertname: PgvigilDown"));
                continue;
            }
            assert!(
                tests.contains(&format!(
                    "alertname: {name}\n        exp_alerts:\n          - "
                )),
                "{name} has no firing test"
            );
        }
    }
    // The compose Prometheus config, with the rules where the container mounts them.
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(dir.join("alerts.yml"), tmp.path().join("alerts.yml")).expect("copy");
    let cfg = read("prometheus/prometheus.yml").replace(
        "/etc/prometheus/alerts.yml",
        &tmp.path().join("alerts.yml").display().to_string(),
    );
    std::fs::write(tmp.path().join("prometheus.yml"), cfg).expect("write");
    run_ok(
        Command::new("promtool")
            .args(["check", "config"])
            .arg(tmp.path().join("prometheus.yml")),
    );
}

#[test]
fn dashboard_and_alert_metrics_exist_in_a_live_scrape() {
    // With [cluster] (a Redis that is not there: the link's series exist all the same).
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            extra: format!(
                "[cluster]\nredis_url = \"redis://127.0.0.1:{}\"\n[rules]\nenable = [\"deny-alter-system\"]\n",
                common::free_port()
            ),
            ..ProxyOptions::default()
        },
    );
    // Traffic that makes every lazily registered series appear: a login, statements, a
    // failed login and a finding.
    let conn = proxy.conninfo("postgres", "x", "postgres", "sslmode=disable");
    let (ok, _, err) = psql(&conn, "select length(pg_read_file('PG_VERSION'))");
    assert!(ok, "{err}");
    let _ = psql(
        &proxy.conninfo("scram_user", "wrong", "postgres", "sslmode=disable"),
        "select 1",
    );
    // And a denied statement.
    let (ok, _, _) = psql(&conn, "alter system set work_mem = '8MB'");
    assert!(!ok, "ALTER SYSTEM was not denied");
    proxy.wait_finding("dangerous-function", |_| true);
    let scrape = proxy.metrics();
    let live: BTreeSet<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/pgvigil.json")).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut exprs = String::new();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_i64().expect("id")), "duplicate id");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    let used = metric_names(&exprs);
    // What the issue asks the dashboard to show.
    for want in [
        "pgvigil_client_connections",
        "pgvigil_statements_total",
        "pgvigil_auth_failures_total",
        "pgvigil_findings_total",
        "pgvigil_audit_queue_depth",
        "pgvigil_outbox_depth",
        "pgvigil_statement_duration_seconds_bucket",
        "pgvigil_upstream_connect_seconds_bucket",
    ] {
        assert!(used.contains(want), "the dashboard does not show {want}");
    }
    let missing: Vec<&String> = used.iter().filter(|n| !live.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "dashboard metrics not exported: {missing:?}"
    );

    let rules = metric_names(&read("prometheus/alerts.yml"));
    assert!(rules.len() >= 8, "{rules:?}");
    let missing: Vec<&String> = rules.iter().filter(|n| !live.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "alert rule metrics not exported: {missing:?}"
    );
    // The rules' label values exist too.
    for (metric, label) in [
        ("pgvigil_audit_events_total{", "result=\"dropped\""),
        ("pgvigil_audit_events_total{", "result=\"failed\""),
        ("pgvigil_connections_total{", "result=\"upstream_error\""),
        ("pgvigil_findings_total{", "rule_id=\"dangerous-function\""),
    ] {
        assert!(
            scrape
                .lines()
                .any(|l| l.starts_with(metric) && l.contains(label)),
            "no {metric}{label} series"
        );
    }
}

#[test]
fn systemd_unit_verifies_and_agrees_with_the_config() {
    let unit = read("systemd/pgvigil.service");
    let cfg = reference("pgvigil.toml");
    // systemd-analyze checks the unit as systemd would load it (with the binary it names
    // swapped for the one under test, which exists here); unknown keys are errors here.
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("pgvigil.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/pgvigil", env!("CARGO_BIN_EXE_pgvigil")),
    )
    .expect("write");
    let out = run_ok(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(
        !out.contains("Unknown") && !out.contains("ignoring"),
        "{out}"
    );

    let key = |k: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        key("ExecStart"),
        ["/usr/local/bin/pgvigil run --config /etc/pgvigil/pgvigil.toml"]
    );
    assert_eq!(key("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DynamicUser", "yes"),
    ] {
        assert_eq!(key(k), [v], "{k}");
    }
    let writable: Vec<String> = key("ReadWritePaths")
        .join(" ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for file in [
        PathBuf::from(&cfg.audit.log),
        cfg.alerts.file.path.clone(),
        cfg.alerts.outbox_dir.join("x"),
    ] {
        let dir = file.parent().expect("parent").display().to_string();
        assert!(
            writable.iter().any(|w| dir.starts_with(w.as_str())),
            "{} is not writable under the unit ({writable:?})",
            file.display()
        );
    }
    let nofile: usize = key("LimitNOFILE")[0].parse().expect("LimitNOFILE");
    assert!(nofile >= 2 * cfg.listen.max_client_conn + cfg.listen.max_startup_conn + 64);
    let stop = humantime::parse_duration(&key("TimeoutStopSec")[0]).expect("TimeoutStopSec");
    assert!(
        stop > cfg.listen.shutdown_timeout,
        "stop timeout shorter than the drain"
    );
}

#[test]
fn container_compose_chart_and_logrotate_agree_with_the_config() {
    let cfg = reference("pgvigil.toml");
    let compose_cfg = reference("compose/pgvigil.toml");
    let (port, metrics) = (
        cfg.listen.addr.port(),
        cfg.metrics.listen.expect("metrics").port(),
    );
    assert_eq!(compose_cfg.listen.addr.port(), port);
    assert_eq!(compose_cfg.metrics.listen.map(|a| a.port()), Some(metrics));
    assert_eq!(compose_cfg.audit.log, cfg.audit.log);
    assert_eq!(compose_cfg.alerts.outbox_dir, cfg.alerts.outbox_dir);
    assert!(cfg.metrics.listen.is_some_and(|a| a.ip().is_unspecified()));

    let docker = read("container/Dockerfile");
    assert!(docker.contains(&format!("EXPOSE {port} {metrics}")));
    assert!(docker.contains(r#"CMD ["run", "--config", "/etc/pgvigil/pgvigil.toml"]"#));
    assert!(docker.contains("HEALTHCHECK"));
    assert!(docker.contains("pgvigil\", \"health\""));
    assert!(docker.contains("USER 65532:65532") && docker.contains(":nonroot"));
    assert!(docker.contains("COPY deploy/pgvigil.toml /etc/pgvigil/pgvigil.toml"));
    for dir in ["/var/log/pgvigil", "/var/lib/pgvigil"] {
        assert!(docker.contains(&format!("\"{dir}\"")), "VOLUME {dir}");
    }
    assert!(Path::new(&cfg.audit.log).starts_with("/var/log/pgvigil"));
    assert!(cfg.alerts.outbox_dir.starts_with("/var/lib/pgvigil"));
    // The flags the image runs with exist in the binary.
    let help = run_ok(Command::new(env!("CARGO_BIN_EXE_pgvigil")).args(["health", "--help"]));
    assert!(help.contains("--config") && help.contains("--ready"));

    let compose = read("compose.yaml");
    for want in [
        format!("\"{port}:{port}\""),
        format!("\"{metrics}:{metrics}\""),
        "./compose/pgvigil.toml:/etc/pgvigil/pgvigil.toml:ro".into(),
        "./prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro".into(),
        "./grafana/pgvigil.json:/var/lib/grafana/dashboards/pgvigil.json:ro".into(),
        "dockerfile: deploy/container/Dockerfile".into(),
        "ssl=on".into(),
        "\"health\", \"--config\", \"/etc/pgvigil/pgvigil.toml\"".into(),
    ] {
        assert!(compose.contains(&want), "compose.yaml lacks {want}");
    }
    assert_eq!(compose_cfg.upstream.host, "postgres");
    assert_eq!(compose_cfg.upstream.sslmode.as_str(), "verify-full");
    let prom = read("prometheus/prometheus.yml");
    assert!(prom.contains(&format!("pgvigil:{metrics}")));
    let provisioning = read("grafana/provisioning/dashboards/pgvigil.yml");
    assert!(provisioning.contains("/var/lib/grafana/dashboards"));

    let values = read("helm/pgvigil/values.yaml");
    assert!(values.contains(&format!("postgres: {port}")));
    assert!(values.contains(&format!("metrics: {metrics}")));
    let configmap = read("helm/pgvigil/templates/configmap.yaml");
    assert!(configmap.contains("addr = \"0.0.0.0:{{ .Values.ports.postgres }}\""));
    assert!(configmap.contains("listen = \"0.0.0.0:{{ .Values.ports.metrics }}\""));
    let deployment = read("helm/pgvigil/templates/deployment.yaml");
    for want in [
        "httpGet: { path: /healthz, port: metrics }",
        "httpGet: { path: /readyz, port: metrics }",
        "args: [\"run\", \"--config\", \"/etc/pgvigil/pgvigil.toml\"]",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "mountPath: /var/log/pgvigil",
        "mountPath: /var/lib/pgvigil",
        "secretName: {{ .Values.tls.secretName }}",
    ] {
        assert!(deployment.contains(want), "deployment lacks {want}");
    }
    for t in ["service", "pdb", "servicemonitor", "hpa", "configmap"] {
        assert!(deploy()
            .join(format!("helm/pgvigil/templates/{t}.yaml"))
            .exists());
    }

    let logrotate = read("logrotate/pgvigil");
    assert!(logrotate.contains(&format!(
        "{} {} {{",
        cfg.audit.log,
        cfg.alerts.file.path.display()
    )));
    assert!(logrotate.contains("SIGUSR1") && !logrotate.contains("\n    copytruncate"));
}

#[test]
fn reference_config_passes_pgvigil_check() {
    // The reference config with its absolute paths moved into a temporary folder that has
    // the certificates it names: `pgvigil check` validates it as `run` would.
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().display().to_string();
    let certs = pgvigil::certs::write_dev_certs(&tmp.path().join("etc/pgvigil/certs"), &[], "x")
        .expect("certs");
    std::fs::copy(
        &certs.ca_cert,
        tmp.path().join("etc/pgvigil/certs/upstream-ca.crt"),
    )
    .expect("copy");
    for rel in ["pgvigil.toml", "compose/pgvigil.toml"] {
        let text = read(rel)
            .replace("/etc/pgvigil", &format!("{root}/etc/pgvigil"))
            .replace("/var/", &format!("{root}/var/"));
        let cfg = tmp.path().join("check.toml");
        std::fs::write(&cfg, text).expect("write");
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_pgvigil"))
                .args(["check", "--config"])
                .arg(&cfg),
        );
    }
}

#[test]
fn shipped_logrotate_config_rotates_a_running_pgvigil_without_loss() {
    // The shipped file with the test's paths and a postrotate that signals this proxy.
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            audit: "log_noise = true".into(),
            ..ProxyOptions::default()
        },
    );
    let pid = proxy.pid().expect("pid");
    let dir = proxy.dir.path();
    let shipped = read("logrotate/pgvigil");
    let conf = shipped
        .replace(
            "/var/log/pgvigil/audit.jsonl",
            &proxy.audit_path.display().to_string(),
        )
        .replace(
            "/var/log/pgvigil/findings.jsonl",
            &dir.join("findings.jsonl").display().to_string(),
        )
        .lines()
        .map(|l| {
            if l.contains("systemctl kill") {
                format!("        kill -USR1 {pid}")
            } else if l.contains("pkill") {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let conf_path = dir.join("logrotate.conf");
    std::fs::write(&conf_path, conf).expect("write");
    let conn = proxy.conninfo("postgres", "x", "postgres", "sslmode=disable");
    let tag = |from: u64| -> String {
        (from..from + 200)
            .map(|i| format!("select 'lr', {i};\n"))
            .collect()
    };
    let (ok, _, err) = psql(&conn, &tag(0));
    assert!(ok, "{err}");
    wait_until("200 written", Duration::from_secs(20), || {
        std::fs::read_to_string(&proxy.audit_path)
            .unwrap_or_default()
            .matches("select 'lr'")
            .count()
            >= 200
    });
    run_ok(
        Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(dir.join("logrotate.state"))
            .arg(&conf_path),
    );
    let (ok, _, err) = psql(&conn, &tag(200));
    assert!(ok, "{err}");
    // The rotated file (dateext, not yet compressed: delaycompress) and the new one.
    let rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit.jsonl-"))
        })
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    wait_until("400 written", Duration::from_secs(20), || {
        let a = std::fs::read_to_string(&rotated[0]).unwrap_or_default();
        let b = std::fs::read_to_string(&proxy.audit_path).unwrap_or_default();
        a.matches("select 'lr'").count() + b.matches("select 'lr'").count() >= 400
    });
    let count = |p: &Path, range: std::ops::Range<u64>| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        range
            .filter(|i| {
                text.contains(&format!("select 'lr', {i}\""))
                    || text.contains(&format!("select 'lr', {i};"))
            })
            .count()
    };
    assert_eq!(
        count(&rotated[0], 0..200),
        200,
        "before: all in the rotated file"
    );
    assert_eq!(
        count(&rotated[0], 200..400),
        0,
        "nothing after in the rotated file"
    );
    assert_eq!(
        count(&proxy.audit_path, 200..400),
        200,
        "after: all in the new file"
    );
    assert_eq!(count(&proxy.audit_path, 0..200), 0, "nothing duplicated");
}
