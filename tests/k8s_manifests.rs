//! The Kubernetes manifests in `k8s/` parse and agree with each other and with the
//! code: selectors and labels, ports, probe paths the server really routes, the port
//! and path the ServiceMonitor scrapes, the ConfigMaps and Secret the pod mounts, the
//! environment variables the binary reads. When `kubectl` is installed, every overlay
//! is also built with `kubectl kustomize` and checked as built.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// The paths `src/serve/src/lib.rs` routes.
fn routes() -> BTreeSet<String> {
    read(&repo().join("src/serve/src/lib.rs"))
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"'))
        .filter_map(|rest| rest.split('"').next())
        .map(String::from)
        .collect()
}

fn base(kind: &str, name: &str) -> Value {
    let mut files = Vec::new();
    yaml_files(&repo().join("k8s/base"), &mut files);
    files
        .iter()
        .flat_map(|f| docs(&read(f)))
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("k8s/base has no {kind} {name}"))
}

fn str_map(v: &Value) -> Vec<(String, String)> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| format!("{v:?}"), String::from);
                    (k.as_str().unwrap().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn subset(small: &Value, big: &Value) -> bool {
    let big = str_map(big);
    str_map(small).iter().all(|kv| big.contains(kv))
}

fn env(container: &Value, name: &str) -> Value {
    container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("container has no env {name}"))
}

fn container_port(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("container has no port named {name}"))
}

