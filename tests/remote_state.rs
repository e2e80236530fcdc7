//! The S3 state backend end to end against the AWS emulator (moto, one per test on
//! 127.0.0.1): `backend create`, the lock taken with S3 conditional writes by racing runs,
//! the lease taken over after a killed run, conditional state writes that keep a newer state,
//! and `state pull` / `state push`. The real binary runs; every check reads the bucket through
//! the AWS SDK, never through mlops.
//!
//! moto 5.1.22 (the pinned emulator) honours `If-None-Match: *` and `If-Match` on PutObject
//! and `If-Match` on DeleteObject, answering 412 PreconditionFailed (and 404 NoSuchKey for
//! `If-Match` on a missing object) as S3 does, so no call here is mocked. (Its check and its
//! write are two steps where S3's are one; the window between them is a few Python bytecodes
//! under the GIL: 5 runs of 16 writers racing for one key through moto alone each had exactly
//! one winner.)

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use serde_json::Value;
use support::{example_as, Aws, Emulator, Project};

const BUCKET: &str = "acme-mlops-state";

/// The example stack renamed, keeping its state in the emulator's S3 with a lease of `lease`.
fn s3_stack(stack: &str, lease: &str) -> String {
    let local = format!("backend = \"local\"\npath = \"state/{stack}.json\"\n");
    let text = example_as(stack);
    assert!(text.contains(&local), "the example has a local [state]");
    text.replace(
        &local,
        &format!("backend = \"s3\"\nbucket = \"{BUCKET}\"\nlock_lease = \"{lease}\"\n"),
    )
}

fn state_key(stack: &str) -> String {
    format!("mlops/{stack}.json")
}

fn lock_key(stack: &str) -> String {
    format!("mlops/{stack}.json.lock")
}

/// The JSON object at `key` in the state bucket, or `None` when there is none.
fn object(aws: &Aws, key: &str) -> Option<Value> {
    aws.run(async {
        let out = aws
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        let bytes = out.body.collect().await.unwrap().into_bytes();
        Some(serde_json::from_slice(&bytes).unwrap())
    })
}

/// Every key in the state bucket.
fn keys(aws: &Aws) -> Vec<String> {
    aws.run(async {
        let out = aws
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    })
}

/// How many VPCs carry the stack's tag.
fn vpcs(aws: &Aws, stack: &str) -> usize {
    aws.run(async {
        let filter = Filter::builder()
            .name("tag:mlops:stack")
            .values(stack)
            .build();
        let out = aws
            .ec2
            .describe_vpcs()
            .filters(filter)
            .send()
            .await
            .unwrap();
        out.vpcs().len()
    })
}

/// Polls `ready` every `every` for up to a minute.
fn wait_for(what: &str, every: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// How often a test looks for what a run it started has done: the runs' timing is what the
/// tests check, so they look often.
const OFTEN: Duration = Duration::from_millis(10);

/// A project whose one stack keeps its state in S3, with the bucket made by `backend create`.
fn project_with_bucket(moto: &Emulator, stack: &str, lease: &str) -> Project {
    let project = Project::new(moto, stack, &s3_stack(stack, lease));
    project.mlops(&["backend", "create", stack]).ok();
    project
}

fn spawn(project: &Project, args: &[&str]) -> Child {
    project
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn backend_create_makes_a_versioned_encrypted_private_bucket_and_is_idempotent() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "boot";
    let project = Project::new(&moto, stack, &s3_stack(stack, "5m"));

    let missing = project.mlops(&["plan", stack]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("the state bucket `acme-mlops-state` does not exist"),
        "{}",
        missing.stderr
    );
    assert!(
        missing
            .stderr
            .contains("mlops backend create stacks/boot.toml"),
        "{}",
        missing.stderr
    );

    let created = project.mlops(&["backend", "create", stack]).ok();
    assert!(
        created
            .stderr
            .contains("created the state bucket `acme-mlops-state` in us-west-2"),
        "{}",
        created.stderr
    );
    aws.run(async {
        let versioning = aws
            .s3
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
        let encryption = aws
            .s3
            .get_bucket_encryption()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let rule = &encryption
            .server_side_encryption_configuration()
            .unwrap()
            .rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .sse_algorithm()
                .as_str(),
            "AES256"
        );
        let block = aws
            .s3
            .get_public_access_block()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let block = block.public_access_block_configuration().unwrap();
        assert_eq!(
            [
                block.block_public_acls(),
                block.ignore_public_acls(),
                block.block_public_policy(),
                block.restrict_public_buckets()
            ],
            [Some(true); 4]
        );
        let tags = aws
            .s3
            .get_bucket_tagging()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        let tags: Vec<(&str, &str)> = tags
            .tag_set()
            .iter()
            .map(|t| (t.key(), t.value()))
            .collect();
        assert!(tags.contains(&("mlops:purpose", "state")), "{tags:?}");
        assert!(tags.contains(&("env", "dev")), "{tags:?}");
    });

    let again = project.mlops(&["backend", "create", stack]).ok();
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );

    // Versioning switched off by hand is switched on again; nothing else is touched.
    aws.run(async {
        let suspended = aws_sdk_s3::types::VersioningConfiguration::builder()
            .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
            .build();
        aws.s3
            .put_bucket_versioning()
            .bucket(BUCKET)
            .versioning_configuration(suspended)
            .send()
            .await
            .unwrap();
    });
    let repaired = project.mlops(&["backend", "create", stack]).ok();
    assert!(
        repaired.stderr.contains("exists; set versioning"),
        "{}",
        repaired.stderr
    );
    let status = aws.run(async {
        aws.s3
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap()
            .status()
            .cloned()
    });
    assert_eq!(
        status.map(|s| s.as_str().to_string()).as_deref(),
        Some("Enabled")
    );

    let no_lock = project.mlops(&["lock", "status", stack]).ok();
    assert_eq!(
        no_lock.stdout,
        "no lock on `s3://acme-mlops-state/mlops/boot.json`\n"
    );
}

