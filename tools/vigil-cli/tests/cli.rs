//! `vigil`, the built binary, end to end against a real moto server started by vigil-local:
//! orders, zones and the geohash index, tags in IoT, alerts produced by the ingest handler,
//! and evidence bundles. Each test has its own emulator.

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use vigil_aws::metrics::MemoryMetrics;
use vigil_aws::ports::{AdminStore, AuditLog, IngestStore};
use vigil_aws::{Aws, Config, DynamoStore};
use vigil_core::{Fix, OrderId, TagId, ZoneId, ZoneKey};
use vigil_local::Emulator;

const T0: i64 = 1_764_432_000_000;
const HOME: (f64, f64) = (51.5, -0.12);

struct Env {
    emulator: Emulator,
    config: Config,
    store: DynamoStore,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

async fn env(name: &str) -> Env {
    let emulator = Emulator::start().await.expect("emulator starts");
    let vars: BTreeMap<String, String> = emulator.env_vars().into_iter().collect();
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&emulator.sdk_config()),
        &config,
    );
    let dir = std::env::temp_dir().join(format!("vigil-cli-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Env {
        emulator,
        config,
        store,
        dir,
    }
}

impl Env {
    fn vigil(&self, args: &[&str]) -> Run {
        self.vigil_as("met", args)
    }

