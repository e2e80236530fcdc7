//! `mlops import`: bring an object that already exists under management at an address of the
//! spec. It is read from the cloud and recorded; the next plan shows how it differs from the
//! spec (at least the ownership tags, which the next apply adds).

use serde_json::Value;

use super::{Session, Stack};
use crate::model::{canonical, resolve, settled, Address};
use crate::plan::PlanError;
use crate::state::ResourceState;
use crate::{Error, Result};

pub async fn import(stack: &Stack, address: &Address, id: &str, session: &Session) -> Result<()> {
    let Some(resource) = stack.graph.resources.get(address) else {
        return Err(PlanError::UnknownTarget {
            address: address.clone(),
            suggestion: crate::plan::closest(address, stack.graph.resources.keys()),
        }
        .into());
    };
    let (_lock, mut state) = stack
        .lock_state("import", session.reporter.as_ref())
        .await?;
    if let Some(existing) = state.resources.get(address) {
        return Err(Error::refused(
            format!("`{address}` is already managed, as `{}`", existing.id),
            "`mlops state show` shows it; an address holds one object",
        ));
    }
    if let Some(other) = state.holder(resource.kind, id, address) {
        return Err(Error::refused(
            format!("`{id}` is already managed, as `{other}`"),
            format!(
                "one object has one address: `mlops state mv {} {other} {address}` renames it",
                stack.spec.path.display()
            ),
        ));
    }
    // Values the cloud does not report (e.g. `force_destroy`) come from the spec.
    let lookup = |a: &Address, attr: &str| state.attr(a, attr);
    let prior = match resolve(&Value::Object(settled(&resource.attrs, None)), &lookup) {
        Some(Value::Object(attrs)) => attrs,
        _ => resource.attrs.clone(),
    };
    let env = session.env(&stack.spec).await;
    let provider = env.providers.get(resource.kind);
    let ctx = env.ctx(address);
    let live = provider
        .read(&ctx, id, &prior)
        .await
        .map_err(|error| crate::exec::ExecError {
            address: address.clone(),
            op: crate::base::Op::Read,
            error,
        })?
        .ok_or_else(|| {
            Error::refused(
                format!("there is no {} with the id `{id}`", resource.kind),
                format!("check the id and the region `{}`", stack.spec.stack.region),
            )
        })?;
    state.resources.insert(
        address.clone(),
        ResourceState {
            kind: resource.kind,
            id: id.to_string(),
            attrs: canonical(live),
            deps: resource.deps.clone(),
            pending: false,
        },
    );
    state.outputs = crate::state::outputs(&state);
    stack.store.save(&mut state).await?;
    Ok(())
}
