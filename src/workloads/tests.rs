use std::fs;

use serde_json::json;

use crate::model::as_reference;
use crate::spec::{load, SpecError};

const EXAMPLE: &str = include_str!("../../stacks/example.toml");

/// A stack (the example) whose `[workloads]` reads `files`, written next to it.
fn stack(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = files
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    let text = format!(
        "{}\n[workloads]\npaths = [{}]\n",
        EXAMPLE.split("\n[workloads]").next().unwrap(),
        paths.join(", ")
    );
    fs::write(dir.path().join("stack.toml"), text).unwrap();
    for (name, body) in files {
        fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}

fn report(dir: &tempfile::TempDir) -> String {
    match load(&dir.path().join("stack.toml")) {
        Err(e @ SpecError::Invalid { .. }) => e.report().unwrap(),
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team\n";

#[test]
fn outputs_known_from_the_spec_are_written_in_and_the_others_wait_for_apply() {
    let config = "# settings\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n  namespace: team\ndata:\n  bucket: s3://${buckets.models.name}/wine\n  role: ${irsa.kserve-s3.role_arn}\n  image: ${repositories.wine-model.uri}:v1\n  literal: $${not.an.output}\n";
    let dir = stack(&[("ns.yaml", NAMESPACE), ("config.yaml", config)]);
    let spec = load(&dir.path().join("stack.toml")).unwrap();
    let ids: Vec<String> = spec
        .workloads
        .iter()
        .map(|w| w.object.id.to_string())
        .collect();
    assert_eq!(ids, ["v1 Namespace team", "v1 ConfigMap team/s"]);
    let config = &spec.workloads[1];
    assert_eq!(config.line, 3, "the document after the comment and `---`");
    let data = &config.object.body["data"];
    assert_eq!(data["bucket"], "s3://mlops-models-bucket/wine");
    assert_eq!(
        data["role"],
        json!({ "$output": "irsa.kserve-s3.role_arn" })
    );
    assert_eq!(
        data["image"],
        json!({ "$join": [{ "$output": "repositories.wine-model.uri" }, ":v1"] })
    );
    assert_eq!(data["literal"], "${not.an.output}");

    let graph = crate::graph::DesiredGraph::from_spec(&spec).unwrap();
    let node = &graph.resources[&crate::model::Address::new("k8s.team.ConfigMap.s")];
    let role = &node.attrs["manifest"]["data"]["role"];
    assert_eq!(
        as_reference(role).map(|(a, attr)| (a.to_string(), attr.to_string())),
        Some(("iam_role.irsa.kserve-s3".into(), "arn".into()))
    );
    let deps: Vec<&str> = node.deps.iter().map(|d| d.as_str()).collect();
    assert!(deps.contains(&"k8s.Namespace.team"), "{deps:?}");
    assert!(
        deps.contains(&"k8s.kserve-inference.ServiceAccount.kserve-sa"),
        "{deps:?}"
    );
    assert!(deps.contains(&"addon.kserve"), "{deps:?}");
    assert!(deps.contains(&"ecr_repository.wine-model"), "{deps:?}");
    let cleanup = &graph.resources[&crate::model::Address::new("cluster_cleanup")];
    assert!(cleanup
        .deps
        .iter()
        .any(|d| d.as_str() == "k8s.team.ConfigMap.s"));
}

#[test]
fn a_changed_manifest_changes_the_stack_digest() {
    let dir = stack(&[("ns.yaml", NAMESPACE)]);
    let before = load(&dir.path().join("stack.toml")).unwrap().digest;
    fs::write(
        dir.path().join("ns.yaml"),
        NAMESPACE.replace("team", "team2"),
    )
    .unwrap();
    let after = load(&dir.path().join("stack.toml")).unwrap().digest;
    assert_ne!(before, after);
}

#[test]
fn bad_manifests_are_named_by_file_and_line() {
    let dir = stack(&[(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a\n",
    )]);
    let text = report(&dir);
    assert!(text.contains("bad.yaml:5:"), "{text}");
    assert!(text.contains("a flow sequence at line 4"), "{text}");
    assert!(text.contains("not valid YAML"), "{text}");

    let dir = stack(&[(
        "ref.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\ndata:\n  # ${nothing}\n  x: ${buckets.model.name}\n",
    )]);
    let text = report(&dir);
    assert!(
        text.contains("`${buckets.model.name}` names no output"),
        "{text}"
    );
    assert!(text.contains("ref.yaml:8:6"), "{text}");
    assert!(
        text.contains("did you mean `${buckets.models.name}`?"),
        "{text}"
    );

    let dir = stack(&[
        ("a.yaml", NAMESPACE),
        ("b.yaml", &format!("# again\n---\n{NAMESPACE}")),
    ]);
    let text = report(&dir);
    assert!(text.contains("b.yaml:3:"), "{text}");
    assert!(
        text.contains("has the address `k8s.Namespace.team`"),
        "{text}"
    );
    assert!(text.contains("a.yaml:1"), "{text}");

    let dir = stack(&[(
        "sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: kserve-sa\n  namespace: kserve-inference\n",
    )]);
    let text = report(&dir);
    assert!(text.contains("sa.yaml:1:"), "{text}");
    assert!(
        text.contains("of the IRSA service account of `[irsa.kserve-s3]`"),
        "{text}"
    );

    let dir = stack(&[(
        "noname.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
    )]);
    let text = report(&dir);
    assert!(text.contains("noname.yaml:1:"), "{text}");
    assert!(text.contains("has no `metadata.name`"), "{text}");

    let dir = stack(&[(
        "name.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${irsa.kserve-s3.role_arn}\n",
    )]);
    let text = report(&dir);
    assert!(
        text.contains("may only use values known before apply"),
        "{text}"
    );

    let dir = stack(&[(
        "wait.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    mlops.dev/wait-timeout: soon\n",
    )]);
    let text = report(&dir);
    assert!(text.contains("not a duration"), "{text}");
}

#[test]
fn paths_that_name_no_file_point_at_the_stack_file() {
    let dir = stack(&[("ns.yaml", NAMESPACE)]);
    let path = dir.path().join("stack.toml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("\"ns.yaml\"", "\"ns.yaml\", \"k8s/\"");
    fs::write(&path, text).unwrap();
    let text = report(&dir);
    assert!(text.contains("k8s/` does not exist"), "{text}");
    assert!(text.contains("stack.toml:"), "{text}");
}

#[test]
fn namespaced_objects_without_a_namespace_go_to_default_and_cluster_ones_have_none() {
    let dir = stack(&[(
        "objects.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\n  namespace: ignored\n",
    )]);
    let spec = load(&dir.path().join("stack.toml")).unwrap();
    let addresses: Vec<String> = spec
        .workloads
        .iter()
        .map(|w| w.address_parts().join("."))
        .collect();
    assert_eq!(addresses, ["default.ConfigMap.a", "ClusterRole.reader"]);
    assert_eq!(
        spec.workloads[0].object.body["metadata"]["namespace"],
        "default"
    );
}