    /// `vigil` as an operator of `force` (or `national`).
    fn vigil_as(&self, force: &str, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .env_remove("AWS_PROFILE")
            .envs(self.emulator.env_vars())
            .env(
                "VIGIL_OPERATOR",
                if force == "met" {
                    "op-7".to_owned()
                } else {
                    format!("op-{force}")
                },
            )
            .env("VIGIL_FORCE", force)
            .output()
            .expect("vigil runs");
        Run {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn ok(&self, args: &[&str]) -> Run {
        self.ok_as("met", args)
    }

    fn ok_as(&self, force: &str, args: &[&str]) -> Run {
        let r = self.vigil_as(force, args);
        assert_eq!(
            r.code, 0,
            "vigil {args:?}\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r
    }

    fn fails(&self, code: i32, args: &[&str]) -> String {
        self.fails_as("met", code, args)
    }

    fn fails_as(&self, force: &str, code: i32, args: &[&str]) -> String {
        let r = self.vigil_as(force, args);
        assert_eq!(
            r.code, code,
            "vigil {args:?}\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stderr
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

const ORDER_JSON: &str = r#"{"order_id": "o-json", "tag_id": "tag-1", "time_zone": "Europe/London",
  "victim": {"victim_id": "v1", "phone": "+447700900123", "language": "en"},
  "valid_from": "2026-01-01", "valid_until": "2036-01-01T00:00:00Z",
  "zones": [{"zone_id": "home", "kind": "home", "circle": {"lat": 51.5, "lon": -0.12, "radius_m": 100}, "buffer_m": 500}]}"#;

const ORDER_YAML: &str = "order_id: o-yaml
tag_id: tag-2
victim:
  victim_id: v2
  phone: \"+34600123456\"
  language: es
policy:
  cooldown_s: 600
";

#[tokio::test]
async fn orders_from_files_and_flags_with_clear_validation_errors() {
    let e = env("orders").await;
    let json_file = e.file("order.json", ORDER_JSON);
    let created = e.ok(&["orders", "create", "--file", &json_file]);
    assert!(created.stdout.contains("+44…23"), "{}", created.stdout);
    assert!(
        !created.stdout.contains("7700900123"),
        "phone masked: {}",
        created.stdout
    );
    let yaml_file = e.file("order.yaml", ORDER_YAML);
    e.ok(&["orders", "create", "--file", &yaml_file]);
    e.ok(&[
        "orders",
        "create",
        "--order-id",
        "o-flags",
        "--tag",
        "tag-3",
        "--victim-id",
        "v3",
        "--phone-file",
        &e.file("phone-1.txt", "+33612345678\n"),
        "--language",
        "fr",
    ]);
    // The phone from standard input (`-`): never an argument, where `ps`, shell history and
    // CI logs would keep it (issue 16.13).
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "orders",
            "create",
            "--order-id",
            "o-stdin",
            "--tag",
            "tag-4",
            "--victim-id",
            "v4",
            "--phone-file",
            "-",
            "--language",
            "en",
        ])
        .env_remove("AWS_PROFILE")
        .envs(e.emulator.env_vars())
        .env("VIGIL_OPERATOR", "op-7")
        .env("VIGIL_FORCE", "met")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"+447700900199\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_stdin = e
        .store
        .get_order(&OrderId::new("o-stdin").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from_stdin.victim.phone.e164(), "+447700900199");
    let refused = e.vigil(&[
        "orders",
        "create",
        "--order-id",
        "o-argv",
        "--tag",
        "tag-5",
        "--victim-id",
        "v5",
        "--phone",
        "+447700900123",
        "--language",
        "en",
    ]);
    assert_ne!(refused.code, 0, "a phone on the command line is refused");
    assert!(refused.stderr.contains("--phone"), "{}", refused.stderr);
    let empty = e.file("empty-phone.txt", "\n");
    let err = e.fails(
        1,
        &[
            "orders",
            "create",
            "--order-id",
            "o-empty",
            "--tag",
            "tag-6",
            "--victim-id",
            "v6",
            "--phone-file",
            &empty,
            "--language",
            "en",
        ],
    );
    assert!(err.contains("no phone number"), "{err}");

    let stored = e
        .store
        .get_order(&OrderId::new("o-yaml").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.policy.cooldown_s, 600);
    assert_eq!(stored.victim.phone.e164(), "+34600123456");
    let zones = e
        .store
        .zones_of_order(&OrderId::new("o-json").unwrap())
        .await
        .unwrap();
    assert_eq!(zones.len(), 1, "the file's zone was created");

    let shown = e.ok(&["--json", "orders", "show", "o-json"]).json();
    assert_eq!(shown["order"]["victim"]["phone"], "+44…23");
    assert_eq!(shown["zones"], serde_json::json!(["home"]));
    assert_eq!(shown["order"]["valid_from"], "2026-01-01T00:00:00Z");
    let revealed = e
        .ok(&["--json", "orders", "show", "o-json", "--reveal"])
        .json();
    assert_eq!(revealed["order"]["victim"]["phone"], "+447700900123");
    let list = e.ok(&["--json", "orders", "list"]).json();
    assert_eq!(list["orders"].as_array().unwrap().len(), 4);
    assert!(e.ok(&["orders", "list"]).stdout.contains("o-flags"));

    // Validation: exit 1, the field named, nothing written.
    let bad = |from: &str, to: &str, name: &str| {
        let f = e.file(
            name,
            &ORDER_JSON.replace(from, to).replace("o-json", "o-bad"),
        );
        e.fails(1, &["orders", "create", "--file", &f])
    };
    let err = bad("+447700900123", "07700900123", "bad-phone.json");
    assert!(
        err.contains("victim.phone") && err.contains("E.164"),
        "{err}"
    );
    let err = bad("\"en\"", "\"pt\"", "bad-lang.json");
    assert!(
        err.contains("victim.language") && err.contains("supported: en, es, fr, de"),
        "{err}"
    );
    let err = bad("Europe/London", "Europe/Londn", "bad-tz.json");
    assert!(err.contains("time_zone") && err.contains("IANA"), "{err}");
    let err = bad("2026-01-01\"", "01/01/2026\"", "bad-date.json");
    assert!(
        err.contains("valid_from") && err.contains("is not a date"),
        "{err}"
    );
    let err = e.fails(
        1,
        &[
            "orders",
            "create",
            "--order-id",
            "o-x",
            "--tag",
            "t",
            "--victim-id",
            "v",
            "--phone-file",
            &e.file("phone-2.txt", "+447700900123\n"),
            "--language",
            "xx",
        ],
    );
    assert!(err.contains("victim.language"), "{err}");
    let yaml_bad = e.file(
        "bad.yaml",
        &ORDER_YAML
            .replace("o-yaml", "o-bad")
            .replace("language: es", "language: [es]"),
    );
    let err = e.fails(1, &["orders", "create", "--file", &yaml_bad]);
    assert!(err.contains("victim.language"), "{err}");
    assert!(
        e.store
            .get_order(&OrderId::new("o-bad").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let err = e.fails(1, &["orders", "create", "--file", &json_file]);
    assert!(err.contains("exists already"), "{err}");
    let err = e.fails(1, &["orders", "frobnicate"]);
    assert!(err.contains("unrecognized subcommand"), "{err}");

    e.fails(2, &["orders", "show", "nope"]);
    let ended = e
        .ok(&[
            "--json",
            "orders",
            "end",
            "o-yaml",
            "--at",
            "2030-01-01T00:00:00Z",
        ])
        .json();
    assert_eq!(ended["order"]["valid_until"], "2030-01-01T00:00:00Z");
    assert_eq!(ended["in_force"], true);
    e.fails(2, &["orders", "end", "nope"]);

    // Errors as JSON for scripts; AWS errors are exit 3 and say whether to retry.
    let r = e.vigil(&["--json", "orders", "show", "nope"]);
    let body: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(body["error"]["kind"], "not_found");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["orders", "list"])
        .env("VIGIL_OPERATOR", "op-7")
        .env("VIGIL_FORCE", "met")
        .envs(e.emulator.env_vars())
        .env("VIGIL_STAGE", "nostage")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("retrying will not help"), "{stderr}");

    let help = e.ok(&["--help"]).stdout;
    assert!(
        help.contains("Exit codes") && help.contains("4  evidence verification failed"),
        "{help}"
    );
    for cmd in [
        ["orders", "create"],
        ["zones", "add"],
        ["tags", "register"],
        ["tags", "csr"],
        ["alerts", "ack"],
        ["evidence", "verify"],
    ] {
        let h = e.ok(&[cmd[0], cmd[1], "--help"]).stdout;
        assert!(h.contains("Example"), "{cmd:?}: {h}");
    }
}

fn key(zone: &str) -> ZoneKey {
    ZoneKey::new(OrderId::new("o1").unwrap(), ZoneId::new(zone).unwrap())
}

async fn cells_of(e: &Env, id: &str) -> Vec<String> {
    let z = e.store.get_zone(&key(id)).await.unwrap().unwrap();
    vigil_core::index::zone_cells(&z)
        .iter()
        .map(|c| c.key())
        .collect()
}

#[tokio::test]
async fn zones_keep_the_geohash_index_consistent() {
    let e = env("zones").await;
    e.ok(&[
        "orders",
        "create",
        "--order-id",
        "o1",
        "--tag",
        "tag-1",
        "--victim-id",
        "v1",
        "--phone-file",
        &e.file("phone-3.txt", "+447700900123\n"),
        "--language",
        "en",
    ]);
    e.ok(&[
        "zones",
        "add",
        "--zone-id",
        "home",
        "--order",
        "o1",
        "--kind",
        "home",
        "--circle",
        "51.5,-0.12,150",
        "--buffer",
        "500",
    ]);
    let geojson = e.file(
        "park.geojson",
        r#"{"type": "FeatureCollection", "features": [{"type": "Feature",
        "properties": {"name": "park"}, "geometry": {"type": "Polygon", "coordinates":
        [[[-0.15, 51.51], [-0.14, 51.51], [-0.14, 51.52], [-0.15, 51.52], [-0.15, 51.51]]]}}]}"#,
    );
    let added = e
        .ok(&[
            "--json",
            "zones",
            "add",
            "--zone-id",
            "park",
            "--order",
            "o1",
            "--geojson",
            &geojson,
            "--buffer",
            "200",
            "--schedule",
            "mon-fri 08:00-18:00",
            "--time-zone",
            "Europe/London",
            "--valid-until",
            "2036-01-01",
        ])
        .json();
    assert_eq!(added["zone"]["polygon"].as_array().unwrap().len(), 5);
    assert_eq!(added["zone"]["valid_until"], "2036-01-01T00:00:00Z");
    e.ok(&[
        "zones",
        "add",
        "--zone-id",
        "old",
        "--order",
        "o1",
        "--circle",
        "51.49,-0.11,100",
        "--valid-from",
        "2020-01-01T00:00:00Z",
        "--valid-until",
        "2021-01-01T00:00:00Z",
    ]);
    let err = e.fails(
        2,
        &[
            "zones",
            "add",
            "--zone-id",
            "z",
            "--order",
            "nope",
            "--circle",
            "51.5,-0.12,150",
        ],
    );
    assert!(err.contains("order nope"), "{err}");
    let err = e.fails(
        1,
        &[
            "zones",
            "add",
            "--zone-id",
            "z",
            "--order",
            "o1",
            "--circle",
            "51.5,-0.12,150",
            "--schedule",
            "mon-fri 08:00-18:00",
            "--time-zone",
            "Mars/Base",
        ],
    );
    assert!(err.contains("IANA"), "{err}");
    e.fails(
        1,
        &[
            "zones",
            "add",
            "--zone-id",
            "z",
            "--order",
            "o1",
            "--circle",
            "95,0,150",
        ],
    );

