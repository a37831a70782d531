//! The fake IGD's SOAP side: WANIPConnection/WANPPPConnection actions over
//! the shared mapping table, with the refusals a UPnP stack makes.

use std::net::SocketAddr;
use std::sync::Mutex;

use super::firewall::{FIREWALL_PATH, FIREWALL_TYPE, firewall_soap};
use super::{Behaviour, Row, State, type_answers};

pub(super) fn arg(body: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let Some(start) = body.find(&open) else {
        return String::new();
    };
    let rest = &body[start + open.len()..];
    let raw = &rest[..rest.find(&close).unwrap_or(0)];
    raw.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

pub(super) fn ok(
    service_type: &str,
    action: &str,
    args: &[(&str, String)],
) -> (&'static str, String) {
    let inner: String = args
        .iter()
        .map(|(n, val)| format!("<{n}>{val}</{n}>"))
        .collect();
    (
        "200 OK",
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action}Response xmlns:u=\"{service_type}\">{inner}</u:{action}Response></s:Body></s:Envelope>\r\n"
        ),
    )
}

pub(super) fn fault(code: u16, text: &str) -> (&'static str, String) {
    (
        "500 Internal Server Error",
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>{code}</errorCode><errorDescription>{text}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n"
        ),
    )
}

fn entry_args(r: &Row, generic: bool) -> Vec<(&'static str, String)> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut v = vec![];
    if generic {
        v.push(("NewRemoteHost", String::new()));
        v.push(("NewExternalPort", r.ext_port.to_string()));
        v.push(("NewProtocol", r.proto.clone()));
    }
    v.extend([
        ("NewInternalPort", r.int_port.to_string()),
        ("NewInternalClient", r.client.clone()),
        ("NewEnabled", "1".to_owned()),
        ("NewPortMappingDescription", esc(&r.desc)),
        ("NewLeaseDuration", r.lease.to_string()),
    ]);
    v
}

pub(super) fn soap(
    b: &Behaviour,
    state: &Mutex<State>,
    peer: SocketAddr,
    path: &str,
    requested_type: &str,
    action: &str,
    body: &str,
) -> (&'static str, String) {
    let mut st = state.lock().unwrap();
    st.actions.push(action.to_owned());
    st.calls.push((path.to_owned(), action.to_owned()));
    if path == FIREWALL_PATH
        && let Some(fw) = &b.firewall
    {
        drop(st);
        if !requested_type.is_empty() && !type_answers(FIREWALL_TYPE, requested_type) {
            return fault(401, "Invalid Action");
        }
        return firewall_soap(fw, state, peer, action, body);
    }
    let port: u16 = arg(body, "NewExternalPort").parse().unwrap_or(0);
    let proto = arg(body, "NewProtocol");
    // Which WAN service the request came to. A served description_body is
    // the test's own: any path then answers as the default service.
    let services = b.wan_services();
    let service = if b.description_body.is_some() {
        services[0].clone()
    } else {
        match services.iter().find(|w| w.path == path) {
            Some(w) => w.clone(),
            None => return fault(401, "Invalid Action"),
        }
    };
    // A UPnP stack refuses an action addressed to another service type
    // (another namespace or name, or a later version).
    if !requested_type.is_empty() && !type_answers(&service.service_type, requested_type) {
        return fault(401, "Invalid Action");
    }
    // The protocol is upper case or refused, as miniupnpd does.
    let with_protocol = matches!(
        action,
        "AddPortMapping"
            | "AddAnyPortMapping"
            | "DeletePortMapping"
            | "GetSpecificPortMappingEntry"
    );
    if with_protocol && proto != "TCP" && proto != "UDP" {
        return fault(402, "Invalid Args");
    }
    let igd2 = service
        .service_type
        .rsplit(':')
        .next()
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| v >= 2);
    let ok = |action: &str, args: &[(&str, String)]| ok(&service.service_type, action, args);
    match action {
        "GetStatusInfo" => ok(
            action,
            &[
                ("NewConnectionStatus", service.status.clone()),
                ("NewLastConnectionError", "ERROR_NONE".into()),
                ("NewUptime", "4242".into()),
            ],
        ),
        "GetExternalIPAddress" => ok(
            action,
            &[("NewExternalIPAddress", service.external_ip.to_string())],
        ),
        "AddPortMapping" | "AddAnyPortMapping" => {
            if action == "AddAnyPortMapping" && !igd2 {
                return fault(401, "Invalid Action");
            }
            let lease: u32 = arg(body, "NewLeaseDuration").parse().unwrap_or(u32::MAX);
            if action == "AddPortMapping" {
                st.add_leases.push(lease);
            }
            if b.only_permanent && lease != 0 {
                return fault(725, "OnlyPermanentLeasesSupported");
            }
            if b.max_lease.is_some_and(|m| lease > m) {
                return fault(402, "Invalid Args");
            }
            let row = Row {
                ext_port: port,
                proto: proto.clone(),
                client: arg(body, "NewInternalClient"),
                int_port: arg(body, "NewInternalPort").parse().unwrap_or(0),
                desc: arg(body, "NewPortMappingDescription"),
                lease,
            };
            let taken =
                |t: &[Row], p: u16| t.iter().position(|r| r.ext_port == p && r.proto == proto);
            if b.expire_nonzero_leases && lease != 0 && action == "AddPortMapping" {
                // Accepted, and expired at once.
                if let Some(i) =
                    taken(&st.table, port).filter(|i| st.table[*i].client == row.client)
                {
                    st.table.remove(i);
                }
                return ok(action, &[]);
            }
            match taken(&st.table, port) {
                Some(i) if st.table[i].client == row.client && !b.conflict_on_readd => {
                    st.table[i] = row;
                    st.not_forwarding
                        .retain(|(p, q)| !(*p == port && *q == proto));
                    if action == "AddAnyPortMapping" {
                        return ok(action, &[("NewReservedPort", port.to_string())]);
                    }
                    ok(action, &[])
                }
                Some(_) if action == "AddPortMapping" => fault(718, "ConflictInMappingEntry"),
                Some(_) => {
                    let free = (port..=u16::MAX)
                        .chain(1024..port)
                        .find(|p| taken(&st.table, *p).is_none())
                        .unwrap();
                    st.table.push(Row {
                        ext_port: free,
                        ..row
                    });
                    ok(action, &[("NewReservedPort", free.to_string())])
                }
                None => {
                    st.table.push(row);
                    if action == "AddAnyPortMapping" {
                        return ok(action, &[("NewReservedPort", port.to_string())]);
                    }
                    ok(action, &[])
                }
            }
        }
        "DeletePortMapping" => match st
            .table
            .iter()
            .position(|r| r.ext_port == port && r.proto == proto)
        {
            Some(i) => {
                st.table.remove(i);
                ok(action, &[])
            }
            None => fault(714, "NoSuchEntryInArray"),
        },
        "GetSpecificPortMappingEntry" => match st
            .table
            .iter()
            .find(|r| r.ext_port == port && r.proto == proto)
        {
            Some(r) => ok(action, &entry_args(r, false)),
            None => fault(714, "NoSuchEntryInArray"),
        },
        "GetGenericPortMappingEntry" => {
            let i: usize = arg(body, "NewPortMappingIndex")
                .parse()
                .unwrap_or(usize::MAX);
            match st.table.get(i) {
                Some(r) => ok(action, &entry_args(r, true)),
                None => fault(713, "SpecifiedArrayIndexInvalid"),
            }
        }
        _ => fault(401, "Invalid Action"),
    }
}
