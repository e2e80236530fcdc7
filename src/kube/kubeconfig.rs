//! A kubeconfig for one stack: its cluster, and a user whose credential comes from running
//! `mlops token` (an exec credential plugin), so the file holds no secret. Written as YAML
//! text with every variable value double-quoted: a JSON string literal is a valid YAML
//! double-quoted scalar, so any name or path is quoted correctly.

use std::path::PathBuf;

use super::token::EXEC_API_VERSION;

/// Everything a kubeconfig names.
#[derive(Debug, Clone)]
pub struct Kubeconfig {
    /// The name of the cluster, user and context entries, and the current context.
    pub name: String,
    /// The API server URL (`cluster_endpoint`).
    pub server: String,
    /// The cluster's CA bundle, base64 PEM as EKS returns it.
    pub certificate_authority_data: String,
    /// The `mlops` executable the exec plugin runs.
    pub command: PathBuf,
    /// Its arguments: `token <STACK> ...`.
    pub args: Vec<String>,
}

impl Kubeconfig {
    pub fn to_yaml(&self) -> String {
        let name = quote(&self.name);
        let mut args = String::new();
        for arg in &self.args {
            args.push_str(&format!("          - {}\n", quote(arg)));
        }
        format!(
            "apiVersion: v1
kind: Config
clusters:
  - name: {name}
    cluster:
      server: {server}
      certificate-authority-data: {ca}
contexts:
  - name: {name}
    context:
      cluster: {name}
      user: {name}
current-context: {name}
preferences: {{}}
users:
  - name: {name}
    user:
      exec:
        apiVersion: {EXEC_API_VERSION}
        command: {command}
        args:
{args}        interactiveMode: Never
",
            server = quote(&self.server),
            ca = quote(&self.certificate_authority_data),
            command = quote(&self.command.to_string_lossy()),
        )
    }
}

/// `text` as a double-quoted scalar.
fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, command: &str) -> Kubeconfig {
        Kubeconfig {
            name: name.into(),
            server: "https://ABC.gr7.us-west-2.eks.amazonaws.com".into(),
            certificate_authority_data: "LS0tLS1CRUdJTg==".into(),
            command: PathBuf::from(command),
            args: vec![
                "token".into(),
                "/p/stacks/example.toml".into(),
                "--chdir".into(),
                "/p".into(),
            ],
        }
    }

    #[test]
    fn the_kubeconfig_runs_mlops_token_for_the_stack() {
        assert_eq!(
            config("mlops", "/usr/bin/mlops").to_yaml(),
            r#"apiVersion: v1
kind: Config
clusters:
  - name: "mlops"
    cluster:
      server: "https://ABC.gr7.us-west-2.eks.amazonaws.com"
      certificate-authority-data: "LS0tLS1CRUdJTg=="
contexts:
  - name: "mlops"
    context:
      cluster: "mlops"
      user: "mlops"
current-context: "mlops"
preferences: {}
users:
  - name: "mlops"
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: "/usr/bin/mlops"
        args:
          - "token"
          - "/p/stacks/example.toml"
          - "--chdir"
          - "/p"
        interactiveMode: Never
"#
        );
    }

    #[test]
    fn awkward_paths_are_quoted() {
        let yaml = config("mlops", "/home/a \"b\"\\c: #d/mlops").to_yaml();
        assert!(
            yaml.contains(r#"command: "/home/a \"b\"\\c: #d/mlops""#),
            "{yaml}"
        );
    }
}