    let list = e.ok(&["--json", "zones", "list", "--order", "o1"]).json();
    let ids: Vec<&str> = list["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zone"]["zone_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["home", "old", "park"]);
    assert!(e.ok(&["zones", "list"]).stdout.contains("polygon 5 pts"));

    let home_cells = cells_of(&e, "home").await;
    let old_cells = cells_of(&e, "old").await;
    assert!(!home_cells.is_empty());
    for c in &home_cells {
        assert!(
            e.store
                .zone_cell_entries(c)
                .await
                .unwrap()
                .contains(&key("home"))
        );
    }
    // The same id again for the same order: refused without --replace (exit 5), so an
    // operator never replaces a zone by accident.
    let again = [
        "zones",
        "add",
        "--zone-id",
        "home",
        "--order",
        "o1",
        "--circle",
        "51.5,-0.12,150",
    ];
    let err = e.fails(5, &again);
    assert!(err.contains("--replace"), "{err}");
    e.fails(2, &["zones", "remove", "--order", "o2", "home"]);
    e.ok(&["zones", "remove", "--order", "o1", "home"]);
    for c in &home_cells {
        let left = e.store.zone_cell_entries(c).await.unwrap();
        assert!(!left.contains(&key("home")), "{c}: {left:?}");
    }
    e.fails(2, &["zones", "remove", "--order", "o1", "home"]);

    let pruned = e.ok(&["zones", "prune-expired"]).stdout;
    assert!(pruned.contains("old"), "{pruned}");
    for c in &old_cells {
        let left = e.store.zone_cell_entries(c).await.unwrap();
        assert!(!left.contains(&key("old")), "{c}: {left:?}");
    }
    let list = e.ok(&["--json", "zones", "list"]).json();
    assert_eq!(list["zones"].as_array().unwrap().len(), 1);

    // Every change is in the order's audit chain, with who made it (issue 16.6): the local
    // stand-in for the IAM identity, never a flag. No phone number, no coordinates.
    let o1 = OrderId::new("o1").unwrap();
    let chain = e.store.read(&o1).await.unwrap();
    let changes: Vec<(String, String)> = chain
        .iter()
        .filter(|r| r.kind == "admin_change")
        .map(|r| {
            assert_eq!(r.detail["operator"], "local:op-7", "{}", r.detail);
            let zone = r.detail["change"]["zone_id"].as_str().unwrap_or("");
            (
                r.detail["action"].as_str().unwrap().to_owned(),
                zone.to_owned(),
            )
        })
        .collect();
    for expected in [
        ("order_created", ""),
        ("zone_added", "home"),
        ("zone_removed", "home"),
        ("zone_pruned", "old"),
    ] {
        assert!(
            changes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {changes:?}"
        );
    }
    let created = chain
        .iter()
        .find(|r| r.detail["action"] == "order_created")
        .unwrap();
    let mac = created.detail["change"]["phone_mac"].as_str().unwrap();
    assert!(
        mac.len() >= 32 && mac.chars().all(|c| c.is_ascii_hexdigit()),
        "{mac}"
    );
    let text = serde_json::to_string(&chain).unwrap();
    assert!(
        !text.contains("7700900123") && !text.contains("51.5"),
        "{text}"
    );
    vigil_core::audit::verify_chain(&chain).unwrap();

    // Without an identity no change is made: locally VIGIL_OPERATOR must name the operator.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["zones", "remove", "--order", "o1", "park"])
        .env_remove("AWS_PROFILE")
        .envs(e.emulator.env_vars())
        .env_remove("VIGIL_OPERATOR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("VIGIL_OPERATOR"), "{stderr}");
    assert_eq!(e.store.read(&o1).await.unwrap().len(), chain.len());
}

/// The CSR in `pem` with one bit of its signature flipped: it still parses, but its
/// signature no longer verifies.
fn with_a_bad_signature(pem: &str) -> String {
    use base64::Engine;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let mut der = block.contents;
    *der.last_mut().unwrap() ^= 0x01;
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n")
}

/// Every certificate id in the emulator's IoT.
async fn certificate_ids(iot: &aws_sdk_iot::Client) -> Vec<String> {
    let listed = iot.list_certificates().send().await.unwrap();
    listed
        .certificates()
        .iter()
        .filter_map(|c| c.certificate_id().map(str::to_owned))
        .collect()
}

fn files_in(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn tags_register_from_a_csr_roll_back_on_failure_deactivate_and_assign_in_iot() {
    let e = env("tags").await;
    let iot = aws_sdk_iot::Client::new(&e.emulator.sdk_config());
    let policy = e.emulator.iot_policy_name("tag").unwrap();
    let (key, csr) = (e.path("sim/tag-1.key"), e.path("sim/tag-1.csr.pem"));
    let made = e
        .ok(&[
            "--json",
            "tags",
            "csr",
            "tag-1",
            "--key-out",
            &key,
            "--csr-out",
            &csr,
        ])
        .json();
    assert_eq!(made["csr"], csr.as_str());
    let key_mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    let creds = e.path("creds");

    // A failure part way (the stage's tag policy is missing, so AttachPolicy fails after the
    // thing and the certificate were made) is rolled back, and the same command then succeeds.
    let document = iot
        .get_policy()
        .policy_name(&policy)
        .send()
        .await
        .unwrap()
        .policy_document()
        .unwrap()
        .to_owned();
    iot.delete_policy()
        .policy_name(&policy)
        .send()
        .await
        .unwrap();
    let register = [
        "--json",
        "tags",
        "register",
        "tag-1",
        "--csr",
        &csr,
        "--out-dir",
        &creds,
    ];
    let r = e.vigil(&register);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let err: Value = serde_json::from_str(&r.stderr).unwrap();
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("AttachPolicy {policy} to "))
            && message.contains("rolled back: nothing it made is left"),
        "{message}"
    );
    assert_eq!(certificate_ids(&iot).await, Vec::<String>::new());
    assert!(
        iot.describe_thing()
            .thing_name("tag-1")
            .send()
            .await
            .is_err()
    );
    assert_eq!(files_in(&creds), Vec::<String>::new());
    iot.create_policy()
        .policy_name(&policy)
        .policy_document(document)
        .send()
        .await
        .unwrap();

    let reg = e.ok(&register).json();
    // Only the certificate is written: the private key never left the (simulated) tag.
    assert_eq!(files_in(&creds), ["tag-1.cert.pem"]);
    let cert_file = Path::new(&creds).join("tag-1.cert.pem");
    assert_eq!(reg["certificate_file"], cert_file.display().to_string());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&cert_file), 0o600);
    assert_eq!(mode(Path::new(&creds)), 0o700);
    let pem = std::fs::read_to_string(&cert_file).unwrap();
    assert!(!pem.contains("PRIVATE KEY"));
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = block.parse_x509().unwrap();
    let subject: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(subject, ["tag-1"], "IoT signed the tag's CSR");
    let cert_arn = reg["certificate_arn"].as_str().unwrap();
    iot.describe_thing()
        .thing_name("tag-1")
        .send()
        .await
        .unwrap();
    let principals = iot
        .list_thing_principals()
        .thing_name("tag-1")
        .send()
        .await
        .unwrap();
    assert_eq!(principals.principals(), [cert_arn]);
    let policies = iot
        .list_attached_policies()
        .target(cert_arn)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = policies
        .policies()
        .iter()
        .filter_map(|p| p.policy_name())
        .collect();
    assert_eq!(names, [policy.as_str()]);
    let cert_id = reg["certificate_id"].as_str().unwrap();
    assert_eq!(certificate_ids(&iot).await, [cert_id]);
    let status = |iot: aws_sdk_iot::Client, id: String| async move {
        iot.describe_certificate()
            .certificate_id(id)
            .send()
            .await
            .unwrap()
            .certificate_description()
            .unwrap()
            .status()
            .unwrap()
            .as_str()
            .to_owned()
    };
    assert_eq!(status(iot.clone(), cert_id.into()).await, "ACTIVE");

    let err = e.fails(
        1,
        &[
            "tags",
            "register",
            "tag-1",
            "--csr",
            &csr,
            "--out-dir",
            &e.path("other"),
        ],
    );
    assert!(
        err.contains("registered already") && err.contains("vigil tags deactivate"),
        "{err}"
    );
    // CSRs refused before anything is sent: one made for another tag, one whose signature
    // does not verify, and a private key given by mistake.
    let err = e.fails(
        1,
        &[
            "tags",
            "register",
            "tag-2",
            "--csr",
            &csr,
            "--out-dir",
            &creds,
        ],
    );
    assert!(
        err.contains("CSR for tag tag-1") && err.contains("not for tag tag-2"),
        "{err}"
    );
    let altered = e.file(
        "altered.csr.pem",
        &with_a_bad_signature(&std::fs::read_to_string(&csr).unwrap()),
    );
    let err = e.fails(
        1,
        &[
            "tags",
            "register",
            "tag-1",
            "--csr",
            &altered,
            "--out-dir",
            &creds,
        ],
    );
    assert!(err.contains("signature does not verify"), "{err}");
    let err = e.fails(
        1,
        &[
            "tags",
            "register",
            "tag-1",
            "--csr",
            &key,
            "--out-dir",
            &creds,
        ],
    );
    assert!(err.contains("holds a private key"), "{err}");
    assert!(
        iot.describe_thing()
            .thing_name("tag-2")
            .send()
            .await
            .is_err()
    );
    assert_eq!(certificate_ids(&iot).await, [cert_id]);
    assert_eq!(files_in(&creds), ["tag-1.cert.pem"]);

    let d = e.ok(&["--json", "tags", "deactivate", "tag-1"]).json();
    assert_eq!(d["certificates"], serde_json::json!([cert_id]));
    assert_eq!(status(iot.clone(), cert_id.into()).await, "INACTIVE");
    // A tag of no force is national administrators' alone; one IoT does not know is not found.
    e.fails(6, &["tags", "deactivate", "nope"]);
    assert_eq!(
        e.vigil_as("national", &["tags", "deactivate", "nope"]).code,
        2
    );

    e.ok(&[
        "orders",
        "create",
        "--order-id",
        "o1",
        "--tag",
        "tag-0",
        "--victim-id",
        "v1",
        "--phone-file",
        &e.file("phone-4.txt", "+447700900123\n"),
        "--language",
        "en",
    ]);
    let moved = e.ok(&["tags", "assign", "tag-1", "--order", "o1"]).stdout;
    assert!(moved.contains("from tag tag-0 to tag tag-1"), "{moved}");
    let o1 = OrderId::new("o1").unwrap();
    assert_eq!(
        e.store
            .get_order(&o1)
            .await
            .unwrap()
            .unwrap()
            .tag_id
            .as_str(),
        "tag-1"
    );
    let old = e
        .store
        .load_context(&TagId::new("tag-0").unwrap(), &[])
        .await
        .unwrap()
        .unwrap();
    assert!(old.orders.is_empty(), "old tag keeps no summary");
    let new = e
        .store
        .load_context(&TagId::new("tag-1").unwrap(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.orders[0].order_id, o1);
    e.fails(2, &["tags", "assign", "tag-1", "--order", "nope"]);
}

