//! The IGD device description (`rootDesc.xml`): which WAN connection
//! service to talk to and where its control URL is.

use crate::wire::wan::WanServiceKind;
use crate::wire::xml::{Node, XmlError, walk};

/// The most services kept from one description.
pub const MAX_SERVICES: usize = 64;

/// One `<service>` of the description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    /// `serviceType`.
    pub service_type: String,
    /// `controlURL`, as written (relative or absolute).
    pub control_url: String,
}

/// What natkit needs from a device description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Description {
    /// The root device's `friendlyName`.
    pub friendly_name: Option<String>,
    /// The root device's `manufacturer`.
    pub manufacturer: Option<String>,
    /// The root device's `modelName`.
    pub model_name: Option<String>,
    /// The root device's `deviceType`, e.g. `…:InternetGatewayDevice:2`.
    pub device_type: Option<String>,
    /// `URLBase` (deprecated in UDA 1.1, still sent by some routers).
    pub url_base: Option<String>,
    /// Every service of every (embedded) device, in document order.
    pub services: Vec<ServiceEntry>,
}

/// Why a description was not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// The XML was not accepted.
    #[error("device description: {0}")]
    Xml(#[from] XmlError),
    /// The root element is not `<root>`.
    #[error("device description has no <root> element")]
    NotADescription,
    /// More than [`MAX_SERVICES`] services.
    #[error("device description lists more than {MAX_SERVICES} services")]
    TooManyServices,
}

impl Description {
    /// Parses a device description. The caller bounds the size (see
    /// [`HttpConfig::max_description`](crate::HttpConfig::max_description)).
    pub fn parse(xml: &[u8]) -> Result<Description, DescriptionError> {
        let mut d = Description::default();
        let mut current: Option<ServiceEntry> = None;
        let mut root_seen = false;
        let mut too_many = false;
        walk(xml, |parents, node| match node {
            Node::Open(name) => {
                if parents.is_empty() {
                    root_seen = name == "root";
                }
                if name == "service" && root_seen {
                    current = Some(ServiceEntry::default());
                }
            }
            Node::Close(name, text) => {
                if !root_seen {
                    return;
                }
                let parent = parents.last().map(String::as_str);
                match (parent, name) {
                    (Some("service"), "serviceType") => {
                        if let Some(s) = current.as_mut() {
                            s.service_type = text.to_owned();
                        }
                    }
                    (Some("service"), "controlURL") => {
                        if let Some(s) = current.as_mut() {
                            s.control_url = text.to_owned();
                        }
                    }
                    (_, "service") => {
                        if let Some(s) = current.take() {
                            if d.services.len() >= MAX_SERVICES {
                                too_many = true;
                            } else {
                                d.services.push(s);
                            }
                        }
                    }
                    (Some("root"), "URLBase") if parents.len() == 1 => {
                        d.url_base = non_empty(text);
                    }
                    (Some("device"), field) if parents.len() == 2 => {
                        let slot = match field {
                            "friendlyName" => &mut d.friendly_name,
                            "manufacturer" => &mut d.manufacturer,
                            "modelName" => &mut d.model_name,
                            "deviceType" => &mut d.device_type,
                            _ => return,
                        };
                        *slot = non_empty(text);
                    }
                    _ => {}
                }
            }
        })?;
        if !root_seen {
            return Err(DescriptionError::NotADescription);
        }
        if too_many {
            return Err(DescriptionError::TooManyServices);
        }
        Ok(d)
    }

    /// Every WAN connection service with a control URL, in any device of
    /// the description, most preferred first (see [`WanServiceKind`]; equal
    /// kinds in document order).
    pub fn wan_services(&self) -> Vec<(WanServiceKind, &ServiceEntry)> {
        let mut found: Vec<(WanServiceKind, &ServiceEntry)> = self
            .services
            .iter()
            .filter(|s| !s.control_url.is_empty())
            .filter_map(|s| Some((WanServiceKind::parse(&s.service_type)?, s)))
            .collect();
        found.sort_by_key(|(k, _)| k.preference());
        found
    }

