//! What the fake IGD announces: its SSDP answers and its device description.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;

use super::firewall::{FIREWALL_PATH, FIREWALL_TYPE};
use super::{Served, State};

/// Whether a device or service of type `own` answers a search for
/// `wanted`: same namespace, kind and name, and a version no higher (UDA 1.1).
pub(super) fn type_answers(own: &str, wanted: &str) -> bool {
    let split = |t: &str| -> Option<(String, u32)> {
        let (head, v) = t.rsplit_once(':')?;
        Some((head.to_ascii_lowercase(), v.parse().ok()?))
    };
    match (split(own), split(wanted)) {
        (Some((a, va)), Some((b, vb))) => a == b && vb <= va,
        _ => false,
    }
}

pub(super) async fn ssdp_responder(
    udp: UdpSocket,
    reply_from: Option<UdpSocket>,
    location: String,
    sv: Arc<Served>,
    state: Arc<Mutex<State>>,
) {
    let b = &sv.b;
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf).await else {
            return;
        };
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        if !req.starts_with("M-SEARCH * HTTP/1.1") {
            continue;
        }
        let st = req
            .lines()
            .find_map(|l| l.strip_prefix("ST: "))
            .unwrap_or("")
            .trim()
            .to_owned();
        state
            .lock()
            .unwrap()
            .searches
            .push((Instant::now(), st.clone()));
        if b.silent {
            continue;
        }
        let v = if b.igd2 { 2 } else { 1 };
        let device = format!("urn:schemas-upnp-org:device:InternetGatewayDevice:{v}");
        let answers = type_answers(&device, &st)
            || b.wan_services()
                .iter()
                .any(|w| type_answers(&w.service_type, &st));
        if !answers {
            continue;
        }
        for location in std::iter::once(&location).chain(&b.extra_locations) {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: {st}\r\nUSN: uuid:fake::{st}\r\nEXT:\r\n\
                 SERVER: FakeOS/1 UPnP/1.1 FakeIGD/1.0\r\nLOCATION: {location}\r\n\r\n"
            );
            let sock = reply_from.as_ref().unwrap_or(&udp);
            let _ = sock.send_to(answer.as_bytes(), from).await;
        }
    }
}

pub(super) fn description(sv: &Served) -> String {
    let b = &sv.b;
    if let Some(body) = &b.description_body {
        return body.clone();
    }
    let v = if b.igd2 { 2 } else { 1 };
    let firewall = if b.firewall.is_some() {
        format!(
            "<service><serviceType>{FIREWALL_TYPE}</serviceType><serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/WANIP6FC.xml</SCPDURL><controlURL>{FIREWALL_PATH}</controlURL><eventSubURL>/evt/IP6FCtl</eventSubURL></service>"
        )
    } else {
        String::new()
    };
    let wan_devices: String = b
        .wan_services()
        .iter()
        .enumerate()
        .map(|(i, w)| {
            // IGD:2 puts the firewall beside the first WANIPConnection.
            let firewall = if i == 0 { firewall.as_str() } else { "" };
            let control = if w.second_port {
                format!("http://{}{}", sv.http2, w.path)
            } else {
                w.path.clone()
            };
            format!(
                "<device><deviceType>urn:schemas-upnp-org:device:WANDevice:{v}</deviceType><friendlyName>WANDevice</friendlyName><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:{v}</deviceType><friendlyName>WANConnectionDevice</friendlyName><serviceList><service><serviceType>{}</serviceType><serviceId>urn:upnp-org:serviceId:WANConn1</serviceId><SCPDURL>/WANCn.xml</SCPDURL><controlURL>{control}</controlURL><eventSubURL>/evt/Conn</eventSubURL></service>{firewall}</serviceList></device></deviceList></device>",
                w.service_type
            )
        })
        .collect();
    let (decl, xmlns) = if b.bare_xml {
        ("", "")
    } else {
        (
            "<?xml version=\"1.0\"?>\n",
            " xmlns=\"urn:schemas-upnp-org:device-1-0\"",
        )
    };
    let url_base = b
        .url_base
        .as_ref()
        .map(|u| {
            format!(
                "<URLBase>{}</URLBase>",
                u.replace("{http}", &sv.http.to_string())
            )
        })
        .unwrap_or_default();
    let mut d = format!(
        r#"{decl}<root{xmlns}><specVersion><major>1</major><minor>1</minor></specVersion>{url_base}<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:{v}</deviceType><friendlyName>Fake router</friendlyName><manufacturer>natkit</manufacturer><modelName>FakeIGD</modelName><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList><deviceList>{wan_devices}</deviceList></device></root>"#
    );
    if let Some(size) = b.description_size {
        let pad = size.saturating_sub(d.len() + 7);
        d.push_str(&format!("<!--{}-->", "x".repeat(pad)));
    }
    d
}