fn generator_names(kustomization: &Path, key: &str) -> Vec<(String, Vec<String>)> {
    let k: Value = serde_yaml::from_str(&read(kustomization)).unwrap();
    k[key]
        .as_sequence()
        .map(|gens| {
            gens.iter()
                .map(|g| {
                    let name = g["name"].as_str().unwrap().to_string();
                    let mut entries: Vec<String> = Vec::new();
                    for list in ["files", "literals"] {
                        for item in g[list].as_sequence().into_iter().flatten() {
                            let item = item.as_str().unwrap();
                            entries.push(item.split('=').next().unwrap().to_string());
                        }
                    }
                    (name, entries)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_manifest_parses() {
    let mut files = Vec::new();
    yaml_files(&repo().join("k8s"), &mut files);
    yaml_files(&repo().join("pipelines"), &mut files);
    assert!(files.len() >= 10, "{files:?}");
    for file in files {
        let parsed = docs(&read(&file));
        assert!(!parsed.is_empty(), "{} is empty", file.display());
    }
}

#[test]
fn statefulset_services_and_probes_agree() {
    let sts = base("StatefulSet", "kappa");
    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert!(subset(&sts["spec"]["selector"]["matchLabels"], labels));
    let container = &pod["spec"]["containers"][0];
    let routes = routes();

    // The HTTP port: the entrypoint's --listen, the probes, the API Service.
    let http = container_port(container, "http");
    let entrypoint = read(&repo().join("k8s/base/entrypoint.sh"));
    assert!(entrypoint.contains(&format!("--listen 0.0.0.0:{http}")));
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(routes.contains(path), "the server does not route {path}");
        assert_eq!(get["port"], "http", "{probe} port");
    }
    let api = base("Service", "kappa");
    let mut selector = api["spec"]["selector"].clone();
    selector
        .as_mapping_mut()
        .unwrap()
        .remove("statefulset.kubernetes.io/pod-name");
    assert!(subset(&selector, labels), "the API Service selects no pod");
    assert_eq!(
        api["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
        format!("{}-0", sts["metadata"]["name"].as_str().unwrap()),
        "process 0 serves the API"
    );
    assert_eq!(api["spec"]["ports"][0]["targetPort"], "http");

    // Peers: the headless Service, the hosts the entrypoint writes, the timely port.
    let peers = base("Service", sts["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert!(subset(&peers["spec"]["selector"], labels));
    let timely = container_port(container, "timely");
    assert_eq!(peers["spec"]["ports"][0]["targetPort"], "timely");
    assert_eq!(
        env(container, "KAPPA_TIMELY_PORT")["value"],
        timely.to_string()
    );
    assert_eq!(
        env(container, "KAPPA_PEERS_SERVICE")["value"],
        sts["spec"]["serviceName"]
    );
    assert_eq!(
        env(container, "KAPPA_STATEFULSET")["value"],
        sts["metadata"]["name"]
    );
    assert!(entrypoint.contains("--process \"$ordinal\""));
    assert!(entrypoint.contains("--hosts \"$hosts\""));

    // The ServiceMonitor scrapes the API Service's port at a path the server routes.
    let monitor = base("ServiceMonitor", "kappa");
    assert!(subset(
        &monitor["spec"]["selector"]["matchLabels"],
        &api["metadata"]["labels"]
    ));
    let endpoint = &monitor["spec"]["endpoints"][0];
    let port_names: Vec<&Value> = api["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert!(port_names.contains(&&endpoint["port"]));
    assert!(routes.contains(endpoint["path"].as_str().unwrap()));

    // Non-root, resources requested, the data volume claimed.
    let security = &pod["spec"]["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert!(security["runAsUser"].as_u64().is_some_and(|u| u > 0));
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let data = mounts.iter().find(|m| &m["name"] == claim).unwrap();
    assert_eq!(
        env(container, "KAPPA_DATA_DIR")["value"],
        data["mountPath"],
        "the data dir (log and catalog) is on the claimed volume"
    );
}

#[test]
fn mounted_configmaps_and_secret_exist() {
    let sts = base("StatefulSet", "kappa");
    let spec = &sts["spec"]["template"]["spec"];
    let container = &spec["containers"][0];
    let mut generated = generator_names(
        &repo().join("k8s/base/kustomization.yaml"),
        "configMapGenerator",
    );
    generated.extend(generator_names(
        &repo().join("pipelines/kustomization.yaml"),
        "configMapGenerator",
    ));
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    for volume in spec["volumes"].as_sequence().unwrap() {
        let Some(name) = volume["configMap"]["name"].as_str() else {
            continue;
        };
        let (_, keys) = generated
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no ConfigMap {name} is generated"));
        let mount = mounts.iter().find(|m| m["name"] == volume["name"]).unwrap();
        let at = mount["mountPath"].as_str().unwrap();
        match name {
            "kappa-pipelines" => {
                let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join("pipelines"))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|f| f.ends_with(".sql"))
                    .collect();
                let keys: BTreeSet<String> = keys.iter().cloned().collect();
                assert_eq!(keys, on_disk, "every pipeline file is in the ConfigMap");
                let entrypoint = read(&repo().join("k8s/base/entrypoint.sh"));
                assert!(entrypoint.contains(&format!("{at}/*.sql")));
            }
            "kappa-entrypoint" => {
                assert_eq!(keys, &vec!["entrypoint.sh".to_string()]);
                let command = container["command"].as_sequence().unwrap();
                assert_eq!(command[1], format!("{at}/entrypoint.sh"));
            }
            other => panic!("unexpected ConfigMap {other}"),
        }
    }
    let token = env(container, "KAPPA_ADMIN_TOKEN");
    let secret = &token["valueFrom"]["secretKeyRef"];
    let secrets = generator_names(
        &repo().join("k8s/base/kustomization.yaml"),
        "secretGenerator",
    );
    let (_, keys) = secrets
        .iter()
        .find(|(n, _)| secret["name"] == n.as_str())
        .expect("the admin token's Secret is generated");
    assert!(keys.iter().any(|k| secret["key"] == k.as_str()));
}

#[test]
fn environment_variables_are_read_by_the_binary() {
    let cli = [
        read(&repo().join("src/cli/lib.rs")),
        read(&repo().join("src/cli/commands/serve.rs")),
    ]
    .concat();
    let fluvio = read(&repo().join("k8s/overlays/fluvio/kustomization.yaml"));
    for var in [
        "KAPPA_DATA_DIR",
        "KAPPA_ADMIN_TOKEN",
        "KAPPA_LOG",
        "KAPPA_FLUVIO_ENDPOINT",
    ] {
        assert!(
            cli.contains(&format!("env = \"{var}\"")),
            "the CLI reads no {var}"
        );
    }
    assert!(fluvio.contains("KAPPA_LOG") && fluvio.contains("value: fluvio"));
}

#[test]
fn overlays_build_with_kubectl() {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        eprintln!("SKIPPED kubectl kustomize checks: kubectl is not installed");
        return;
    }
    for overlay in ["embedded", "fluvio"] {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(repo().join("k8s/overlays").join(overlay))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{overlay}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let built = docs(&String::from_utf8(out.stdout).unwrap());
        let sts = built.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
        let container = &sts["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            env(container, "KAPPA_PROCESSES")["value"],
            sts["spec"]["replicas"].as_u64().unwrap().to_string(),
            "{overlay}: one timely process per replica"
        );
        for volume in sts["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap()
        {
            if let Some(name) = volume["configMap"]["name"].as_str() {
                assert!(
                    built
                        .iter()
                        .any(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name),
                    "{overlay}: the pod mounts ConfigMap {name}, which is not built"
                );
            }
        }
        let secret = &env(container, "KAPPA_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"]["name"];
        assert!(built
            .iter()
            .any(|d| d["kind"] == "Secret" && &d["metadata"]["name"] == secret));
        for kind in ["Service", "ServiceMonitor", "PrometheusRule"] {
            assert!(
                built.iter().any(|d| d["kind"] == kind),
                "{overlay}: no {kind}"
            );
        }
        if overlay == "fluvio" {
            assert_eq!(env(container, "KAPPA_LOG")["value"], "fluvio");
        }
    }
}