/// A fix delivered as the IoT rule would (ingest invoked in-process), then the alert queue
/// drained through the alert function, as Lambda's event source mapping would.
async fn publish_fix(e: &Env, seq: u64, north_m: f64) {
    let fix = Fix {
        tag_id: TagId::new("tag-1").unwrap(),
        seq,
        at_ms: T0 + seq as i64 * 60_000,
        lat: HOME.0 + north_m / 111_250.0,
        lon: HOME.1,
        accuracy_m: 10.0,
        speed_mps: None,
        heading_deg: None,
        battery_pct: None,
    };
    let aws = Aws {
        config: e.config.clone(),
        sdk: e.emulator.sdk_config(),
    };
    let ports = vigil_ingest::Ports::new(
        e.store.clone(),
        aws.queue().unwrap(),
        MemoryMetrics::default(),
    );
    let received = fix.at_ms + 200;
    let event =
        vigil_ingest::rule_event("tag-1", "fix", &vigil_core::fix::encode_fix(&fix), received);
    vigil_ingest::handle(event, &ports).await.unwrap();
    let alert = vigil_alert::Ports {
        store: e.store.clone(),
        notifier: aws.notifier().unwrap(),
        destination_mac: aws.destination_mac().unwrap(),
        metrics: MemoryMetrics::default(),
        commander: aws.commander(),
        sms_countries: e.config.sms_countries.clone(),
        forces: None,
    };
    let source = vigil_local::SqsEventSource::new(
        aws_sdk_sqs::Client::new(&aws.sdk),
        e.config.alerts_queue_url().unwrap().to_owned(),
        e.emulator.region(),
    );
    loop {
        let batch = source.receive(10, 0).await.unwrap();
        if batch.is_empty() {
            break;
        }
        let event = serde_json::from_value(batch.event.clone()).unwrap();
        let response = vigil_alert::handle_batch(event, &alert, received).await;
        source
            .complete(&batch, &serde_json::to_value(&response).unwrap())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn alerts_acknowledged_and_evidence_exported_and_verified() {
    let e = env("alerts").await;
    let f = e.file(
        "order.json",
        &ORDER_JSON.replace("\"valid_from\": \"2026-01-01\", ", ""),
    );
    e.ok(&["orders", "create", "--file", &f]);
    assert!(e.ok(&["alerts", "list"]).stdout.contains("no open alerts"));
    publish_fix(&e, 1, 0.0).await;

    let list = e.ok(&["--json", "alerts", "list"]).json();
    let alerts = list["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{list}");
    assert_eq!(alerts[0]["level"], "breach");
    assert_eq!(
        (
            alerts[0]["order_id"].as_str(),
            alerts[0]["zone_id"].as_str()
        ),
        (Some("o-json"), Some("home"))
    );
    assert_eq!(alerts[0]["acknowledged_by"], Value::Null);
    // The breach is urgent: unacknowledged, so it escalates until someone acknowledges it.
    let unacked = e
        .ok(&["--json", "alerts", "unacked", "--order", "o-json"])
        .json();
    let open = unacked["alerts"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{unacked}");
    assert_eq!(open[0]["zone_id"], "home");
    assert_eq!(open[0]["kinds"][0], "zone_breach");
    let breach_event = open[0]["event_id"].as_str().unwrap().to_owned();
    assert!(
        e.ok(&["alerts", "unacked", "--order", "o-json"])
            .stdout
            .contains(&breach_event)
    );
    // Naming an event operators were never told of changes nothing.
    let r = e.fails(
        2,
        &[
            "alerts",
            "ack",
            "--order",
            "o-json",
            "--event",
            "zc:o-json:home:99",
        ],
    );
    assert!(r.contains("no operator event"), "{r}");
    let r = e.fails(
        1,
        &[
            "alerts", "ack", "--order", "o-json", "--zone", "home", "--event", "x",
        ],
    );
    assert!(r.contains("cannot be used with"), "{r}");

    let ack = e
        .ok(&[
            "--json",
            "alerts",
            "ack",
            "--order",
            "o-json",
            "--zone",
            "home",
            "--note",
            "police dispatched",
        ])
        .json();
    assert_eq!(ack["record"]["kind"], "alert_acknowledged");
    assert_eq!(ack["record"]["detail"]["operator"], "local:op-7");
    assert_eq!(ack["record"]["detail"]["note"], "police dispatched");
    let human = e.ok(&["alerts", "list"]).stdout;
    assert!(
        human.contains("BREACH") && human.contains("op-7"),
        "{human}"
    );
    e.fails(2, &["alerts", "ack", "--order", "o-json", "--zone", "work"]);
    // The zone's acknowledgement covers the breach: nothing urgent is left to acknowledge.
    let unacked = e
        .ok(&["--json", "alerts", "unacked", "--order", "o-json"])
        .json();
    assert_eq!(unacked["alerts"], serde_json::json!([]), "{unacked}");
    let r = e.fails(2, &["alerts", "ack", "--order", "o-json"]);
    assert!(r.contains("no unacknowledged urgent alert"), "{r}");
    // Acknowledging the event itself still records who did (an operator may close it too).
    let by_event = e
        .ok(&[
            "--json",
            "alerts",
            "ack",
            "--order",
            "o-json",
            "--event",
            &breach_event,
        ])
        .json();
    assert_eq!(by_event["scope"], "event");
    assert_eq!(
        by_event["record"]["detail"]["event_id"],
        breach_event.as_str()
    );
    assert_eq!(by_event["covers"], serde_json::json!([]));

    // The anchor function, as Lambda runs it on the audit table's stream.
    anchor_the_audit_stream(&e).await;
    let key = e.path("evidence-key.pem");
    let written = e
        .ok(&["--json", "evidence", "public-key", "--out", &key])
        .json();
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let bundle = e.path("bundle");
    let exported = e
        .ok(&[
            "--json", "evidence", "export", "--order", "o-json", "--out", &bundle,
        ])
        .json();
    let count = exported["manifest"]["record_count"].as_u64().unwrap();
    assert!(count >= 2, "{exported}");
    assert!(
        exported["manifest"]["anchor_count"].as_u64().unwrap() >= 1,
        "{exported}"
    );
    assert_eq!(
        exported["manifest"]["anchors_verified_at_export"], true,
        "{exported}"
    );
    let signature: Value =
        serde_json::from_slice(&std::fs::read(Path::new(&bundle).join("signature.json")).unwrap())
            .unwrap();
    assert_eq!(signature["public_key_sha256"], written["sha256"]);
    assert_eq!(signature["algorithm"], "ECDSA_SHA_256");
    // Offender positions and SMS texts: the operator's only (issue 16.11).
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(Path::new(&bundle)), 0o700);
    for f in std::fs::read_dir(&bundle).unwrap() {
        let f = f.unwrap().path();
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    let csv = std::fs::read_to_string(Path::new(&bundle).join("audit.csv")).unwrap();
    assert!(
        csv.starts_with("seq,recorded_at,kind,prev_hash,hash,detail\n"),
        "{csv}"
    );
    assert!(csv.contains("alert_acknowledged"));
    let verified = e
        .ok(&["evidence", "verify", &bundle, "--public-key", &key])
        .stdout;
    assert!(verified.starts_with("OK"), "{verified}");
    assert!(verified.contains("the chain agrees with its"), "{verified}");
    // Without the public key there is nothing to check the signature with.
    e.fails(1, &["evidence", "verify", &bundle]);
    e.fails(
        1,
        &["evidence", "export", "--order", "o-json", "--out", &bundle],
    );
    e.fails(
        2,
        &[
            "evidence",
            "export",
            "--order",
            "nope",
            "--out",
            &e.path("none"),
        ],
    );

    // Tamper with the CSV: the zone acknowledgement's note.
    let noted = ack["record"]["seq"].as_u64().unwrap();
    let copy = |to: &str| {
        let d = e.path(to);
        std::fs::create_dir_all(&d).unwrap();
        for name in [
            "audit.json",
            "audit.csv",
            "anchors.json",
            "manifest.json",
            "signature.json",
        ] {
            std::fs::copy(Path::new(&bundle).join(name), Path::new(&d).join(name)).unwrap();
        }
        d
    };
    let t1 = copy("tampered-csv");
    std::fs::write(
        Path::new(&t1).join("audit.csv"),
        csv.replace("police dispatched", "no action"),
    )
    .unwrap();
    let r = e.vigil(&["evidence", "verify", &t1, "--public-key", &key]);
    assert_eq!(r.code, 4, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "audit.csv: record {noted}: content does not match its hash"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains(&format!("record {noted}")),
        "{}",
        r.stderr
    );

    let t2 = copy("tampered-json");
    let mut records: Vec<Value> =
        serde_json::from_slice(&std::fs::read(Path::new(&t2).join("audit.json")).unwrap()).unwrap();
    records[0]["detail"]["forged"] = true.into();
    std::fs::write(
        Path::new(&t2).join("audit.json"),
        serde_json::to_vec_pretty(&records).unwrap(),
    )
    .unwrap();
    let v = e.vigil(&["--json", "evidence", "verify", &t2, "--public-key", &key]);
    assert_eq!(v.code, 4, "{}", v.stderr);
    assert_eq!(
        v.json()["first_broken_link"],
        "audit.json: record 1: content does not match its hash (altered)"
    );

    // The insider, with write access to the audit table: the last record rewritten with a
    // fresh, valid hash. The chain still verifies on its own; the anchors do not let it.
    let chain = e
        .store
        .read(&OrderId::new("o-json").unwrap())
        .await
        .unwrap();
    let last = chain.last().unwrap();
    let forged = vigil_core::audit::AuditRecord::next(
        &last.order_id,
        chain.iter().rev().nth(1),
        last.recorded_at_ms,
        &last.kind,
        serde_json::json!({"note": "no action"}),
    );
    aws_sdk_dynamodb::Client::new(&e.emulator.sdk_config())
        .put_item()
        .table_name(e.emulator.table_name("audit").unwrap())
        .set_item(Some(vigil_aws::items::audit_item(&forged)))
        .send()
        .await
        .unwrap();
    anchor_the_audit_stream(&e).await;
    let rewritten = e.path("rewritten");
    let m = e
        .ok(&[
            "--json", "evidence", "export", "--order", "o-json", "--out", &rewritten,
        ])
        .json();
    assert_eq!(m["manifest"]["chain_verified_at_export"], true, "{m}");
    assert_eq!(m["manifest"]["anchors_verified_at_export"], false, "{m}");
    let v = e.vigil(&[
        "--json",
        "evidence",
        "verify",
        &rewritten,
        "--public-key",
        &key,
    ]);
    assert_eq!(v.code, 4, "{}", v.stderr);
    let first = v.json()["first_broken_link"].as_str().unwrap().to_owned();
    assert!(
        first.starts_with(&format!(
            "audit.json against anchors.json: record {} disagrees with its anchor of ",
            last.seq
        )) && first.ends_with(&format!(
            "record {0} was overwritten in the table: the chain was rewritten from record {0}",
            last.seq
        )),
        "{first}"
    );

    // A bundle signed by another key: the verifier's own key says no.
    let other = e.path("other-key.pem");
    std::fs::write(&other, OTHER_PUBLIC_KEY).unwrap();
    let v = e.vigil(&["evidence", "verify", &bundle, "--public-key", &other]);
    assert_eq!(v.code, 4, "{}", v.stderr);
    assert!(
        v.stdout
            .contains("manifest.json: the signature does not verify with the public key given"),
        "{}",
        v.stdout
    );
}

/// A P-256 public key that is not the emulator's evidence key.
const OTHER_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2Qk8KVWG5KRqk9Zbppnf5d4xkqop
sjnhsXlCt9P1n8QMVCJ+fPNUNpEx6wJXvywPlkcAnMICz+S0DAScdoc0Bg==
-----END PUBLIC KEY-----
";

/// Runs the anchor function on everything in the audit table's stream, as Lambda's event
/// source mapping would, at the wall clock.
async fn anchor_the_audit_stream(e: &Env) {
    let aws = Aws {
        config: e.config.clone(),
        sdk: e.emulator.sdk_config(),
    };
    let ports = vigil_anchor::Ports {
        bucket: aws.anchor_bucket().unwrap(),
        orders: e.store.clone(),
        metrics: MemoryMetrics::default(),
        forces: None,
    };
    let mut source = e.emulator.stream_source("audit").unwrap();
    while let Some(batch) = source.poll(100).await.unwrap() {
        let now = chrono::Utc::now().timestamp_millis();
        let response = vigil_anchor::handle(&batch.event, &ports, now)
            .await
            .response();
        assert_eq!(
            source.complete(&batch, &response),
            batch.len(),
            "{response}"
        );
    }
}

fn a_closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn an_unreachable_emulator_is_named_with_how_to_start_one() {
    // Issue 11.9: "dynamodb is unavailable: dispatch failure" said neither where nor why.
    let url = a_closed_port_url();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["orders", "list"])
        .env("VIGIL_OPERATOR", "op-7")
        .env("VIGIL_FORCE", "met")
        .env("AWS_ENDPOINT_URL", &url)
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("VIGIL_STAGE", "local")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert!(
        stderr.contains(&format!("nothing answered at AWS_ENDPOINT_URL={url}"))
            && stderr.contains(".local/emulator.env"),
        "{stderr}"
    );
    assert!(stderr.contains("transient: retry later"), "{stderr}");
}

#[tokio::test]
async fn dlq_lists_both_queues_and_redrives_alert_events_in_their_group_once() {
    let e = env("dlq").await;
    let sqs = aws_sdk_sqs::Client::new(&e.emulator.sdk_config());
    let dlq_url = e.emulator.queue_url("alerts-dlq").unwrap().to_owned();
    let alerts_url = e.emulator.queue_url("alerts").unwrap().to_owned();
    let errors_url = e.emulator.queue_url("rule-errors").unwrap().to_owned();
    let event = serde_json::json!({
        "event_id": "te:o-1:tag-1:abc", "order_id": "o-1", "tag_id": "tag-1",
        "at_ms": T0, "received_at_ms": T0 + 200, "type": "tag_event",
        "kind": "strap_tamper", "seq": 5
    });
    sqs.send_message()
        .queue_url(&dlq_url)
        .message_body(event.to_string())
        .message_group_id("o-1")
        .message_deduplication_id("d-1")
        .send()
        .await
        .unwrap();
    // A record of an IoT rule error: no event to invoke ingest with.
    sqs.send_message()
        .queue_url(&errors_url)
        .message_body(r#"{"topic": "tags/tag-1/fix", "failures": [{"errorMessage": "throttled"}]}"#)
        .send()
        .await
        .unwrap();

    let listed = e.ok_as("national", &["--json", "dlq", "list"]).json();
    assert_eq!(listed["counts"]["alerts-dlq"], 1, "{listed}");
    assert_eq!(listed["counts"]["rule-errors"], 1, "{listed}");
    let messages = listed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["subject"], "o-1");
    assert!(
        messages[0]["what"]
            .as_str()
            .unwrap()
            .starts_with("tag_event te:o-1:tag-1:abc"),
        "{listed}"
    );
    assert_eq!(messages[1]["reason"], "throttled");
    // Listing left both visible: a second listing sees them again.
    let human = e.ok_as("national", &["dlq", "list"]).stdout;
    assert!(human.contains("alerts-dlq: 1, rule-errors: 1"), "{human}");

    let redriven = e
        .ok_as(
            "national",
            &["--json", "dlq", "redrive", "--queue", "alerts-dlq"],
        )
        .json();
    assert_eq!(redriven["moved"].as_array().unwrap().len(), 1, "{redriven}");
    let back = sqs
        .receive_message()
        .queue_url(&alerts_url)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let m = &back.messages()[0];
    assert_eq!(
        serde_json::from_str::<Value>(m.body().unwrap()).unwrap(),
        event
    );
    let attrs = m.attributes().unwrap();
    assert_eq!(
        attrs[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId],
        "o-1"
    );
    assert!(
        attrs[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageDeduplicationId]
            .starts_with("redrive-")
    );

    // The rule error cannot be invoked again: left, with why; exit 0.
    let left = e
        .ok_as("national", &["dlq", "redrive", "--queue", "rule-errors"])
        .stdout;
    assert!(
        left.contains("redriven: 0") && left.contains("holds no event"),
        "{left}"
    );
    let gone = e.fails_as(
        "national",
        2,
        &[
            "dlq",
            "redrive",
            "--queue",
            "alerts-dlq",
            "--message-id",
            "nope",
        ],
    );
    assert!(gone.contains("no message nope in alerts-dlq"), "{gone}");
}

/// With DynamoDB Local (`VIGIL_DYNAMODB=local`), DynamoDB has its own endpoint: the hint names
/// it too, since that is where `orders list` went.
#[test]
fn an_unreachable_dynamodb_endpoint_is_named_too() {
    let (url, dynamodb) = (a_closed_port_url(), a_closed_port_url());
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["orders", "list"])
        .env("VIGIL_OPERATOR", "op-7")
        .env("VIGIL_FORCE", "met")
        .env("AWS_ENDPOINT_URL", &url)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("VIGIL_STAGE", "local")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "nothing answered at AWS_ENDPOINT_URL={url} (DynamoDB: AWS_ENDPOINT_URL_DYNAMODB={dynamodb})"
        )),
        "{stderr}"
    );
}