#[test]
fn two_applies_started_together_one_proceeds_and_the_other_is_refused_at_once() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "race";
    let project = project_with_bucket(&moto, stack, "5m");

    let started = Instant::now();
    let mut runs = [
        spawn(&project, &["apply", stack, "--auto-approve"]),
        spawn(&project, &["apply", stack, "--auto-approve"]),
    ];
    let pids = [runs[0].id(), runs[1].id()];
    let mut ended: [Option<Duration>; 2] = [None, None];
    wait_for("both applies to end", OFTEN, || {
        for (run, end) in runs.iter_mut().zip(ended.iter_mut()) {
            if end.is_none() && run.try_wait().unwrap().is_some() {
                *end = Some(started.elapsed());
            }
        }
        ended.iter().all(Option::is_some)
    });
    let outputs: Vec<(i32, String)> = runs
        .into_iter()
        .map(|run| {
            let out = run.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code().unwrap(), stderr)
        })
        .collect();
    let codes = [outputs[0].0, outputs[1].0];
    let winner = codes
        .iter()
        .position(|c| *c == 0)
        .unwrap_or_else(|| panic!("one apply succeeds: {outputs:?}"));
    let loser = 1 - winner;
    assert_eq!(codes[loser], 1, "the other apply fails: {outputs:?}");
    let refusal = &outputs[loser].1;
    assert!(refusal.contains("is locked by"), "{refusal}");
    assert!(
        refusal.contains(&format!("(pid {}, `apply`", pids[winner])),
        "the refusal names the holder: {refusal}"
    );
    assert!(refusal.contains("last heartbeat"), "{refusal}");
    assert!(
        !refusal.contains("Apply complete"),
        "the refused run changed nothing: {refusal}"
    );
    let (won, lost) = (ended[winner].unwrap(), ended[loser].unwrap());
    assert!(
        lost < won && lost < Duration::from_secs(10),
        "the refused run ends at once ({lost:?}), before the other ({won:?})"
    );

    // The state is whole and matches AWS; no lock is left.
    let state = object(&aws, &state_key(stack)).expect("the state object");
    assert_eq!(state["stack"], stack);
    assert_eq!(state["resources"].as_object().unwrap().len(), 33);
    let vpc_id = state["resources"]["vpc"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let found = aws.run(async {
        aws.ec2
            .describe_vpcs()
            .vpc_ids(&vpc_id)
            .send()
            .await
            .unwrap()
            .vpcs()
            .len()
    });
    assert_eq!(found, 1);
    assert_eq!(vpcs(&aws, stack), 1);
    assert_eq!(keys(&aws), vec![state_key(stack)]);
    assert_eq!(project.plan_exit_code().code, 0);
}

