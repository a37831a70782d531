//! Every topology is what its name says, by the reference clients: stund's `stun`
//! (RFC 3489) against the lab's stund, and coturn's `turnutils_natdiscovery` (`-f`,
//! `-m`, `-H`, one call each) against the lab's coturn (`turnserver -n --stun-only`
//! on STUN1 and STUN2 with `--alt-listening-port`). Every client run starts from
//! fresh NAT state (`natlab.sh reset-nat`). The truth table is in lab/README.md.
//! Needs root; fails (never skips) without it.

use natkit_lab::{
    Lab, LabBuilder, NatFiltering, NatKind, NatMapping, NatProfile, Node, all_at_once,
    every_topology, parse_natdiscovery_filtering, require_root,
};

/// Reference runs per topology: a verdict must be stable, not lucky.
const RUNS: usize = 3;

/// The exit code type bits stund's client gives for a profile (see
/// [`StundVerdict::code`]).
fn stund_type_bits(p: &NatProfile) -> i32 {
    if !p.nat {
        return 0x00;
    }
    if p.mapping != NatMapping::EndpointIndependent {
        return 0x08;
    }
    match p.filtering {
        NatFiltering::EndpointIndependent => 0x02,
        NatFiltering::AddressDependent => 0x04,
        NatFiltering::AddressAndPortDependent => 0x06,
    }
}

/// One topology: both reference clients [`RUNS`] times, each on fresh NAT state.
fn prove(spec: LabBuilder) -> String {
    let name = spec.topology_name();
    let want = spec.expected_profile();
    let lab = spec.build().expect("lab up");
    for run in 0..RUNS {
        let v = lab.reference_verdicts();
        let what = format!("{name}, run {run}: {v:#?}");
        assert!(
            v.disagreements().is_empty(),
            "stund's client contradicts natdiscovery on {:?}: {what}",
            v.disagreements()
        );
        assert_eq!(v.profile(), want, "{what}");
        assert_eq!(*v.stund.mapped.ip(), lab.addrs().public, "{what}");
        assert_eq!(v.stund.type_bits(), stund_type_bits(&want), "{what}");
        assert_eq!(v.stund.code & 0x01 != 0, want.preserves_ports, "{what}");
        assert_eq!(
            v.stund.code & 0x10 != 0,
            want.hairpinning == Some(false),
            "{what}"
        );
    }
    format!("{name}: {want} ({RUNS}/{RUNS} runs of stun and natdiscovery -f, -m, -H)")
}

/// Every topology, each in its own lab, all at once (they are independent; the
/// clients mostly wait for answers that do not come).
#[test]
fn every_topology_is_what_its_name_says() {
    require_root();
    let jobs = every_topology()
        .into_iter()
        .map(|spec| (spec.topology_name(), move || prove(spec)))
        .collect();
    for line in all_at_once(jobs) {
        println!("{line}");
    }
}

/// Why every reference run starts from fresh NAT state, on the per-host restricted
/// cone: once the host has sent to STUN2 (natdiscovery's mapping tests do, from
/// another socket), STUN2 may send to any of its mappings, and natdiscovery's
/// filtering test, which expects STUN2's answer to be filtered, says "endpoint
/// independent". The same happens inside one `-m -f` call. `reset-nat` forgets it.
#[test]
fn a_per_host_filter_remembers_until_the_nat_is_reset() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::RestrictedConePerHost)
        .coturn(true)
        .build()
        .expect("lab up");
    let filtering = |flags: &str| {
        let out = lab.natdiscovery(flags);
        parse_natdiscovery_filtering(&out)
            .unwrap_or_else(|| panic!("no filtering verdict from natdiscovery {flags}:\n{out}"))
    };
    lab.reset_nat().expect("reset");
    assert_eq!(filtering("-f"), NatFiltering::AddressDependent);
    // Its mapping tests send to STUN2 from the same host.
    lab.reset_nat().expect("reset");
    let both = lab.natdiscovery("-mf");
    assert_eq!(
        parse_natdiscovery_filtering(&both),
        Some(NatFiltering::EndpointIndependent),
        "natdiscovery -m -f in one call on a per-host filter:\n{both}"
    );
    // STUN2 is still in the filter: a later -f alone is fooled too.
    assert_eq!(filtering("-f"), NatFiltering::EndpointIndependent);
    let set = lab
        .exec_ok(
            Node::Rtr,
            &["nft", "list", "set", "inet", "nat", "contacted_hosts"],
        )
        .expect("nft list set");
    assert!(set.contains(&lab.addrs().stun2.to_string()), "{set}");

    lab.reset_nat().expect("reset");
    let set = lab
        .exec_ok(
            Node::Rtr,
            &["nft", "list", "set", "inet", "nat", "contacted_hosts"],
        )
        .expect("nft list set");
    assert!(
        !set.contains("elements"),
        "the set survived the reset: {set}"
    );
    let count = lab
        .exec_ok(Node::Rtr, &["conntrack", "-C"])
        .expect("conntrack -C");
    assert_eq!(count.trim(), "0", "conntrack entries after the reset");
    assert_eq!(filtering("-f"), NatFiltering::AddressDependent);
}