/// Issue 9: her device registered from its own CSR with the victim-device policy, and the
/// order given her device and moving zone (audited); what is wrong is refused before anything
/// is made.
#[tokio::test]
async fn devices_register_with_the_victim_device_policy_and_give_the_order_her_zone() {
    let e = env("devices").await;
    let iot = aws_sdk_iot::Client::new(&e.emulator.sdk_config());
    let policy = e.emulator.iot_policy_name("victim-device").unwrap();
    let f = e.file("order.json", ORDER_JSON);
    e.ok(&["orders", "create", "--file", &f]);
    let (key, csr) = (e.path("sim/phone-v1.key"), e.path("sim/phone-v1.csr.pem"));
    e.ok(&[
        "tags",
        "csr",
        "phone-v1",
        "--key-out",
        &key,
        "--csr-out",
        &csr,
    ]);
    let creds = e.path("creds");
    // Refused before anything is made: no such order, settings out of range.
    let err = e.fails(
        2,
        &[
            "devices",
            "register",
            "phone-v1",
            "--order",
            "o-none",
            "--csr",
            &csr,
            "--out-dir",
            &creds,
        ],
    );
    assert!(err.contains("no order o-none"), "{err}");
    let err = e.fails(
        1,
        &[
            "devices",
            "register",
            "phone-v1",
            "--order",
            "o-json",
            "--csr",
            &csr,
            "--radius-m",
            "5",
        ],
    );
    assert!(err.contains("radius_m"), "{err}");
    assert_eq!(certificate_ids(&iot).await, Vec::<String>::new());

    let out = e
        .ok(&[
            "devices",
            "register",
            "phone-v1",
            "--order",
            "o-json",
            "--csr",
            &csr,
            "--out-dir",
            &creds,
            "--buffer-m",
            "1500",
        ])
        .stdout;
    assert!(
        out.contains("moving zone of 500 m, warning buffer 1500 m"),
        "{out}"
    );
    assert_eq!(files_in(&creds), ["phone-v1.cert.pem"]);
    let cert = certificate_ids(&iot).await;
    assert_eq!(cert.len(), 1);
    let arn = iot
        .describe_certificate()
        .certificate_id(&cert[0])
        .send()
        .await
        .unwrap()
        .certificate_description()
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_owned();
    let attached: Vec<String> = iot
        .list_attached_policies()
        .target(&arn)
        .send()
        .await
        .unwrap()
        .policies()
        .iter()
        .filter_map(|p| p.policy_name().map(str::to_owned))
        .collect();
    assert_eq!(
        attached,
        [policy],
        "her device has the victim-device policy, not a tag's"
    );
    let shown = e.ok(&["--json", "orders", "show", "o-json"]).json();
    assert_eq!(
        shown["order"]["victim_device"],
        serde_json::json!({"device_id": "phone-v1", "zone": {"radius_m": 500.0, "buffer_m": 1500.0,
            "max_position_age_s": 300, "pair_window_s": 120}}),
        "{shown}"
    );
    // Assigning new settings to the same order needs no IoT step.
    e.ok(&[
        "devices",
        "assign",
        "phone-v1",
        "--order",
        "o-json",
        "--radius-m",
        "300",
    ]);
    let shown = e.ok(&["--json", "orders", "show", "o-json"]).json();
    assert_eq!(shown["order"]["victim_device"]["zone"]["radius_m"], 300.0);
}