#[test]
fn a_lock_left_by_a_killed_run_is_taken_over_once_its_lease_ran_out_and_not_before() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "crash";
    // Long enough that the plan below, started after the kill, still finds it held on a
    // loaded machine.
    let project = project_with_bucket(&moto, stack, "10s");

    let mut killed = spawn(&project, &["apply", stack, "--auto-approve"]);
    wait_for("the lock object", OFTEN, || {
        object(&aws, &lock_key(stack)).is_some()
    });
    killed.kill().unwrap();
    killed.wait().unwrap();
    let left = object(&aws, &lock_key(stack)).expect("a SIGKILLed run leaves its lock");
    assert_eq!(left["pid"], killed.id());
    assert_eq!(left["lease"], "10s");

    // Within the lease the lock holds.
    let early = project.mlops(&["plan", stack]);
    assert_eq!(early.code, 1, "{}", early.stderr);
    assert!(
        early
            .stderr
            .contains(&format!("is locked by {}@", left["user"].as_str().unwrap())),
        "{}",
        early.stderr
    );
    assert!(
        early
            .stderr
            .contains(&format!("(pid {}, `apply`", killed.id())),
        "{}",
        early.stderr
    );
    assert!(
        early.stderr.contains("its lease runs out in"),
        "{}",
        early.stderr
    );
    let status = project.mlops(&["lock", "status", stack]).ok();
    assert!(
        status.stdout.contains(&format!("(pid {})", killed.id())),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("last heartbeat"),
        "{}",
        status.stdout
    );

    // Once the lease ran out, the next run takes the lock over, says whose it was, and
    // completes the stack, adopting what the killed run created.
    wait_for("the lease to run out", Duration::from_millis(250), || {
        let status = project.mlops(&["lock", "status", stack]).ok();
        status.stdout.contains("expired")
    });
    let taken = project.apply().ok();
    assert!(
        taken.stderr.contains(&format!(
            "warning: took over the lock on `s3://{BUCKET}/{}` from",
            state_key(stack)
        )),
        "{}",
        taken.stderr
    );
    assert!(
        taken
            .stderr
            .contains(&format!("(pid {}, `apply`", killed.id())),
        "{}",
        taken.stderr
    );
    assert_eq!(vpcs(&aws, stack), 1, "no duplicate after the takeover");
    assert_eq!(keys(&aws), vec![state_key(stack)], "no lock left");
    assert_eq!(
        object(&aws, &state_key(stack)).unwrap()["resources"]
            .as_object()
            .unwrap()
            .len(),
        33
    );

    // Ctrl-C releases the lock too: sent once the destroy has saved its first deletions.
    let serial = |aws: &Aws| object(aws, &state_key(stack)).and_then(|s| s["serial"].as_u64());
    let before = serial(&aws);
    let interrupted = spawn(
        &project,
        &["destroy", stack, "--auto-approve", "--parallelism", "1"],
    );
    wait_for("the destroy's first deletions", OFTEN, || {
        serial(&aws) > before
    });
    signal(&interrupted, "INT");
    let out = interrupted.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(130) | Some(0)),
        "interrupted, or done first: {stderr}"
    );
    assert_eq!(
        keys(&aws),
        vec![state_key(stack)],
        "no lock left after Ctrl-C"
    );
}

#[test]
fn a_writer_whose_lock_was_removed_cannot_overwrite_the_newer_state() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "stale";
    let project = project_with_bucket(&moto, stack, "5m");

    // The slow writer: one resource at a time, paused once it has written the state.
    let slow = spawn(
        &project,
        &["apply", stack, "--auto-approve", "--parallelism", "1"],
    );
    wait_for("the first state writes", OFTEN, || {
        object(&aws, &state_key(stack)).is_some_and(|s| s["serial"].as_u64() >= Some(2))
    });
    signal(&slow, "STOP");

    // Someone removes its lock and writes a newer state.
    let lock = object(&aws, &lock_key(stack)).expect("the slow writer's lock");
    let id = lock["id"].as_str().unwrap();
    let removed = project.mlops(&["force-unlock", stack, id]).ok();
    assert!(
        removed.stderr.contains("removed the lock"),
        "{}",
        removed.stderr
    );
    let pulled = project.mlops(&["state", "pull", stack]).ok();
    let file = project.dir.path().join("pulled.json");
    std::fs::write(&file, &pulled.stdout).unwrap();
    project
        .mlops(&["state", "push", stack, file.to_str().unwrap()])
        .ok();
    let newer = object(&aws, &state_key(stack)).unwrap();

    signal(&slow, "CONT");
    let out = slow.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("was changed by another run since this run read it"),
        "{stderr}"
    );
    assert_eq!(
        object(&aws, &state_key(stack)).unwrap(),
        newer,
        "the newer state is kept"
    );
    assert_eq!(keys(&aws), vec![state_key(stack)], "no lock left");
    // Bucket versioning keeps every earlier state.
    let versions = aws.run(async {
        aws.s3
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(state_key(stack))
            .send()
            .await
            .unwrap()
            .versions()
            .len()
    });
    assert!(versions > 2, "{versions} versions of the state");
}

