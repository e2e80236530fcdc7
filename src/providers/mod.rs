//! One trait for every kind of cloud object, so that the executor and the refresh never know
//! which API they talk to. Each kind lives in its own file under `aws/`; `aws::provider_for`
//! picks the one for a kind.
//!
//! The life cycle the executor drives: `find` (adopt an object an earlier run created but did
//! not record), `create` (returns the id as soon as the cloud has one, so the state can record
//! it before any wait), `wait_ready`, `read` (live attributes in the shape of the desired ones,
//! plus computed ones such as ARNs), `update`, `delete` (returns once the object is gone).

pub mod aws;
pub mod kube;

use async_trait::async_trait;

use crate::base::{ProviderError, Reporter};
use crate::model::{Address, Attrs, ResourceKind};

/// What a provider call needs besides its arguments.
pub struct Ctx<'a> {
    pub aws: &'a aws::Clients,
    pub kube: &'a kube::KubeEnv,
    pub stack: &'a str,
    pub address: &'a Address,
    pub reporter: &'a dyn Reporter,
}

impl Ctx<'_> {
    /// Tells the user what a long wait is waiting for.
    pub fn waiting(&self, what: &str) {
        self.reporter.waiting(self.address, what);
    }
}

pub type ProviderResult<T> = Result<T, ProviderError>;

/// One object of a kind to read, among several (`ResourceProvider::read_many`).
#[derive(Clone, Copy)]
pub struct Read<'a> {
    pub address: &'a Address,
    pub id: &'a str,
    /// The last-known attributes, as `read` takes them.
    pub prior: &'a Attrs,
}

/// The provider of a resource kind: AWS objects, or what `mlops` puts in the cluster.
pub fn provider_for(kind: ResourceKind) -> &'static dyn ResourceProvider {
    match kind {
        ResourceKind::Addon => &kube::Addon,
        ResourceKind::KubeObject => &kube::KubeObject,
        ResourceKind::ClusterCleanup => &kube::ClusterCleanup,
        aws => aws::provider_for(aws),
    }
}

#[async_trait]
pub trait ResourceProvider: Send + Sync {
    fn kind(&self) -> ResourceKind;

    /// The live attributes of the object `id`, or `None` when it no longer exists.
    /// `prior` holds the last-known attributes, for values the cloud does not report
    /// (such as `force_destroy`), which are carried over. A kind implements `read` or
    /// `read_many`, each by default the other; by default, `read_many` of the one object.
    async fn read(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<Option<Attrs>> {
        let object = Read {
            address: ctx.address,
            id,
            prior,
        };
        Ok(self.read_many(ctx, &[object]).await?.pop().flatten())
    }

    /// How many objects one `read_many` reads at most: more than one for the kinds whose API
    /// describes many objects with one request (`DescribeSubnets` with every id), so that the
    /// refresh sends one request where it would send one per object. Such a provider reads by
    /// id alone, never by the stack's tags: the objects of one `read_many` may belong to several
    /// stacks of a region (`plan --all`), `ctx` being the first object's stack.
    fn reads_at_once(&self) -> usize {
        1
    }

    /// The live attributes of `objects` (at most `reads_at_once`), in their order, `None` for
    /// one that no longer exists. `ctx` names the first object. The default reads them one
    /// after the other with `read`, each under its own address.
    async fn read_many(
        &self,
        ctx: &Ctx<'_>,
        objects: &[Read<'_>],
    ) -> ProviderResult<Vec<Option<Attrs>>> {
        let mut live = Vec::with_capacity(objects.len());
        for object in objects {
            let ctx = Ctx {
                address: object.address,
                ..*ctx
            };
            live.push(self.read(&ctx, object.id, object.prior).await?);
        }
        Ok(live)
    }

    /// An existing object that is this resource: found by its name, or by the `mlops:stack` and
    /// `mlops:address` tags. Used before a create, so that a run killed between the cloud call
    /// and the state write does not leave a duplicate behind.
    async fn find(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<Option<String>>;

    /// Creates the object and returns its id without waiting for it to be ready.
    async fn create(&self, ctx: &Ctx<'_>, desired: &Attrs) -> ProviderResult<String>;

    /// Waits until a new object can be used (a NAT gateway available, a cluster ACTIVE).
    async fn wait_ready(&self, _ctx: &Ctx<'_>, _id: &str) -> ProviderResult<()> {
        Ok(())
    }

    /// Brings the object from `prior` to `desired` in place; only attributes that do not force
    /// a replacement differ.
    async fn update(
        &self,
        ctx: &Ctx<'_>,
        id: &str,
        prior: &Attrs,
        desired: &Attrs,
    ) -> ProviderResult<()>;

    /// Deletes the object and waits until it is gone. Deleting an object that is already gone
    /// succeeds.
    async fn delete(&self, ctx: &Ctx<'_>, id: &str, prior: &Attrs) -> ProviderResult<()>;
}
