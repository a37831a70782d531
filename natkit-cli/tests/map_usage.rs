//! `natkit map`'s IPv6 usage errors: refused with exit status 2 before anything is
//! sent (no router needed; nothing leaves the host).

use std::process::Command;

fn map(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_natkit"))
        .arg("map")
        .args(args)
        .output()
        .expect("natkit runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_pinhole_with_another_external_port_is_a_usage_error() {
    for args in [
        &[
            "--ipv6",
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--external-port",
            "81",
        ][..],
        &[
            "--address",
            "2a0d:88:77:77::2",
            "--protocol",
            "udp",
            "--port",
            "80",
            "--external-port",
            "81",
        ],
    ] {
        let (code, err) = map(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(
            err.trim(),
            "error: an IPv6 pinhole does not translate: --external-port must be --port",
            "{args:?}"
        );
    }
}

#[test]
fn ipv6_and_an_address_exclude_each_other() {
    let (code, err) = map(&[
        "--ipv6",
        "--address",
        "2a0d:88:77:77::2",
        "--protocol",
        "tcp",
        "--port",
        "80",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot be used with") && err.contains("--ipv6") && err.contains("--address"),
        "{err}"
    );
}