#[test]
fn state_pull_and_push_work_on_s3() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let stack = "pushpull";
    let project = project_with_bucket(&moto, stack, "5m");
    project
        .mlops(&[
            "apply",
            stack,
            "--auto-approve",
            "--target",
            "s3_bucket.models",
        ])
        .ok();

    let pulled = project.mlops(&["state", "pull", stack]).ok();
    let state: Value = serde_json::from_str(&pulled.stdout).unwrap();
    assert_eq!(Some(&state), object(&aws, &state_key(stack)).as_ref());
    assert_eq!(
        state["resources"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["s3_bucket.models"]
    );

    let file = project.dir.path().join("state.json");
    let mut older = state.clone();
    older["serial"] = Value::from(1);
    std::fs::write(&file, older.to_string()).unwrap();
    let path = file.to_str().unwrap();
    let refused = project.mlops(&["state", "push", stack, path]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("is older than the current state"),
        "{}",
        refused.stderr
    );
    assert_eq!(Some(&state), object(&aws, &state_key(stack)).as_ref());

    let pushed = project
        .mlops(&["state", "push", stack, path, "--force"])
        .ok();
    assert!(pushed.stderr.contains("pushed"), "{}", pushed.stderr);
    let now = object(&aws, &state_key(stack)).unwrap();
    assert!(now["serial"].as_u64() > state["serial"].as_u64(), "{now}");
    assert_eq!(now["resources"], state["resources"]);
    assert_eq!(keys(&aws), vec![state_key(stack)], "no lock left");
}

/// Runs `mlops <args>` to its end, failing the test if it takes longer than `limit`.
fn run_within(project: &Project, args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = spawn(project, args);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("`mlops {}` still ran after {limit:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), stderr)
}

#[test]
fn many_stacks_share_one_state_bucket_and_each_releases_its_lock() {
    let moto = Emulator::start();
    let aws = moto.clients();
    let project = project_with_bucket(&moto, "fleet-a", "5m");
    // Fleet B: its own CIDR and repository, and no IRSA (the emulator gives every cluster the
    // same OIDC issuer, so two stacks cannot both own a provider for it there).
    let irsa_start = "[irsa.kserve-s3]";
    let fleet_b = s3_stack("fleet-b", "5m")
        .replace("10.0.", "10.1.")
        .replace("[repositories.wine-model]", "[repositories.beer-model]");
    let start = fleet_b.find(irsa_start).unwrap();
    let end = start + fleet_b[start..].find("\n\n").unwrap() + 2;
    let fleet_b = format!("{}{}", &fleet_b[..start], &fleet_b[end..]);
    std::fs::write(project.dir.path().join("stacks/fleet-b.toml"), fleet_b).unwrap();

    // Each stack's lock is released while the other still runs; a release must never keep
    // the other stack from being woken up again.
    for command in ["apply", "destroy", "apply"] {
        let (code, stderr) = run_within(
            &project,
            &[command, "--all", "--auto-approve", "--parallelism", "4"],
            // A hang never ends; a loaded machine may take a few times the usual 10-20 s.
            Duration::from_secs(300),
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.starts_with("fleet-") && l.contains(" done "))
                .count(),
            2,
            "{stderr}"
        );
        let mut expected = vec![state_key("fleet-a"), state_key("fleet-b")];
        expected.sort();
        assert_eq!(keys(&aws), expected, "both states, no lock left");
    }
    assert_eq!(vpcs(&aws, "fleet-a"), 1);
    assert_eq!(vpcs(&aws, "fleet-b"), 1);
    let a = object(&aws, &state_key("fleet-a")).unwrap();
    let b = object(&aws, &state_key("fleet-b")).unwrap();
    assert_eq!(a["resources"].as_object().unwrap().len(), 33);
    assert_eq!(b["resources"].as_object().unwrap().len(), 30);
}
