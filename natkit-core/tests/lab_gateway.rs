//! natkit-core's gateway lookup in the NAT lab: inside the LAN namespace the
//! default gateway is the lab router and the local address is the LAN host's.
//! With a double NAT the router's external address is classified as shared
//! address space, which is how natkit concludes "another NAT is upstream".

use natkit_core::{AddressScope, default_gateway, upstream_nat_note};
use natkit_lab::{Lab, NatKind, Node};

#[test]
#[ignore = "helper: runs inside the lab's LAN namespace, started by gateway_in_the_lan"]
fn lan_side_gateway() {
    let Some(addrs) = natkit_lab::helper_addrs("lan_side_gateway").expect("lab env") else {
        return;
    };
    let gw = default_gateway().expect("the LAN host has a default route");
    assert_eq!(gw.address, addrs.rtr_lan);
    assert_eq!(gw.local_address, addrs.lan);
    assert_eq!(gw.prefix_len, 24);
    assert!(gw.is_on_lan(addrs.rtr_lan.into()));
    assert_eq!(
        AddressScope::of(gw.local_address.into()),
        AddressScope::Private
    );
    println!("GATEWAY-OK {gw}");
}

#[test]
fn gateway_in_the_lan() {
    natkit_lab::require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .double_nat(true)
        .build()
        .expect("lab");
    let out = lab
        .test_helper(Node::Lan, "lan_side_gateway")
        .expect("helper")
        .output()
        .expect("run helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("GATEWAY-OK gateway 192.168.77.1"),
        "helper failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The router's WAN address behind the ISP's NAT is shared (RFC 6598)
    // space: the one function behind every double-NAT conclusion says so.
    let wan = lab.addrs().rtr_wan;
    assert_eq!(AddressScope::of(wan.into()), AddressScope::Shared);
    assert!(upstream_nat_note(wan.into()).is_some());
    assert!(AddressScope::of(lab.addrs().public.into()).is_global());
}

#[test]
#[ignore = "helper: runs inside a LAN namespace without a default route"]
fn lan_side_no_route() {
    if natkit_lab::helper_addrs("lan_side_no_route")
        .expect("lab env")
        .is_none()
    {
        return;
    }
    match default_gateway() {
        Err(natkit_core::Error::NoDefaultGateway { detail }) => println!("NO-GATEWAY {detail}"),
        other => panic!("expected NoDefaultGateway, got {other:?}"),
    }
}

#[test]
fn no_default_route_is_reported() {
    natkit_lab::require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .build()
        .expect("lab");
    lab.exec_ok(Node::Lan, &["ip", "route", "del", "default"])
        .expect("remove the default route");
    let out = lab
        .test_helper(Node::Lan, "lan_side_no_route")
        .expect("helper")
        .output()
        .expect("run helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("NO-GATEWAY"),
        "helper failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
