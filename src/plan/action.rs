//! A plan is data: a closed set of actions, and per resource the attribute changes that led to
//! it. Nothing here does any I/O; `diff` makes plans, `render` shows them, `exec` runs them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Address, Attrs, ResourceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Delete the object, then create it anew.
    Replace,
    Delete,
}

impl Action {
    /// The symbol users know from Terraform.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }

    /// `will be created`, `must be replaced`...
    pub fn phrase(self) -> &'static str {
        match self {
            Action::NoOp => "is up to date",
            Action::Create => "will be created",
            Action::Update => "will be updated in-place",
            Action::Replace => "must be replaced",
            Action::Delete => "will be destroyed",
        }
    }

    /// The stable name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }

    /// Whether this action creates an object (a create or the second half of a replace).
    pub fn creates(self) -> bool {
        matches!(self, Action::Create | Action::Replace)
    }

    /// Whether this action deletes an object.
    pub fn deletes(self) -> bool {
        matches!(self, Action::Delete | Action::Replace)
    }
}

/// A value in a plan: known now, or only after apply (it depends on something not created yet).
/// A known value may still hold references (or joins) deep inside, where only that part waits on
/// a new resource: `(known after apply)` is shown there, and `json` lists its path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanValue {
    Known(Value),
    Unknown,
}

/// One attribute of one resource: `before` is `None` for a create, `after` is `None` for a delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<PlanValue>,
    pub forces_replacement: bool,
}

impl AttrChange {
    /// Null on both sides that exist: an attribute that is not set.
    pub fn is_null(&self) -> bool {
        let after_null = match &self.after {
            Some(PlanValue::Known(v)) => v.is_null(),
            Some(PlanValue::Unknown) => false,
            None => true,
        };
        self.before.as_ref().is_none_or(Value::is_null) && after_null
    }

    pub fn is_change(&self) -> bool {
        match (&self.before, &self.after) {
            (Some(before), Some(PlanValue::Known(after))) => before != after,
            _ => true,
        }
    }
}

/// What will happen to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub kind: ResourceKind,
    pub action: Action,
    /// For a create, update or replace: every desired attribute; for a delete, every last-known
    /// one. Attributes that do not change are kept so that the executor has the full picture.
    pub attrs: Vec<AttrChange>,
    /// The desired attributes with references unresolved; `None` for a delete.
    pub desired: Option<Attrs>,
    /// Dependencies: the desired ones, or for a delete those recorded in the state.
    pub deps: Vec<Address>,
    /// Those of `deps` that order a destroy only: the create does not wait for them
    /// (`model::Resource::destroy_only`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destroy_only: Vec<Address>,
    /// Why, when the attributes alone do not say it (e.g. deleted outside mlops).
    pub reason: Option<String>,
    /// A delete or replace of a kind that loses something (`ResourceKind::loses`) that the spec
    /// does not unprotect: `apply` refuses it unless `--allow-replace` names the address.
    #[serde(default)]
    pub protected: bool,
    /// A delete that only forgets the object: the delete of this address (the EKS cluster)
    /// takes it, and everything else in the cluster, with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<Address>,
}

/// An address renamed, its object kept: by a `[[moved]]` entry of the spec, or found to be the
/// same AWS object (the same bucket name) under a new address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    pub from: Address,
    pub to: Address,
    /// `` `[[moved]]` at stacks/x.toml:12:1 ``, or `` the same `bucket` `models-1` ``.
    pub why: String,
}

impl Change {
    /// What its create (or update) waits for: the dependencies AWS needs first.
    pub fn needs(&self) -> impl Iterator<Item = &Address> {
        self.deps.iter().filter(|d| !self.destroy_only.contains(d))
    }

    /// Whether this replacement makes its successor before deleting the object: the kind allows
    /// two at once and the successor has a new name (create-before-destroy, `+/-`).
    pub fn creates_first(&self) -> bool {
        self.action == Action::Replace
            && self.kind.coexists_under_new_name()
            && self.attrs.iter().any(|a| a.name == "name" && a.is_change())
    }

    /// The symbol of this change: its action's, or `+/-` for a successor made first.
    pub fn symbol(&self) -> &'static str {
        if self.creates_first() {
            "+/-"
        } else {
            self.action.symbol()
        }
    }

    /// `will be created`, `must be replaced`...; a successor made first says so.
    pub fn phrase(&self) -> &'static str {
        if self.creates_first() {
            "must be replaced: the new one first, then the old one is deleted"
        } else {
            self.action.phrase()
        }
    }
}

/// An ordered list of changes for one stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub stack: String,
    /// The state the plan was made against.
    pub state_lineage: Option<String>,
    pub state_serial: u64,
    /// Every resource of the spec and the state, in execution order: desired resources in
    /// dependency order, then deletions in reverse dependency order.
    pub changes: Vec<Change>,
    /// Addresses renamed in the state before the changes, in order; the changes use the new ones.
    #[serde(default)]
    pub moves: Vec<Move>,
    /// A plan of `--refresh-only`: its changes are what AWS reports that the state does not
    /// know yet; applying it writes them into the state and calls nothing in AWS.
    #[serde(default)]
    pub refresh_only: bool,
}

/// `Plan: 3 to add, 1 to change, 0 to destroy.`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    /// Addresses renamed, their objects kept.
    #[serde(default)]
    pub moved: usize,
}

impl Summary {
    pub fn is_empty(self) -> bool {
        self.add + self.change + self.destroy + self.moved == 0
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            moved: self.moves.len(),
            ..Summary::default()
        };
        for change in &self.changes {
            s.add += usize::from(change.action.creates());
            s.change += usize::from(change.action == Action::Update);
            s.destroy += usize::from(change.action.deletes());
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        !self.summary().is_empty()
    }

    /// The changes that do something.
    pub fn actions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }

    /// The changes to show: those that do something, and those of moved addresses.
    pub fn shown(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.action != Action::NoOp || self.moved_from(&c.address).is_some())
    }

    /// The address `address` had before this plan's moves, if it moved.
    pub fn moved_from(&self, address: &Address) -> Option<&Address> {
        self.moves
            .iter()
            .find(|m| &m.to == address)
            .map(|m| &m.from)
    }
}
