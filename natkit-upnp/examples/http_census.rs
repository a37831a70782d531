//! How often the description fetch and a SOAP read finish within natkit's
//! time limits against one IGD: `N` rounds of `Igd::connect` (the
//! description `GET`) and `GetExternalIPAddress`, with the failures and the
//! time distribution of each printed. Run it on a lossy path (in the NAT
//! lab: `natlab.sh up --miniupnpd --loss 30`, then in the LAN namespace)
//! to size `HttpConfig`'s limits and hedging; docs/RELIABILITY.md quotes it.
//!
//! ```text
//! http_census LOCATION [N] [--hedge-ms MS|off]
//! ```

use std::time::{Duration, Instant};

use natkit_upnp::{HttpConfig, Igd};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: http_census LOCATION [N] [--hedge-ms MS|off]";
    let location = args.next().ok_or(usage)?;
    let mut rounds = 100_u32;
    let mut http = HttpConfig::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--hedge-ms" => {
                let v = args.next().ok_or(usage)?;
                http.hedge_after = match v.as_str() {
                    "off" => None,
                    ms => Some(Duration::from_millis(
                        ms.parse().map_err(|e| format!("--hedge-ms {ms}: {e}"))?,
                    )),
                };
            }
            n => rounds = n.parse().map_err(|e| format!("N {n}: {e}\n{usage}"))?,
        }
    }
    let mut describe = Census::default();
    let mut soap = Census::default();
    let mut igd: Option<Igd> = None;
    for _ in 0..rounds {
        let t = Instant::now();
        match Igd::connect(&location, &http).await {
            Ok(fresh) => {
                describe.ok(t.elapsed());
                igd = Some(fresh);
            }
            Err(e) => describe.failed(t.elapsed(), &e),
        }
        if let Some(igd) = &igd {
            let t = Instant::now();
            match igd.external_ip().await {
                Ok(_) => soap.ok(t.elapsed()),
                Err(e) => soap.failed(t.elapsed(), &e),
            }
        }
    }
    println!(
        "limits: description {:?}, SOAP {:?}, hedge after {:?}",
        http.description_timeout, http.soap_timeout, http.hedge_after
    );
    println!("description GET: {}", describe.summary());
    println!("GetExternalIPAddress: {}", soap.summary());
    Ok(())
}

#[derive(Default)]
struct Census {
    times: Vec<Duration>,
    failures: Vec<String>,
}

impl Census {
    fn ok(&mut self, took: Duration) {
        self.times.push(took);
    }

    fn failed(&mut self, took: Duration, e: &natkit_upnp::Error) {
        self.failures.push(format!("{} ms: {e}", took.as_millis()));
    }

    fn summary(&mut self) -> String {
        self.times.sort_unstable();
        let n = self.times.len() + self.failures.len();
        let at = |q: f64| {
            self.times
                .get(((self.times.len().max(1) - 1) as f64 * q).round() as usize)
                .map_or(0, |t| t.as_millis())
        };
        let mut s = format!(
            "{} failed of {n}; answered: median {} ms, p90 {} ms, p99 {} ms, max {} ms",
            self.failures.len(),
            at(0.5),
            at(0.9),
            at(0.99),
            at(1.0)
        );
        for f in &self.failures {
            s.push_str("\n  ");
            s.push_str(f);
        }
        s
    }
}