#[tokio::test]
async fn each_force_sees_and_changes_only_its_own_and_national_moves_a_case() {
    let e = env("forces").await;
    let file = e.file("order.json", ORDER_JSON);
    let made = e.ok(&["orders", "create", "--file", &file]);
    assert!(
        made.stderr.contains("acting for force met as local:op-7"),
        "{}",
        made.stderr
    );
    let o = OrderId::new("o-json").unwrap();
    assert_eq!(
        e.store
            .get_order(&o)
            .await
            .unwrap()
            .unwrap()
            .force_id
            .unwrap()
            .as_str(),
        "met"
    );
    // Another force's operator: refused (exit 6), nothing shown, nothing changed.
    let chain = e.store.read(&o).await.unwrap().len();
    let out = e.path("bundle");
    for args in [
        vec!["orders", "show", "o-json"],
        vec!["orders", "end", "o-json"],
        vec!["zones", "list", "--order", "o-json"],
        vec!["zones", "remove", "--order", "o-json", "home"],
        vec!["alerts", "ack", "--order", "o-json"],
        vec!["alerts", "unacked", "--order", "o-json"],
        vec!["evidence", "export", "--order", "o-json", "--out", &out],
        vec!["tags", "assign", "tag-9", "--order", "o-json"],
        vec!["tags", "quarantined", "tag-1"],
        vec!["tags", "deactivate", "tag-1"],
        vec!["orders", "transfer", "--order", "o-json", "--to", "tvp"],
        vec!["admin", "migrate-forces"],
        vec!["dlq", "list"],
    ] {
        let r = e.vigil_as("tvp", &args);
        assert_eq!(r.code, 6, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("refused"), "{args:?}: {}", r.stderr);
        assert!(!r.stdout.contains("o-json") && !r.stderr.contains("7700900123"));
    }
    assert!(!Path::new(&out).join("manifest.json").exists());
    let listed = e.vigil_as("tvp", &["--json", "orders", "list"]).json();
    assert_eq!(listed["orders"].as_array().unwrap().len(), 0, "{listed}");
    assert_eq!(e.store.read(&o).await.unwrap().len(), chain);
    // No force, no action; an unknown force is named.
    let r = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["orders", "list"])
        .envs(e.emulator.env_vars())
        .env("VIGIL_OPERATOR", "op-7")
        .env_remove("VIGIL_FORCE")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("VIGIL_FORCE"));
    let r = e.vigil_as(
        "national",
        &[
            "orders",
            "create",
            "--force",
            "kent",
            "--file",
            &e.file("o3.json", &ORDER_JSON.replace("o-json", "o-3")),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("not a force of this deployment"),
        "{}",
        r.stderr
    );
    // National administration: sees across forces (audited), moves the case.
    let shown = e.vigil_as("national", &["orders", "show", "o-json"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stderr.contains("acting for national administration"));
    let moved = e.vigil_as(
        "national",
        &["orders", "transfer", "--order", "o-json", "--to", "tvp"],
    );
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert!(
        moved.stdout.contains("moved to force tvp"),
        "{}",
        moved.stdout
    );
    assert_eq!(e.vigil_as("tvp", &["orders", "show", "o-json"]).code, 0);
    assert_eq!(e.vigil_as("met", &["orders", "show", "o-json"]).code, 6);
    let records = e.store.read(&o).await.unwrap();
    assert!(records.iter().any(|r| r.kind == "national_access"));
    assert!(
        records
            .iter()
            .any(|r| r.detail["action"] == "order_transferred")
    );
    vigil_core::audit::verify_chain(&records).unwrap();
    // An order written before forces (no force on the order, its tag or her device): only
    // national administrators see it, the migration gives it the default force once, and
    // loses nothing.
    let mut old = vigil_testkit::order();
    old.order_id = OrderId::new("o-old").unwrap();
    old.tag_id = TagId::new("tag-old").unwrap();
    old.victim_device = Some(vigil_core::proximity::VictimDevice {
        device_id: vigil_core::DeviceId::new("phone-old").unwrap(),
        zone: Default::default(),
    });
    e.store.put_order(&old).await.unwrap();
    assert_eq!(e.vigil_as("met", &["orders", "show", "o-old"]).code, 6);
    let m = e
        .vigil_as("national", &["--json", "admin", "migrate-forces"])
        .json();
    assert_eq!(m["force"], "met");
    assert_eq!(m["changed"]["orders"], serde_json::json!(["o-old"]), "{m}");
    assert_eq!(m["changed"]["tags"], serde_json::json!(["tag-old"]), "{m}");
    assert_eq!(
        m["changed"]["devices"],
        serde_json::json!(["phone-old"]),
        "{m}"
    );
    let migrated = e
        .store
        .get_order(&OrderId::new("o-old").unwrap())
        .await
        .unwrap()
        .unwrap();
    let mut expected = old.clone();
    expected.force_id = migrated.force_id.clone();
    assert_eq!(migrated, expected, "nothing but the force changed");
    assert_eq!(migrated.force_id.unwrap().as_str(), "met");
    assert_eq!(e.vigil_as("met", &["orders", "show", "o-old"]).code, 0);
    // Ingest reads the force with the order's terms from the tag's item.
    let ctx = e
        .store
        .load_context(&TagId::new("tag-old").unwrap(), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ctx.orders[0].force_id.as_ref().unwrap().as_str(), "met");
    // A second run changes nothing.
    let m = e.vigil_as("national", &["admin", "migrate-forces"]);
    assert!(
        m.stdout.contains("nothing to migrate"),
        "{}{}",
        m.stdout,
        m.stderr
    );
    let chain = e.store.read(&OrderId::new("o-old").unwrap()).await.unwrap();
    assert_eq!(
        chain
            .iter()
            .filter(|r| r.detail["action"] == "force_assigned")
            .count(),
        1
    );
}