    /// The most preferred WAN connection service ([`wan_services`](Self::wan_services)).
    pub fn wan_service(&self) -> Option<(WanServiceKind, &ServiceEntry)> {
        self.wan_services().into_iter().next()
    }

    /// The IPv6 firewall service (`WANIPv6FirewallControl`, any version)
    /// with a control URL, in any device of the description. IGD:2 puts it
    /// in the WANConnectionDevice beside `WANIPConnection:2`.
    pub fn firewall_service(&self) -> Option<&ServiceEntry> {
        self.services.iter().find(|s| {
            !s.control_url.is_empty() && crate::wire::pinhole::is_firewall_service(&s.service_type)
        })
    }

    /// A short human name: friendly name, else model name, else manufacturer.
    pub fn display_name(&self) -> Option<&str> {
        self.friendly_name
            .as_deref()
            .or(self.model_name.as_deref())
            .or(self.manufacturer.as_deref())
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The description miniupnpd 2.3 serves when built with IGD:2 support
    /// (Debian's `miniupnpd` package), trimmed of the icon list.
    pub(crate) const MINIUPNPD_IGD2: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Debian router</friendlyName><manufacturer>Debian</manufacturer><manufacturerURL>https://www.debian.org/</manufacturerURL><modelDescription>Debian router</modelDescription><modelName>Debian router</modelName><modelNumber>2.3.3</modelNumber><modelURL>https://www.debian.org/</modelURL><serialNumber>00000000</serialNumber><UDN>uuid:2b2561a2-1c2d-4f6e-8f4b-0f2a3d4e5f60</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:DeviceProtection:1</serviceType><serviceId>urn:upnp-org:serviceId:DeviceProtection1</serviceId><SCPDURL>/DP.xml</SCPDURL><controlURL>/ctl/DP</controlURL><eventSubURL>/evt/DP</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><friendlyName>WANDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><modelName>WAN Device</modelName><UDN>uuid:2b2561a2-1c2d-4f6e-8f4b-0f2a3d4e5f61</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:2</deviceType><friendlyName>WANConnectionDevice</friendlyName><manufacturer>MiniUPnP</manufacturer><modelName>MiniUPnPd</modelName><UDN>uuid:2b2561a2-1c2d-4f6e-8f4b-0f2a3d4e5f62</UDN><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId><SCPDURL>/WANIPCn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service><service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><serviceId>urn:upnp-org:serviceId:WANIPv6Firewall1</serviceId><SCPDURL>/WANIP6FC.xml</SCPDURL><controlURL>/ctl/IP6FCtl</controlURL><eventSubURL>/evt/IP6FCtl</eventSubURL></service></serviceList></device></deviceList></device></deviceList><presentationURL>http://192.168.77.1/</presentationURL></device></root>"#;

    #[test]
    fn finds_wanipconnection2_in_miniupnpd_description() {
        let d = Description::parse(MINIUPNPD_IGD2.as_bytes()).unwrap();
        assert_eq!(d.friendly_name.as_deref(), Some("Debian router"));
        assert_eq!(d.manufacturer.as_deref(), Some("Debian"));
        assert_eq!(
            d.device_type.as_deref(),
            Some("urn:schemas-upnp-org:device:InternetGatewayDevice:2")
        );
        assert_eq!(d.services.len(), 5);
        let (kind, svc) = d.wan_service().unwrap();
        assert_eq!(kind, WanServiceKind::WAN_IP2);
        assert_eq!(svc.control_url, "/ctl/IPConn");
        assert!(kind.is_igd2());
        let fw = d.firewall_service().unwrap();
        assert_eq!(
            fw.service_type,
            "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1"
        );
        assert_eq!(fw.control_url, "/ctl/IP6FCtl");
    }

    #[test]
    fn prefers_ip_over_ppp_and_v2_over_v1() {
        let doc = |services: &str| {
            format!(
                "<root><URLBase>http://10.0.0.138:80/</URLBase><device><friendlyName>Box</friendlyName>\
                 <deviceList><device><serviceList>{services}</serviceList></device></deviceList></device></root>"
            )
        };
        let svc = |t: &str, c: &str| {
            format!(
                "<service><serviceType>urn:schemas-upnp-org:service:{t}</serviceType><controlURL>{c}</controlURL></service>"
            )
        };
        let d = Description::parse(
            doc(&format!(
                "{}{}",
                svc("WANPPPConnection:1", "/ppp"),
                svc("WANIPConnection:1", "/ip1")
            ))
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(d.url_base.as_deref(), Some("http://10.0.0.138:80/"));
        assert_eq!(d.display_name(), Some("Box"));
        let (kind, s) = d.wan_service().unwrap();
        assert_eq!(
            (kind, s.control_url.as_str()),
            (WanServiceKind::WAN_IP1, "/ip1")
        );

        let d = Description::parse(doc(&svc("WANPPPConnection:1", "/ppp")).as_bytes()).unwrap();
        assert_eq!(d.wan_service().unwrap().0, WanServiceKind::WAN_PPP1);

        // A WAN service without a control URL is useless.
        let d = Description::parse(doc(&svc("WANIPConnection:2", "")).as_bytes()).unwrap();
        assert_eq!(d.wan_service(), None);
    }

    #[test]
    fn dialects_of_real_descriptions() {
        // No declaration, no namespace, a byte-order mark and leading
        // whitespace; services nested three devices deep; any version; the
        // Broadband Forum's namespace; prefixes on elements.
        let doc = "\u{feff}  \r\n<root><device><serviceList/><deviceList><device><deviceList><device>\
            <serviceList><service><serviceType>urn:dslforum-org:service:WANPPPConnection:1</serviceType>\
            <controlURL>/ppp</controlURL></service></serviceList></device><device><serviceList>\
            <s:service xmlns:s=\"urn:schemas-upnp-org:device-1-0\"><s:serviceType>urn:schemas-upnp-org:service:WANPPPConnection:2</s:serviceType>\
            <s:controlURL>/ppp2</s:controlURL></s:service></serviceList></device></deviceList></device>\
            </deviceList></device></root>";
        let d = Description::parse(doc.as_bytes()).unwrap();
        let found: Vec<(String, &str)> = d
            .wan_services()
            .into_iter()
            .map(|(k, s)| (k.service_type(), s.control_url.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "urn:schemas-upnp-org:service:WANPPPConnection:2".to_owned(),
                    "/ppp2"
                ),
                (
                    "urn:dslforum-org:service:WANPPPConnection:1".to_owned(),
                    "/ppp"
                ),
            ]
        );
    }

    #[test]
    fn rejects_non_descriptions() {
        assert_eq!(
            Description::parse(b"<html><body>router login</body></html>"),
            Err(DescriptionError::NotADescription)
        );
        assert!(matches!(
            Description::parse(b"<root><device>"),
            Err(DescriptionError::Xml(XmlError::Truncated))
        ));
        let many = format!(
            "<root>{}</root>",
            "<service><serviceType>x</serviceType></service>".repeat(MAX_SERVICES + 1)
        );
        assert_eq!(
            Description::parse(many.as_bytes()),
            Err(DescriptionError::TooManyServices)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let _ = Description::parse(&bytes);
        }

        #[test]
        fn mutated_description_never_panics(cut in 0usize..3000, byte in any::<u8>()) {
            let mut doc = MINIUPNPD_IGD2.as_bytes().to_vec();
            let i = cut % doc.len();
            doc[i] = byte;
            let _ = Description::parse(&doc);
            let _ = Description::parse(&doc[..i]);
        }
    }
}
